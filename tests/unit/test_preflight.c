/* certloop test: the CAA pieces of the pre-flight checks (RFC 8659): RDATA
 * parsing, collecting CAA records from a whole response, the issuer
 * domain of an issue value, and the issue/issuewild decision. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "reactor/preflight.h"

/* flags, tag, value -> RDATA in out; returns its length */
static size_t rdata(uint8_t *out, uint8_t flags, const char *tag, const char *value)
{
    size_t tl = strlen(tag), vl = strlen(value);

    out[0] = flags;
    out[1] = (uint8_t)tl;
    memcpy(out + 2, tag, tl);
    memcpy(out + 2 + tl, value, vl);
    return 2 + tl + vl;
}

static void test_rdata_valid(void **state)
{
    uint8_t b[2 + 15 + 600];
    struct pf_caa c;
    size_t n = rdata(b, 0, "issue", "letsencrypt.org; validationmethods=dns-01");

    (void)state;
    assert_int_equal(pf_caa_parse_rdata(b, n, &c), 0);
    assert_int_equal(c.flags, 0);
    assert_string_equal(c.tag, "issue");
    assert_string_equal(c.value, "letsencrypt.org; validationmethods=dns-01");

    n = rdata(b, 128, "tbs", "");
    assert_int_equal(pf_caa_parse_rdata(b, n, &c), 0);
    assert_int_equal(c.flags, 128);
    assert_string_equal(c.tag, "tbs");
    assert_string_equal(c.value, "");

    /* 15 characters is the longest tag; a long value is truncated */
    char longv[600];
    memset(longv, 'a', 599);
    longv[599] = '\0';
    n = rdata(b, 0, "abcdefghijklmno", longv);
    assert_int_equal(pf_caa_parse_rdata(b, n, &c), 0);
    assert_string_equal(c.tag, "abcdefghijklmno");
    assert_int_equal(strlen(c.value), PF_CAA_VALUE_MAX);
}

static void test_rdata_malformed(void **state)
{
    uint8_t b[64];
    struct pf_caa c;
    size_t n;

    (void)state;
    memset(b, 0, sizeof(b));
    assert_int_equal(pf_caa_parse_rdata(b, 0, &c), -EBADMSG);
    b[0] = 0;
    b[1] = 0; /* tag length 0 */
    assert_int_equal(pf_caa_parse_rdata(b, 2, &c), -EBADMSG);
    n = rdata(b, 0, "abcdefghijklmnop", "x"); /* 16 */
    assert_int_equal(pf_caa_parse_rdata(b, n, &c), -EBADMSG);
    n = rdata(b, 0, "issue", "");
    assert_int_equal(pf_caa_parse_rdata(b, n - 1, &c), -EBADMSG); /* tag past the data */
    n = rdata(b, 0, "iss-ue", "ca.example");
    assert_int_equal(pf_caa_parse_rdata(b, n, &c), -EBADMSG);
    n = rdata(b, 0, "issue", "ca.example");
    b[n - 3] = '\0';
    assert_int_equal(pf_caa_parse_rdata(b, n, &c), -EBADMSG);
}

/* A response: question example.org CAA; answers: a CNAME, then two CAA
 * records owned by the CNAME target (compression pointers throughout). */
static size_t message(uint8_t *m)
{
    static const uint8_t head[] = {
        0x12, 0x34, 0x81, 0x80, 0,    1,   0,   3,   0, 0,   0,   0,      /* header */
        7,    'e',  'x',  'a',  'm',  'p', 'l', 'e', 3, 'o', 'r', 'g', 0, /* qname @12 */
        0x01, 0x01, 0,    1,                                              /* CAA IN */
        0xC0, 12,   0,    5,    0,    1,   0,   0,   0, 60,  0,   6,      /* CNAME */
        3,    'c',  'a',  'a',  0xC0, 12,                                 /* caa.example.org @41 */
    };
    size_t n = sizeof(head);

    memcpy(m, head, n);
    for (int i = 0; i < 2; i++) {
        size_t rl;
        uint8_t rd[64];
        rl = i == 0 ? rdata(rd, 0, "issue", "ca.example") : rdata(rd, 0, "iodef", "mailto:x@y");
        const uint8_t rr[] = {0xC0, 41, 0x01, 0x01, 0, 1, 0, 0, 0, 60, 0, (uint8_t)rl};
        memcpy(m + n, rr, sizeof(rr));
        n += sizeof(rr);
        memcpy(m + n, rd, rl);
        n += rl;
    }
    return n;
}

static void test_from_msg(void **state)
{
    uint8_t m[256];
    struct pf_caa c[4];
    size_t n = message(m);

    (void)state;
    assert_int_equal(pf_caa_from_msg(m, n, c, 4), 2);
    assert_string_equal(c[0].tag, "issue");
    assert_string_equal(c[0].value, "ca.example");
    assert_string_equal(c[1].tag, "iodef");
    assert_string_equal(c[1].value, "mailto:x@y");
    /* counted past max, only max stored */
    memset(c, 0, sizeof(c));
    assert_int_equal(pf_caa_from_msg(m, n, c, 1), 2);
    assert_string_equal(c[0].tag, "issue");
    assert_string_equal(c[1].tag, "");
    /* truncated anywhere: malformed */
    for (size_t cut = 0; cut < n; cut++)
        assert_int_equal(pf_caa_from_msg(m, cut, c, 4), -EBADMSG);
    /* no answers */
    m[7] = 0;
    assert_int_equal(pf_caa_from_msg(m, n, c, 4), 0);
    /* a label type 0x40 is malformed */
    m[7] = 3;
    m[12] = 0x47;
    assert_int_equal(pf_caa_from_msg(m, n, c, 4), -EBADMSG);
}

static void test_issuer_domain(void **state)
{
    char d[64];

    (void)state;
    pf_caa_issuer_domain("letsencrypt.org", d, sizeof(d));
    assert_string_equal(d, "letsencrypt.org");
    pf_caa_issuer_domain("  letsencrypt.org ; accounturi=https://x/1", d, sizeof(d));
    assert_string_equal(d, "letsencrypt.org");
    pf_caa_issuer_domain("ca.example;policy=ev", d, sizeof(d));
    assert_string_equal(d, "ca.example");
    pf_caa_issuer_domain(";", d, sizeof(d));
    assert_string_equal(d, "");
    pf_caa_issuer_domain("", d, sizeof(d));
    assert_string_equal(d, "");
    pf_caa_issuer_domain("abcdefgh", d, 4);
    assert_string_equal(d, "abc");
}

static struct pf_caa rr(uint8_t flags, const char *tag, const char *value)
{
    struct pf_caa c = {.flags = flags};

    strncpy(c.tag, tag, sizeof(c.tag) - 1);
    strncpy(c.value, value, sizeof(c.value) - 1);
    return c;
}

static void test_permits(void **state)
{
    const char *ids[] = {"letsencrypt.org", "ca.example"};
    const char *why = NULL;
    struct pf_caa s[4];

    (void)state;
    /* issue names the CA (case-insensitive, parameters ignored) */
    s[0] = rr(0, "issue", "other.example");
    s[1] = rr(0, "ISSUE", "LetsEncrypt.org; accounturi=x");
    assert_true(pf_caa_permits(s, 2, false, ids, 2, &why));
    assert_non_null(strstr(why, "issue property names the CA"));
    /* issue names another CA only */
    assert_false(pf_caa_permits(s, 1, false, ids, 2, &why));
    assert_non_null(strstr(why, "no issue property"));
    /* ";" forbids everyone */
    s[0] = rr(0, "issue", ";");
    assert_false(pf_caa_permits(s, 1, false, ids, 2, NULL));
    /* no identities known: nothing matches */
    s[0] = rr(0, "issue", "ca.example");
    assert_false(pf_caa_permits(s, 1, false, ids, 0, NULL));
    assert_true(pf_caa_permits(s, 1, false, ids + 1, 1, NULL));
    /* only iodef / only issuewild: not restricted for a plain name */
    s[0] = rr(0, "iodef", "mailto:a@b");
    s[1] = rr(0, "issuewild", ";");
    assert_true(pf_caa_permits(s, 2, false, ids, 2, &why));
    assert_non_null(strstr(why, "not restricted"));
    /* wildcards: issuewild wins over issue */
    s[0] = rr(0, "issue", "ca.example");
    s[1] = rr(0, "issuewild", ";");
    assert_false(pf_caa_permits(s, 2, true, ids, 2, &why));
    assert_non_null(strstr(why, "issuewild"));
    assert_true(pf_caa_permits(s, 2, false, ids, 2, NULL));
    s[1] = rr(0, "issuewild", "letsencrypt.org");
    s[0] = rr(0, "issue", ";");
    assert_true(pf_caa_permits(s, 2, true, ids, 2, NULL));
    assert_false(pf_caa_permits(s, 2, false, ids, 2, NULL));
    /* wildcards fall back to issue without issuewild */
    assert_false(pf_caa_permits(s, 1, true, ids, 2, NULL));
    s[0] = rr(0, "issue", "ca.example");
    assert_true(pf_caa_permits(s, 1, true, ids, 2, NULL));
    /* an unknown critical tag forbids; a non-critical one is ignored */
    s[1] = rr(128, "tbs", "x");
    assert_false(pf_caa_permits(s, 2, false, ids, 2, &why));
    assert_non_null(strstr(why, "critical"));
    s[1] = rr(0, "tbs", "x");
    assert_true(pf_caa_permits(s, 2, false, ids, 2, NULL));
    /* a critical known tag is fine */
    s[1] = rr(128, "iodef", "mailto:a@b");
    assert_true(pf_caa_permits(s, 2, false, ids, 2, NULL));
}

/* RFC 8657: accounturi and validationmethods on a property naming the CA. */
static void test_permits_rfc8657(void **state)
{
    const char *ids[] = {"ca.example"};
    const char *acct = "https://ca.example/acct/1";
    const char *why = NULL;
    struct pf_caa s[2];
    char v[64];

    (void)state;
    assert_true(pf_caa_param("ca.example; accounturi=https://x/1 ;validationmethods=dns-01",
                             "validationmethods", v, sizeof(v)));
    assert_string_equal(v, "dns-01");
    assert_true(pf_caa_param("ca.example;AccountURI = https://x/1", "accounturi", v, sizeof(v)));
    assert_string_equal(v, "https://x/1");
    assert_false(pf_caa_param("ca.example", "accounturi", v, sizeof(v)));
    assert_false(pf_caa_param("ca.example; accounturi", "accounturi", v, sizeof(v)));

    s[0] = rr(0, "issue", "ca.example; accounturi=https://ca.example/acct/1");
    assert_true(pf_caa_permits_rfc8657(s, 1, false, ids, 1, acct, "http-01", &why));
    assert_false(
        pf_caa_permits_rfc8657(s, 1, false, ids, 1, "https://ca.example/acct/2", "http-01", &why));
    assert_non_null(strstr(why, "accounturi of another account"));
    assert_false(pf_caa_permits_rfc8657(s, 1, false, ids, 1, NULL, "http-01", &why));
    assert_non_null(strstr(why, "no account yet"));

    s[0] = rr(0, "issue", "ca.example; validationmethods=dns-01,tls-alpn-01");
    assert_true(pf_caa_permits_rfc8657(s, 1, false, ids, 1, acct, "tls-alpn-01", &why));
    assert_false(pf_caa_permits_rfc8657(s, 1, false, ids, 1, acct, "http-01", &why));
    assert_non_null(strstr(why, "validationmethods without the challenge in use"));
    /* another property naming the CA without parameters permits */
    s[1] = rr(0, "issue", "ca.example");
    assert_true(pf_caa_permits_rfc8657(s, 2, false, ids, 1, acct, "http-01", &why));
    /* without RFC 8657 checking (method NULL) parameters are ignored */
    assert_true(pf_caa_permits(s, 1, false, ids, 1, &why));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rdata_valid), cmocka_unit_test(test_rdata_malformed),
        cmocka_unit_test(test_from_msg),    cmocka_unit_test(test_issuer_domain),
        cmocka_unit_test(test_permits),     cmocka_unit_test(test_permits_rfc8657),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
