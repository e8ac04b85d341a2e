/* seed-state: fills a certloop state directory with N valid stored
 * generations (certs/NAME/GEN/{cert,chain,fullchain,key}.pem + meta.json,
 * `current` -> GEN), all signed by one throwaway EC CA, so that a daemon
 * started on it has nothing due. A benchmark fixture (bench/idle.sh): files
 * are written without fsync, which the daemon's own store never does.
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

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

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

static void write_file(const char *path, const char *data, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    size_t len = strlen(data), off = 0;

    if (fd < 0) {
        fprintf(stderr, "seed-state: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0) {
            fprintf(stderr, "seed-state: %s: write: %s\n", path, strerror(errno));
            exit(1);
        }
        off += (size_t)n;
    }
    close(fd);
}

static void make_dir(const char *path)
{
    if (mkdir(path, 0700) < 0 && errno != EEXIST) {
        fprintf(stderr, "seed-state: mkdir %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

int main(int argc, char **argv)
{
    char path[4096], gen[96], cn[64], san[160], meta[1024], serial_hex[33];
    unsigned char serial[16];
    struct tm tm;

    if (argc < 5) {
        fprintf(stderr, "usage: seed-state STATE_DIR N CA_NAME DIRECTORY [DAYS]\n");
        return 64;
    }
    const char *state = argv[1];
    long n = strtol(argv[2], NULL, 10);
    const char *ca_name = argv[3], *directory = argv[4];
    long days = argc > 5 ? strtol(argv[5], NULL, 10) : 90;
    time_t now = time(NULL);
    time_t nb = now - 86400, na = now + (time_t)days * 86400;

    if (n <= 0 || days <= 0)
        die("arguments");
    make_dir(state);
    snprintf(path, sizeof(path), "%s/certs", state);
    make_dir(path);
    if (gmtime_r(&now, &tm) == NULL)
        die("gmtime_r");

    EVP_PKEY *ca_key = EVP_EC_gen("P-256");
    if (ca_key == NULL)
        die("CA key");
    X509 *ca = make_cert(ca_key, "certloop seed CA", NULL, NULL, ca_key, nb, na + 86400, serial);
    char *ca_pem = pem_of(ca, NULL);

    for (long i = 0; i < n; i++) {
        EVP_PKEY *key = EVP_EC_gen("P-256");
        if (key == NULL)
            die("key");
        snprintf(cn, sizeof(cn), "c%ld.test", i);
        if (i % 2)
            snprintf(san, sizeof(san), "DNS:c%ld.test,DNS:www.c%ld.test", i, i);
        else
            snprintf(san, sizeof(san), "DNS:c%ld.test", i);
        X509 *x = make_cert(key, cn, san, ca, ca_key, nb, na, serial);
        char *cert_pem = pem_of(x, NULL);
        char *key_pem = pem_of(NULL, key);
        size_t fl = strlen(cert_pem) + strlen(ca_pem) + 1;
        char *full = malloc(fl);
        if (full == NULL)
            die("malloc");
        snprintf(full, fl, "%s%s", cert_pem, ca_pem);
        for (int b = 0; b < 16; b++)
            snprintf(serial_hex + 2 * b, 3, "%02x", serial[b]);
        /* generation names look like the store's: YYYYMMDDTHHMMSSZ-xxxx */
        snprintf(gen, sizeof(gen), "%04d%02d%02dT%02d%02d%02dZ-%04lx", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (unsigned long)(i & 0xffff));
        if (i % 2)
            snprintf(meta, sizeof(meta),
                     "{\"domains\": [\"c%ld.test\", \"www.c%ld.test\"], \"ca\": \"%s\", "
                     "\"directory\": \"%s\", \"key\": \"ec-p256\", \"not_before\": %lld, "
                     "\"not_after\": %lld, \"issued_at\": %lld, \"serial\": \"%s\"}\n",
                     i, i, ca_name, directory, (long long)nb, (long long)na, (long long)now,
                     serial_hex);
        else
            snprintf(meta, sizeof(meta),
                     "{\"domains\": [\"c%ld.test\"], \"ca\": \"%s\", \"directory\": \"%s\", "
                     "\"key\": \"ec-p256\", \"not_before\": %lld, \"not_after\": %lld, "
                     "\"issued_at\": %lld, \"serial\": \"%s\"}\n",
                     i, ca_name, directory, (long long)nb, (long long)na, (long long)now,
                     serial_hex);
        snprintf(path, sizeof(path), "%s/certs/c%ld", state, i);
        make_dir(path);
        snprintf(path, sizeof(path), "%s/certs/c%ld/%s", state, i, gen);
        make_dir(path);
        static const char *const files[] = {"cert.pem", "chain.pem", "fullchain.pem", "key.pem",
                                            "meta.json"};
        const char *data[] = {cert_pem, ca_pem, full, key_pem, meta};
        for (int f = 0; f < 5; f++) {
            snprintf(path, sizeof(path), "%s/certs/c%ld/%s/%s", state, i, gen, files[f]);
            write_file(path, data[f], f == 3 ? 0600 : 0644);
        }
        snprintf(path, sizeof(path), "%s/certs/c%ld/current", state, i);
        if (symlink(gen, path) < 0 && errno != EEXIST) {
            fprintf(stderr, "seed-state: symlink %s: %s\n", path, strerror(errno));
            return 1;
        }
        OPENSSL_cleanse(key_pem, strlen(key_pem));
        free(key_pem);
        free(cert_pem);
        free(full);
        X509_free(x);
        EVP_PKEY_free(key);
    }
    free(ca_pem);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    printf("seeded %ld certificates in %s\n", n, state);
    return 0;
}
