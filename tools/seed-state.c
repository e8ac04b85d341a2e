/* seed-state: fills a certloop state directory with N valid stored
 * generations, all signed by one throwaway EC CA, so that a daemon started
 * on it has nothing due. A benchmark and test fixture (bench/idle.sh,
 * test_ari): it writes through the store interface (store_cert_put_start,
 * WINDOW at a time), like the daemon.
 *
 *   seed-state STATE_DIR N CA_NAME DIRECTORY [DAYS]
 *
 * Certificate i is named c<i> with the names c<i>.test, plus www.c<i>.test
 * when i is odd (what bench/lib-bench.sh's bw_config_certs configures),
 * key ec-p256, valid from a day ago for DAYS (default 90) days. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "store/store.h"

static void die(const char *what)
{
    fprintf(stderr, "seed-state: %s failed\n", what);
    exit(1);
}

/* The PEM of certificate x, or of private key k when x is NULL, as a
 * string the caller frees. */
static char *pem_of(X509 *x, EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *p, *s;
    long n;
    int ok;

    if (b == NULL)
        die("BIO_new");
    if (x != NULL)
        ok = PEM_write_bio_X509(b, x);
    else
        ok = PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
    if (ok != 1)
        die(x != NULL ? "PEM_write_bio_X509" : "PEM_write_bio_PrivateKey");
    n = BIO_get_mem_data(b, &p);
    s = malloc((size_t)n + 1);
    if (s == NULL)
        die("malloc");
    memcpy(s, p, (size_t)n);
    s[n] = '\0';
    BIO_free(b);
    return s;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *e;

    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (e == NULL || X509_add_ext(x, e, -1) != 1)
        die("X509_add_ext");
    X509_EXTENSION_free(e);
}

/* A certificate for key (issued by ca/ca_key, or self-signed when ca is
 * NULL), valid [nb, na]. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, const char *san, X509 *ca, EVP_PKEY *ca_key,
                       time_t nb, time_t na, unsigned char serial[16])
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    BIGNUM *bn;

    if (x == NULL || name == NULL || X509_set_version(x, 2) != 1)
        die("X509_new");
    if (RAND_bytes(serial, 16) != 1)
        die("RAND_bytes");
    serial[0] &= 0x7f;
    bn = BN_bin2bn(serial, 16, NULL);
    if (bn == NULL || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
        die("serial");
    BN_free(bn);
    if (X509_time_adj_ex(X509_getm_notBefore(x), 0, 0, &nb) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(x), 0, 0, &na) == NULL)
        die("validity");
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_subject_name(x, name);
    X509_set_issuer_name(x, ca != NULL ? X509_get_subject_name(ca) : name);
    X509_NAME_free(name);
    if (X509_set_pubkey(x, key) != 1)
        die("X509_set_pubkey");
    if (ca == NULL) {
        add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
        add_ext(x, x, NID_subject_key_identifier, "hash");
    } else {
        add_ext(x, ca, NID_basic_constraints, "CA:FALSE");
        add_ext(x, ca, NID_subject_alt_name, san);
        /* as a CA's leaves have it: the ARI CertID is built from it */
        add_ext(x, ca, NID_authority_key_identifier, "keyid:always");
    }
    if (X509_sign(x, ca_key, EVP_sha256()) == 0)
        die("X509_sign");
    return x;
}

/* The puts in flight: each is answered on the loop, and the next one is
 * started from there, so at most WINDOW generations are written at once. */
#define WINDOW 256

struct seed {
    struct store *store;
    long next, n, done;
    int failed;
    const char *ca_name, *directory, *ca_pem;
    EVP_PKEY *ca_key;
    X509 *ca;
    time_t now, nb, na;
};

static void seed_next(struct seed *sd);

static void put_done(int status, const struct store_result *r, void *arg)
{
    struct seed *sd = arg;

    if (status < 0) {
        fprintf(stderr, "seed-state: %s\n", r->error != NULL ? r->error : strerror(-status));
        sd->failed = 1;
    }
    sd->done++;
    if (!sd->failed)
        seed_next(sd);
}

static void seed_next(struct seed *sd)
{
    char name[32], cn[64], san[160], meta[1024], serial_hex[33];
    unsigned char serial[16];

    if (sd->next >= sd->n)
        return;
    long i = sd->next++;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    if (key == NULL)
        die("key");
    snprintf(name, sizeof(name), "c%ld", i);
    snprintf(cn, sizeof(cn), "c%ld.test", i);
    if (i % 2)
        snprintf(san, sizeof(san), "DNS:c%ld.test,DNS:www.c%ld.test", i, i);
    else
        snprintf(san, sizeof(san), "DNS:c%ld.test", i);
    X509 *x = make_cert(key, cn, san, sd->ca, sd->ca_key, sd->nb, sd->na, serial);
    char *cert_pem = pem_of(x, NULL);
    char *key_pem = pem_of(NULL, key);
    size_t fl = strlen(cert_pem) + strlen(sd->ca_pem) + 1;
    char *full = malloc(fl);
    if (full == NULL)
        die("malloc");
    snprintf(full, fl, "%s%s", cert_pem, sd->ca_pem);
    for (int b = 0; b < 16; b++)
        snprintf(serial_hex + 2 * b, 3, "%02x", serial[b]);
    if (i % 2)
        snprintf(meta, sizeof(meta),
                 "{\"domains\": [\"c%ld.test\", \"www.c%ld.test\"], \"ca\": \"%s\", "
                 "\"directory\": \"%s\", \"key\": \"ec-p256\", \"not_before\": %lld, "
                 "\"not_after\": %lld, \"issued_at\": %lld, \"serial\": \"%s\"}\n",
                 i, i, sd->ca_name, sd->directory, (long long)sd->nb, (long long)sd->na,
                 (long long)sd->now, serial_hex);
    else
        snprintf(meta, sizeof(meta),
                 "{\"domains\": [\"c%ld.test\"], \"ca\": \"%s\", \"directory\": \"%s\", "
                 "\"key\": \"ec-p256\", \"not_before\": %lld, \"not_after\": %lld, "
                 "\"issued_at\": %lld, \"serial\": \"%s\"}\n",
                 i, sd->ca_name, sd->directory, (long long)sd->nb, (long long)sd->na,
                 (long long)sd->now, serial_hex);
    struct store_cert_put p = {
        .name = name,
        .cert_pem = cert_pem,
        .chain_pem = sd->ca_pem,
        .fullchain_pem = full,
        .key_pem = key_pem,
        .meta_json = meta,
        .keep = 3,
    };
    int rc = store_cert_put_start(sd->store, &p, put_done, sd);
    if (rc < 0) {
        fprintf(stderr, "seed-state: %s: %s\n", name, strerror(-rc));
        sd->failed = 1;
    }
    OPENSSL_cleanse(key_pem, strlen(key_pem));
    free(key_pem);
    free(cert_pem);
    free(full);
    X509_free(x);
    EVP_PKEY_free(key);
}

int main(int argc, char **argv)
{
    unsigned char serial[16];
    struct seed sd = {0};
    uv_loop_t loop;

    if (argc < 5) {
        fprintf(stderr, "usage: seed-state STATE_DIR N CA_NAME DIRECTORY [DAYS]\n");
        return 64;
    }
    const char *state = argv[1];
    long days = argc > 5 ? strtol(argv[5], NULL, 10) : 90;
    sd.n = strtol(argv[2], NULL, 10);
    sd.ca_name = argv[3];
    sd.directory = argv[4];
    sd.now = time(NULL);
    sd.nb = sd.now - 86400;
    sd.na = sd.now + (time_t)days * 86400;
    if (sd.n <= 0 || days <= 0)
        die("arguments");
    if (uv_loop_init(&loop) < 0)
        die("uv_loop_init");
    if (store_fs_open(&loop, state, 0, &sd.store) < 0)
        die("opening the state directory");

    sd.ca_key = EVP_EC_gen("P-256");
    if (sd.ca_key == NULL)
        die("CA key");
    sd.ca = make_cert(sd.ca_key, "certloop seed CA", NULL, NULL, sd.ca_key, sd.nb, sd.na + 86400,
                      serial);
    char *ca_pem = pem_of(sd.ca, NULL);
    sd.ca_pem = ca_pem;
    for (int w = 0; w < WINDOW; w++)
        seed_next(&sd);
    uv_run(&loop, UV_RUN_DEFAULT);
    store_close(sd.store);
    if (uv_loop_close(&loop) != 0)
        die("uv_loop_close");
    free(ca_pem);
    X509_free(sd.ca);
    EVP_PKEY_free(sd.ca_key);
    if (sd.failed)
        return 1;
    printf("seeded %ld certificates in %s\n", sd.n, state);
    return 0;
}
