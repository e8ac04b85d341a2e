/* The renewal policy (sched_renewal_time, sched_decide) and the reading of
 * what the store remembers about a certificate (meta.json, or the PEM). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "reactor/sched.h"

#include "util/err.h"

#define DAY 86400
#define T0 INT64_C(1800000000) /* 2027-01-15 08:00 UTC */

static char *domains2[] = {"example.org", "www.example.org", NULL};

static struct cfg_ca test_ca = {
    .name = "le",
    .directory = "https://acme.example/dir",
};

static struct cfg_cert make_cert(int64_t renew_before)
{
    struct cfg_cert c;

    memset(&c, 0, sizeof(c));
    c.name = "www";
    c.domains.v = domains2;
    c.domains.n = 2;
    c.ca = &test_ca;
    c.key = CFG_KEY_EC_P256;
    c.renew_before_s = renew_before;
    return c;
}

static void test_default_is_a_third_of_the_lifetime(void **state)
{
    struct cfg_cert c = make_cert(0);
    int64_t when = 0;
    const char *reason = NULL;

    (void)state;
    assert_int_equal(sched_renewal_time(&c, T0, T0 + 90 * DAY, &when, &reason), 0);
    assert_int_equal(when, T0 + 60 * DAY);
    assert_string_equal(reason, "a third of the lifetime remaining");
    /* just over ten days is still "long" */
    assert_int_equal(sched_renewal_time(&c, T0, T0 + 10 * DAY + 3, &when, &reason), 0);
    assert_int_equal(when, T0 + 10 * DAY + 3 - (10 * DAY + 3) / 3);
    assert_string_equal(reason, "a third of the lifetime remaining");
}

static void test_short_lifetimes_renew_at_half(void **state)
{
    struct cfg_cert c = make_cert(0);
    int64_t when = 0;
    const char *reason = NULL;

    (void)state;
    assert_int_equal(sched_renewal_time(&c, T0, T0 + 6 * DAY, &when, &reason), 0);
    assert_int_equal(when, T0 + 3 * DAY);
    assert_string_equal(reason, "half of the lifetime remaining");
    assert_int_equal(sched_renewal_time(&c, T0, T0 + 10 * DAY, &when, &reason), 0);
    assert_int_equal(when, T0 + 5 * DAY);
    assert_string_equal(reason, "half of the lifetime remaining");
}

static void test_renew_before_wins(void **state)
{
    struct cfg_cert c = make_cert(30 * DAY);
    int64_t when = 0;
    const char *reason = NULL;

    (void)state;
    assert_int_equal(sched_renewal_time(&c, T0, T0 + 90 * DAY, &when, &reason), 0);
    assert_int_equal(when, T0 + 60 * DAY);
    assert_string_equal(reason, "renew_before");
    c.renew_before_s = 7 * DAY;
    assert_int_equal(sched_renewal_time(&c, T0, T0 + 90 * DAY, &when, &reason), 0);
    assert_int_equal(when, T0 + 83 * DAY);
    assert_string_equal(reason, "renew_before");
}

static void test_renew_before_longer_than_lifetime_falls_back(void **state)
{
    struct cfg_cert c = make_cert(30 * DAY);
    int64_t when = 0;
    const char *reason = NULL;

    (void)state;
    /* a 6-day certificate with renew_before 30d would be renewed at once, forever */
    assert_int_equal(sched_renewal_time(&c, T0, T0 + 6 * DAY, &when, &reason), 0);
    assert_int_equal(when, T0 + 3 * DAY);
    assert_string_equal(reason, "half of the lifetime remaining");
}

static void test_bad_validity_is_rejected(void **state)
{
    struct cfg_cert c = make_cert(0);
    int64_t when = 42;
    const char *reason = NULL;

    (void)state;
    assert_int_equal(sched_renewal_time(&c, T0, T0, &when, &reason), -EINVAL);
    assert_int_equal(sched_renewal_time(&c, T0, T0 - DAY, &when, &reason), -EINVAL);
    assert_int_equal(when, 42);
    assert_null(reason);
}

static struct sched_meta meta(char **domains, size_t n, const char *key, int64_t nb, int64_t na)
{
    struct sched_meta m;

    memset(&m, 0, sizeof(m));
    m.domains = domains;
    m.n_domains = n;
    m.ca = "le";
    m.directory = "https://acme.example/dir";
    m.key = (char *)key;
    m.not_before = nb;
    m.not_after = na;
    return m;
}

static void test_decide_reasons(void **state)
{
    struct cfg_cert c = make_cert(0);
    struct sched_decision d;
    static char *one[] = {"example.org", NULL};
    static char *three[] = {"example.org", "www.example.org", "old.example.org", NULL};
    struct sched_meta m;

    (void)state;
    sched_decide(&c, NULL, T0, &d);
    assert_int_equal(d.why, SCHED_NO_CERT);
    assert_int_equal(d.when, T0);

    m = meta(one, 1, "ec-p256", T0 - DAY, T0 + 89 * DAY);
    sched_decide(&c, &m, T0, &d);
    assert_int_equal(d.why, SCHED_NAMES_CHANGED);
    assert_string_equal(d.missing, "www.example.org");

    m = meta(three, 3, "ec-p256", T0 - DAY, T0 + 89 * DAY);
    sched_decide(&c, &m, T0, &d);
    assert_int_equal(d.why, SCHED_NAMES_CHANGED);
    assert_null(d.missing);

    m = meta(domains2, 2, "rsa2048", T0 - DAY, T0 + 89 * DAY);
    sched_decide(&c, &m, T0, &d);
    assert_int_equal(d.why, SCHED_KEY_CHANGED);

    m = meta(domains2, 2, "ec-p256", T0 - DAY, T0 + 89 * DAY);
    m.directory = "https://other.example/dir";
    sched_decide(&c, &m, T0, &d);
    assert_int_equal(d.why, SCHED_CA_CHANGED);

    m = meta(domains2, 2, "ec-p256", T0 - DAY, T0 + 89 * DAY);
    sched_decide(&c, &m, T0, &d);
    assert_int_equal(d.why, SCHED_LATER);
    assert_int_equal(d.when, T0 + 59 * DAY);
    assert_string_equal(d.reason, "a third of the lifetime remaining");

    /* past the renewal time but still valid: due now */
    sched_decide(&c, &m, T0 + 70 * DAY, &d);
    assert_int_equal(d.why, SCHED_DUE);
    assert_int_equal(d.when, T0 + 70 * DAY);

    /* expired */
    sched_decide(&c, &m, T0 + 89 * DAY, &d);
    assert_int_equal(d.why, SCHED_EXPIRED);
    sched_decide(&c, &m, T0 + 400 * DAY, &d);
    assert_int_equal(d.why, SCHED_EXPIRED);
    assert_int_equal(d.when, T0 + 400 * DAY);

    /* no CA: an imported certificate is never ordered */
    c.ca = NULL;
    sched_decide(&c, &m, T0, &d);
    assert_int_equal(d.why, SCHED_NEVER);
}

static void test_meta_parse(void **state)
{
    const char *json = "{\"domains\":[\"example.org\",\"www.example.org\"],\"ca\":\"le\","
                       "\"directory\":\"https://acme.example/dir\",\"key\":\"ec-p384\","
                       "\"not_before\":1800000000,\"not_after\":1807776000,\"issued_at\":1}";
    struct sched_meta m;

    (void)state;
    memset(&m, 0, sizeof(m));
    assert_int_equal(sched_meta_parse(json, strlen(json), &m), 0);
    assert_int_equal(m.n_domains, 2);
    assert_string_equal(m.domains[1], "www.example.org");
    assert_null(m.domains[2]);
    assert_string_equal(m.ca, "le");
    assert_string_equal(m.directory, "https://acme.example/dir");
    assert_string_equal(m.key, "ec-p384");
    assert_int_equal(m.not_before, 1800000000);
    assert_int_equal(m.not_after, 1807776000);
    sched_meta_fini(&m);

    const char *no_after = "{\"domains\":[],\"not_before\":1}";
    assert_int_equal(sched_meta_parse(no_after, strlen(no_after), &m), ERR_PARSE);
    const char *bad_domain = "{\"domains\":[1],\"not_before\":1,\"not_after\":2}";
    assert_int_equal(sched_meta_parse(bad_domain, strlen(bad_domain), &m), ERR_PARSE);
    assert_int_equal(sched_meta_parse("{}", 0, &m), ERR_PARSE);
    assert_int_equal(sched_meta_parse("[1]", 3, &m), ERR_PARSE);
}

/* A self-signed EC certificate for names, valid [nb, na]. Owned PEM. */
static char *make_pem(const char *san, int64_t nb, int64_t na)
{
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    char *pem;
    long len;

    assert_non_null(pkey);
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"test", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb);
    ASN1_TIME_set(X509_getm_notAfter(x), (time_t)na);
    X509_set_pubkey(x, pkey);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
    assert_non_null(ext);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    assert_true(X509_sign(x, pkey, EVP_sha256()) > 0);
    assert_int_equal(PEM_write_bio_X509(bio, x), 1);
    len = BIO_get_mem_data(bio, &data);
    pem = strndup(data, (size_t)len);
    BIO_free(bio);
    X509_free(x);
    EVP_PKEY_free(pkey);
    return pem;
}

static void test_meta_from_pem(void **state)
{
    char *pem = make_pem("DNS:Example.ORG,DNS:www.example.org,IP:192.0.2.1", T0, T0 + 90 * DAY);
    struct sched_meta m;

    (void)state;
    memset(&m, 0, sizeof(m));
    assert_int_equal(sched_meta_from_pem(pem, strlen(pem), &m), 0);
    assert_int_equal(m.not_before, T0);
    assert_int_equal(m.not_after, T0 + 90 * DAY);
    assert_int_equal(m.n_domains, 3); /* IP addresses are names too (RFC 8738) */
    assert_string_equal(m.domains[0], "example.org");
    assert_string_equal(m.domains[1], "www.example.org");
    assert_string_equal(m.domains[2], "192.0.2.1");
    assert_null(m.key);
    /* configured without the address: reissue */
    struct cfg_cert c0 = make_cert(0);
    struct sched_decision d0;
    sched_decide(&c0, &m, T0 + DAY, &d0);
    assert_int_equal(d0.why, SCHED_NAMES_CHANGED);
    sched_meta_fini(&m);
    free(pem);
    pem = make_pem("DNS:Example.ORG,DNS:www.example.org", T0, T0 + 90 * DAY);
    assert_int_equal(sched_meta_from_pem(pem, strlen(pem), &m), 0);

    /* what the PEM says is enough to decide: covers both names, renew at 60d */
    struct cfg_cert c = make_cert(0);
    struct sched_decision d;
    sched_decide(&c, &m, T0 + DAY, &d);
    assert_int_equal(d.why, SCHED_LATER);
    assert_int_equal(d.when, T0 + 60 * DAY);
    sched_meta_fini(&m);
    free(pem);

    assert_int_equal(sched_meta_from_pem("not a pem", 9, &m), ERR_PARSE);
}

static void test_duration_fmt(void **state)
{
    char out[32];

    (void)state;
    sched_duration_fmt(30 * DAY, out, sizeof(out));
    assert_string_equal(out, "30d");
    sched_duration_fmt(DAY + 12 * 3600, out, sizeof(out));
    assert_string_equal(out, "1d12h");
    sched_duration_fmt(45, out, sizeof(out));
    assert_string_equal(out, "45s");
    sched_duration_fmt(0, out, sizeof(out));
    assert_string_equal(out, "0s");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_is_a_third_of_the_lifetime),
        cmocka_unit_test(test_short_lifetimes_renew_at_half),
        cmocka_unit_test(test_renew_before_wins),
        cmocka_unit_test(test_renew_before_longer_than_lifetime_falls_back),
        cmocka_unit_test(test_bad_validity_is_rejected),
        cmocka_unit_test(test_decide_reasons),
        cmocka_unit_test(test_meta_parse),
        cmocka_unit_test(test_meta_from_pem),
        cmocka_unit_test(test_duration_fmt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
