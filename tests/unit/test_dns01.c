/* dns-01 pure parts: TSIG key files (plain base64 and BIND syntax), names,
 * the RFC 2136 UPDATE message (checked section by section, and its MAC
 * recomputed here with OpenSSL per RFC 8945 §4.3.3), and the checks of
 * signed replies (good, tampered, wrong key, unsigned, REFUSED, BADTIME). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <ldns/ldns.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "challenge/challenge.h"
#include "challenge/dns01_internal.h"
#include "util/b64.h"
#include "util/err.h"

/* 32 bytes, base64. */
#define SECRET "dGhpcyBpcyBhIHRlc3Qgc2VjcmV0IGZvciBUU0lHISE="
#define SECRET2 "b3RoZXIgc2VjcmV0IG9mIHRoaXJ0eS10d28gYnl0ZXMh"

static int parse(const char *text, const char *name, const char *alg, struct dns01_key *k,
                 char **why)
{
    return dns01_key_parse((const uint8_t *)text, strlen(text), name, alg, k, why);
}

static void test_key_plain_base64(void **state)
{
    struct dns01_key k;
    char *why = NULL;

    (void)state;
    assert_int_equal(parse("  " SECRET "\n", "Acme-Key", "hmac-sha512", &k, &why), 0);
    assert_string_equal(k.name, "acme-key.");
    assert_string_equal(k.algorithm, "hmac-sha512.");
    assert_string_equal(k.secret, SECRET);
    dns01_key_fini(&k);
    /* Default algorithm. */
    assert_int_equal(parse(SECRET, "k.", NULL, &k, &why), 0);
    assert_string_equal(k.algorithm, "hmac-sha256.");
    dns01_key_fini(&k);
}

static void test_key_plain_errors(void **state)
{
    struct dns01_key k;
    char *why = NULL;

    (void)state;
    assert_int_equal(parse("not base64 !!", "k.", NULL, &k, &why), ERR_PARSE);
    assert_non_null(strstr(why, "not base64"));
    free(why);
    assert_int_equal(parse(SECRET "\n" SECRET "\n", "k.", NULL, &k, &why), ERR_PARSE);
    assert_non_null(strstr(why, "one line"));
    free(why);
    assert_int_equal(parse("", "k.", NULL, &k, &why), ERR_PARSE);
    free(why);
    assert_int_equal(parse(SECRET, "k.", "hmac-md5", &k, &why), -EINVAL);
    assert_non_null(strstr(why, "not supported"));
    free(why);
    assert_int_equal(dns01_key_parse((const uint8_t *)"a\0b", 3, "k.", NULL, &k, &why), ERR_PARSE);
    assert_non_null(strstr(why, "NUL"));
    free(why);
}

static void test_key_bind_file(void **state)
{
    static const char file[] =
        "# tsig-keygen output\n"
        "key \"other.\" {\n\talgorithm hmac-sha256;\n\tsecret \"" SECRET2 "\";\n};\n"
        "/* the one we want */\n"
        "key \"acme-key.\" { // trailing comment\n"
        "\talgorithm hmac-sha384; secret \"" SECRET "\"; };\n";
    struct dns01_key k;
    char *why = NULL;

    (void)state;
    /* Name matched case-insensitively and without the dot; the file's
     * algorithm wins over the configured one. */
    assert_int_equal(parse(file, "ACME-KEY", "hmac-sha256", &k, &why), 0);
    assert_string_equal(k.name, "acme-key.");
    assert_string_equal(k.algorithm, "hmac-sha384.");
    assert_string_equal(k.secret, SECRET);
    dns01_key_fini(&k);
    assert_int_equal(parse(file, "other.", NULL, &k, &why), 0);
    assert_string_equal(k.secret, SECRET2);
    assert_string_equal(k.algorithm, "hmac-sha256.");
    dns01_key_fini(&k);
    /* Unquoted name, secret split by whitespace inside the quotes is not
     * allowed by BIND either, but base64 whitespace is. */
    assert_int_equal(
        parse("key k { algorithm HMAC-SHA512.; secret \"" SECRET "\"; };", "k", NULL, &k, &why), 0);
    assert_string_equal(k.name, "k.");
    assert_string_equal(k.algorithm, "hmac-sha512.");
    dns01_key_fini(&k);
}

static void test_key_bind_errors(void **state)
{
    static const struct {
        const char *text;
        const char *want;
        int rc;
    } cases[] = {
        {"key \"k.\" { algorithm hmac-sha256; };", "no secret", ERR_PARSE},
        {"key \"k.\" { secret \"" SECRET "\"; };", "no algorithm", ERR_PARSE},
        {"key \"k.\" { algorithm hmac-md5; secret \"" SECRET "\"; };", "not supported", ERR_PARSE},
        {"key \"k.\" { algorithm hmac-sha256; secret \"" SECRET "\"; }", "expected ';'", ERR_PARSE},
        {"key \"k.\" { algorithm hmac-sha256 secret \"" SECRET "\"; };", "expected ';'", ERR_PARSE},
        {"key \"k. { algorithm hmac-sha256; };", "line 1", ERR_PARSE},
        {"key \"k.\" { algorithm hmac-sha256; secret \"%%%\"; };", "not base64", ERR_PARSE},
        {"key \"k.\" {\n algorithm hmac-sha256;\n secret \"" SECRET "\";\n owner x;\n};",
         "line 4: expected 'algorithm', 'secret' or '}'", ERR_PARSE},
        {"key \"k.\" { algorithm hmac-sha256; secret \"" SECRET "\";", "missing '}'", ERR_PARSE},
        {"key \"x.\" { algorithm hmac-sha256; secret \"" SECRET "\"; };",
         "no key named 'k.' in the file (it holds 'x.')", -EINVAL},
        {"key /* never closed", "line 1", ERR_PARSE},
        {"key \"k.\" { algorithm hmac-sha256; secret \"" SECRET "\"; }; options { };",
         "expected 'key'", ERR_PARSE},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct dns01_key k;
        char *why = NULL;
        int rc = parse(cases[i].text, "k.", NULL, &k, &why);
        if (rc != cases[i].rc || why == NULL || strstr(why, cases[i].want) == NULL)
            fail_msg("case %zu: rc %d why '%s', want %d '%s'", i, rc, why ? why : "(null)",
                     cases[i].rc, cases[i].want);
        free(why);
    }
}

static void test_names(void **state)
{
    char *s;

    (void)state;
    assert_true(dns01_name_in_zone("_acme-challenge.A.test", "test."));
    assert_true(dns01_name_in_zone("test.", "TEST"));
    assert_true(dns01_name_in_zone("x.test", "."));
    assert_false(dns01_name_in_zone("xtest.", "test."));
    assert_false(dns01_name_in_zone("test.", "a.test."));
    assert_false(dns01_name_in_zone("example.org.", "test."));
    s = dns01_name_fqdn("A.Test");
    assert_string_equal(s, "a.test.");
    free(s);
    s = chal_dns01_record_name("*.Www.Example.org.");
    assert_string_equal(s, "_acme-challenge.www.example.org");
    free(s);
    s = chal_dns01_record_name("example.org");
    assert_string_equal(s, "_acme-challenge.example.org");
    free(s);
    /* dns-account-01: the validation name as given */
    s = chal_dns01_record_name("_UJMMOVF2VN55TGYE._acme-challenge.Example.org");
    assert_string_equal(s, "_ujmmovf2vn55tgye._acme-challenge.example.org");
    free(s);
}

static struct dns01_key test_key(const char *alg)
{
    struct dns01_key k;
    char *why = NULL;

    assert_int_equal(parse(SECRET, "acme-key.", alg, &k, &why), 0);
    return k;
}

/* Appends a name in uncompressed, lower-case wire form. */
static size_t put_name(uint8_t *p, const char *name)
{
    size_t n = 0;
    const char *s = name;

    while (*s != '\0') {
        const char *dot = strchr(s, '.');
        size_t l = dot != NULL ? (size_t)(dot - s) : strlen(s);
        p[n++] = (uint8_t)l;
        for (size_t i = 0; i < l; i++)
            p[n++] = (uint8_t)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
        s += l;
        if (*s == '.')
            s++;
    }
    p[n++] = 0;
    return n;
}

/* RFC 8945 §4.3.3: the MAC over the message without its TSIG record (ARCOUNT
 * decremented) followed by the TSIG variables, computed here without ldns. */
static void check_request_mac(const struct dns01_msg *m, const char *alg_name, const EVP_MD *md)
{
    ldns_pkt *pkt = NULL;
    uint8_t buf[2048];
    size_t n;

    assert_int_equal(ldns_wire2pkt(&pkt, m->wire, m->len), LDNS_STATUS_OK);
    const ldns_rr *tsig = ldns_pkt_tsig(pkt);
    assert_non_null(tsig);
    const ldns_rdf *t = ldns_rr_rdf(tsig, 1);
    assert_int_equal(ldns_rdf_size(t), 6);
    /* The TSIG record is the last thing in the message: find where it
     * starts by its owner name (acme-key.) followed by type 250. */
    uint8_t owner[64];
    size_t olen = put_name(owner, "acme-key.");
    size_t start = 0;
    for (size_t i = 12; i + olen + 2 <= m->len; i++)
        if (memcmp(m->wire + i, owner, olen) == 0 && m->wire[i + olen] == 0 &&
            m->wire[i + olen + 1] == 250)
            start = i;
    assert_true(start > 12);
    memcpy(buf, m->wire, start);
    uint16_t ar = (uint16_t)(buf[10] << 8 | buf[11]);
    ar--;
    buf[10] = (uint8_t)(ar >> 8);
    buf[11] = (uint8_t)ar;
    n = start;
    n += put_name(buf + n, "acme-key.");
    buf[n++] = 0; /* class ANY */
    buf[n++] = 255;
    memset(buf + n, 0, 4); /* TTL */
    n += 4;
    n += put_name(buf + n, alg_name);
    memcpy(buf + n, ldns_rdf_data(t), 6); /* time signed */
    n += 6;
    buf[n++] = 300 >> 8; /* fudge */
    buf[n++] = 300 & 0xff;
    memset(buf + n, 0, 4); /* error, other len */
    n += 4;
    uint8_t *key = NULL;
    size_t keylen = 0;
    assert_int_equal(b64_decode(SECRET, strlen(SECRET), &key, &keylen), 0);
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    assert_non_null(HMAC(md, key, (int)keylen, buf, n, mac, &maclen));
    assert_int_equal(m->mac_len, maclen);
    assert_memory_equal(m->mac, mac, maclen);
    free(key);
    ldns_pkt_free(pkt);
}

/* A value longer than 255 bytes is sent as several character-strings
 * (RFC 1035 §3.3.14), 255 bytes each but the last. */
static void test_update_long_value(void **state)
{
    struct dns01_key k = test_key(NULL);
    struct dns01_msg m;
    ldns_pkt *pkt = NULL;
    char *why = NULL;
    char v[301];

    (void)state;
    for (size_t i = 0; i < 300; i++)
        v[i] = (char)('a' + i % 26);
    v[300] = '\0';
    assert_int_equal(
        dns01_update_build("test.", "_validation-persist.a.test", v, true, 60, 5, &k, 0, &m, &why),
        0);
    assert_int_equal(ldns_wire2pkt(&pkt, m.wire, m.len), LDNS_STATUS_OK);
    ldns_rr *u = ldns_rr_list_rr(ldns_pkt_authority(pkt), 0);
    assert_int_equal(ldns_rr_rd_count(u), 2);
    assert_int_equal(ldns_rdf_size(ldns_rr_rdf(u, 0)), 256);
    assert_int_equal(ldns_rdf_size(ldns_rr_rdf(u, 1)), 46);
    assert_memory_equal(ldns_rdf_data(ldns_rr_rdf(u, 0)) + 1, v, 255);
    assert_memory_equal(ldns_rdf_data(ldns_rr_rdf(u, 1)) + 1, v + 255, 45);
    ldns_pkt_free(pkt);
    dns01_msg_fini(&m);
    dns01_key_fini(&k);
}

static void test_update_add_message(void **state)
{
    struct dns01_key k = test_key("hmac-sha256");
    struct dns01_msg m;
    ldns_pkt *pkt = NULL;
    char *why = NULL;

    (void)state;
    assert_int_equal(dns01_update_build("Test", "_acme-challenge.A.test.", "value-1", true, 60,
                                        0x1234, &k, (int64_t)time(NULL), &m, &why),
                     0);
    assert_int_equal(m.id, 0x1234);
    assert_int_equal(ldns_wire2pkt(&pkt, m.wire, m.len), LDNS_STATUS_OK);
    assert_int_equal(ldns_pkt_id(pkt), 0x1234);
    assert_int_equal(ldns_pkt_get_opcode(pkt), LDNS_PACKET_UPDATE);
    assert_false(ldns_pkt_qr(pkt));
    /* Zone section (the question section's place): test. SOA IN. */
    assert_int_equal(ldns_pkt_qdcount(pkt), 1);
    ldns_rr *z = ldns_rr_list_rr(ldns_pkt_question(pkt), 0);
    char *zs = ldns_rdf2str(ldns_rr_owner(z));
    assert_string_equal(zs, "test.");
    free(zs);
    assert_int_equal(ldns_rr_get_type(z), LDNS_RR_TYPE_SOA);
    /* No prerequisites; one update: add TXT "value-1", class IN, TTL 60. */
    assert_int_equal(ldns_pkt_ancount(pkt), 0);
    assert_int_equal(ldns_pkt_nscount(pkt), 1);
    ldns_rr *u = ldns_rr_list_rr(ldns_pkt_authority(pkt), 0);
    char *us = ldns_rr2str(u);
    assert_string_equal(us, "_acme-challenge.a.test.\t60\tIN\tTXT\t\"value-1\"\n");
    free(us);
    char *alg = ldns_rdf2str(ldns_rr_rdf(ldns_pkt_tsig(pkt), 0));
    assert_string_equal(alg, "hmac-sha256.");
    free(alg);
    ldns_pkt_free(pkt);
    check_request_mac(&m, "hmac-sha256.", EVP_sha256());
    dns01_msg_fini(&m);
    dns01_key_fini(&k);
}

static void test_update_delete_message(void **state)
{
    struct dns01_key k = test_key("hmac-sha512");
    struct dns01_msg m;
    ldns_pkt *pkt = NULL;
    char *why = NULL;

    (void)state;
    assert_int_equal(dns01_update_build("test.", "_acme-challenge.a.test", "v2", false, 60, 7, &k,
                                        (int64_t)time(NULL), &m, &why),
                     0);
    assert_int_equal(ldns_wire2pkt(&pkt, m.wire, m.len), LDNS_STATUS_OK);
    ldns_rr *u = ldns_rr_list_rr(ldns_pkt_authority(pkt), 0);
    /* RFC 2136 §2.5.4: class NONE, TTL 0, the exact RDATA. */
    assert_int_equal(ldns_rr_get_class(u), LDNS_RR_CLASS_NONE);
    assert_int_equal(ldns_rr_ttl(u), 0);
    assert_int_equal(ldns_rr_get_type(u), LDNS_RR_TYPE_TXT);
    const ldns_rdf *r = ldns_rr_rdf(u, 0);
    assert_int_equal(ldns_rdf_size(r), 3);
    assert_memory_equal(ldns_rdf_data(r), "\002v2", 3);
    ldns_pkt_free(pkt);
    check_request_mac(&m, "hmac-sha512.", EVP_sha512());
    dns01_msg_fini(&m);
    dns01_key_fini(&k);
}

/* Regression: ldns 1.8.3 knows hmac-sha384 only as "hmac-shac384.", so
 * updates signed through it failed ("Unknown cryptographic algorithm") and
 * its name would have been wrong on the wire anyway. The MAC is ours now. */
static void test_update_hmac_sha384(void **state)
{
    struct dns01_key k = test_key("hmac-sha384");
    struct dns01_msg m;
    ldns_pkt *pkt = NULL;
    char *why = NULL;

    (void)state;
    int rc = dns01_update_build("test.", "_acme-challenge.a.test", "v384", true, 60, 9, &k,
                                (int64_t)time(NULL), &m, &why);
    if (rc != 0)
        fail_msg("hmac-sha384: %s", why != NULL ? why : "?");
    assert_int_equal(ldns_wire2pkt(&pkt, m.wire, m.len), LDNS_STATUS_OK);
    char *alg = ldns_rdf2str(ldns_rr_rdf(ldns_pkt_tsig(pkt), 0));
    assert_string_equal(alg, "hmac-sha384.");
    free(alg);
    ldns_pkt_free(pkt);
    assert_int_equal(m.mac_len, 48);
    check_request_mac(&m, "hmac-sha384.", EVP_sha384());
    dns01_msg_fini(&m);
    dns01_key_fini(&k);
}

static void test_update_rejects_bad_input(void **state)
{
    struct dns01_key k = test_key(NULL);
    struct dns01_msg m;
    char *why = NULL;
    char big[2050];

    (void)state;
    assert_int_equal(dns01_update_build("test.", "a.example.", "v", true, 60, 1, &k, 0, &m, &why),
                     -EINVAL);
    assert_non_null(strstr(why, "not inside zone"));
    free(why);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(dns01_update_build("test.", "a.test.", big, true, 60, 1, &k, 0, &m, &why),
                     -EINVAL);
    free(why);
    assert_int_equal(dns01_update_build("test.", "a.test.", "", true, 60, 1, &k, 0, &m, &why),
                     -EINVAL);
    free(why);
    dns01_key_fini(&k);
}

/* A server's reply to req: QR, same id, opcode UPDATE, rcode; signed over
 * the request MAC with (name, secret) unless name is NULL; tsig_error set
 * in the TSIG record when non-zero. */
static void make_reply(const struct dns01_msg *req, uint16_t id, ldns_pkt_rcode rcode,
                       const char *name, const char *secret, uint16_t tsig_error, uint8_t **wire,
                       size_t *len)
{
    ldns_pkt *p = ldns_pkt_new();
    ldns_rdf *qmac = NULL;

    ldns_pkt_set_id(p, id);
    ldns_pkt_set_qr(p, true);
    ldns_pkt_set_opcode(p, LDNS_PACKET_UPDATE);
    ldns_pkt_set_rcode(p, (uint8_t)rcode);
    if (name != NULL) {
        uint8_t *m = malloc(req->mac_len + 2);
        m[0] = (uint8_t)(req->mac_len >> 8);
        m[1] = (uint8_t)req->mac_len;
        memcpy(m + 2, req->mac, req->mac_len);
        qmac = ldns_rdf_new_frm_data(LDNS_RDF_TYPE_INT16_DATA, req->mac_len + 2, m);
        free(m);
        assert_int_equal(ldns_pkt_tsig_sign(p, name, secret, 300, "hmac-sha256.", qmac),
                         LDNS_STATUS_OK);
        if (tsig_error != 0) {
            ldns_rr *t = ldns_pkt_tsig(p);
            ldns_rdf *e = ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, tsig_error);
            ldns_rdf_deep_free(ldns_rr_set_rdf(t, e, 5));
        }
    }
    assert_int_equal(ldns_pkt2wire(wire, p, len), LDNS_STATUS_OK);
    ldns_rdf_deep_free(qmac);
    ldns_pkt_free(p);
}

static void test_reply_checks(void **state)
{
    struct dns01_key k = test_key("hmac-sha256");
    struct dns01_msg m;
    char *why = NULL;
    uint8_t *w = NULL;
    size_t n = 0;
    int64_t now = (int64_t)time(NULL);

    (void)state;
    assert_int_equal(dns01_update_build("test.", "_acme-challenge.a.test.", "v", true, 60, 99, &k,
                                        now, &m, &why),
                     0);

    /* Good: signed by the server with the same key over our MAC. */
    make_reply(&m, 99, LDNS_RCODE_NOERROR, "acme-key.", SECRET, 0, &w, &n);
    assert_int_equal(dns01_reply_check(w, n, &m, &k, "test.", now, &why), 0);
    assert_null(why);
    /* BADTIME from our side: our clock is 1000 s ahead of the signature. */
    assert_int_equal(dns01_reply_check(w, n, &m, &k, "test.", now + 1000, &why), ERR_DNS);
    assert_non_null(strstr(why, "BADTIME"));
    free(why);
    /* Tampered: one bit of the header flags changed after signing. */
    w[3] ^= 0x10;
    assert_int_equal(dns01_reply_check(w, n, &m, &k, "test.", now, &why), ERR_DNS);
    assert_non_null(strstr(why, "does not verify"));
    free(why);
    free(w);

    /* Signed with another secret. */
    make_reply(&m, 99, LDNS_RCODE_NOERROR, "acme-key.", SECRET2, 0, &w, &n);
    assert_int_equal(dns01_reply_check(w, n, &m, &k, "test.", now, &why), ERR_DNS);
    assert_non_null(strstr(why, "does not verify"));
    free(why);
    free(w);

    /* Signed with another key name. */
    make_reply(&m, 99, LDNS_RCODE_NOERROR, "other-key.", SECRET, 0, &w, &n);
    assert_int_equal(dns01_reply_check(w, n, &m, &k, "test.", now, &why), ERR_DNS);
    assert_non_null(strstr(why, "another key or algorithm"));
    free(why);
    free(w);

    /* Another id: not our reply. */
    make_reply(&m, 98, LDNS_RCODE_NOERROR, "acme-key.", SECRET, 0, &w, &n);
    assert_int_equal(dns01_reply_check(w, n, &m, &k, "test.", now, &why), ERR_PARSE);
    free(why);
    free(w);

    /* Unsigned NOERROR to a signed request. */
    make_reply(&m, 99, LDNS_RCODE_NOERROR, NULL, NULL, 0, &w, &n);
    assert_int_equal(dns01_reply_check(w, n, &m, &k, "test.", now, &why), ERR_DNS);
    assert_non_null(strstr(why, "not signed"));
    free(why);
    free(w);

    /* REFUSED and NOTAUTH say what to fix. */
    make_reply(&m, 99, LDNS_RCODE_REFUSED, NULL, NULL, 0, &w, &n);
    assert_int_equal(dns01_reply_check(w, n, &m, &k, "test.", now, &why), ERR_DNS);
    assert_non_null(strstr(why, "REFUSED: the server refuses updates to zone 'test.' with key "
                                "'acme-key.'"));
    free(why);
    free(w);
    make_reply(&m, 99, LDNS_RCODE_NOTAUTH, NULL, NULL, 0, &w, &n);
    assert_int_equal(dns01_reply_check(w, n, &m, &k, "test.", now, &why), ERR_DNS);
    assert_non_null(strstr(why, "NOTAUTH: the server does not accept updates signed with key "
                                "'acme-key.' for zone 'test.'"));
    free(why);
    free(w);

    /* TSIG errors in the server's TSIG record. */
    static const struct {
        uint16_t err;
        const char *want;
    } errs[] = {{16, "BADSIG"}, {17, "BADKEY"}, {18, "BADTIME: our clock and the server's"}};
    for (size_t i = 0; i < 3; i++) {
        make_reply(&m, 99, LDNS_RCODE_NOTAUTH, "acme-key.", SECRET, errs[i].err, &w, &n);
        assert_int_equal(dns01_reply_check(w, n, &m, &k, "test.", now, &why), ERR_DNS);
        if (strstr(why, errs[i].want) == NULL)
            fail_msg("tsig error %u: %s", errs[i].err, why);
        free(why);
        free(w);
    }

    /* Garbage and short input. */
    assert_int_equal(dns01_reply_check((const uint8_t *)"\x01\x02", 2, &m, &k, "test.", now, &why),
                     ERR_PARSE);
    free(why);
    dns01_msg_fini(&m);
    dns01_key_fini(&k);
}

/* An answer message built from zone-file lines: "an:" or "ns:" prefixes
 * choose the section. */
static uint8_t *answer(const char *const *lines, size_t *len)
{
    ldns_pkt *p = ldns_pkt_new();
    uint8_t *w = NULL;

    ldns_pkt_set_id(p, 7);
    ldns_pkt_set_qr(p, true);
    for (size_t i = 0; lines[i] != NULL; i++) {
        ldns_rr *rr = NULL;
        assert_int_equal(ldns_rr_new_frm_str(&rr, lines[i] + 3, 0, NULL, NULL), LDNS_STATUS_OK);
        ldns_pkt_push_rr(
            p, strncmp(lines[i], "an:", 3) == 0 ? LDNS_SECTION_ANSWER : LDNS_SECTION_AUTHORITY, rr);
    }
    assert_int_equal(ldns_pkt2wire(&w, p, len), LDNS_STATUS_OK);
    ldns_pkt_free(p);
    return w;
}

static void test_answer_readers(void **state)
{
    static const char *const cname[] = {"an:_acme-challenge.B.test. 60 IN CNAME b.ACME-dns.test.",
                                        NULL};
    static const char *const soa_an[] = {"an:Test. 60 IN SOA ns1.test. h.test. 1 2 3 4 5", NULL};
    static const char *const soa_auth[] = {
        "ns:example.org. 60 IN SOA ns1.example.org. h.example.org. 1 2 3 4 5", NULL};
    static const char *const ns[] = {"an:test. 60 IN NS ns1.test.", "an:other. 60 IN NS ns9.other.",
                                     "an:test. 60 IN NS NS2.test.", NULL};
    size_t n = 0, k = 0;
    uint8_t *w;
    char *out = NULL;
    char **v = NULL;

    (void)state;
    w = answer(cname, &n);
    assert_int_equal(dns01_answer_cname(w, n, "_acme-challenge.b.test", &out), 0);
    assert_string_equal(out, "b.acme-dns.test.");
    free(out);
    assert_int_equal(dns01_answer_cname(w, n, "_acme-challenge.c.test.", &out), 0);
    assert_null(out);
    free(w);

    w = answer(soa_an, &n);
    assert_int_equal(dns01_answer_zone(w, n, "test.", "_acme-challenge.a.test.", &out), 0);
    assert_string_equal(out, "test.");
    free(out);
    /* An answer SOA owned by another name than the query is not the apex. */
    assert_int_equal(dns01_answer_zone(w, n, "a.test.", "_acme-challenge.a.test.", &out), 0);
    assert_null(out);
    free(w);

    w = answer(soa_auth, &n);
    assert_int_equal(dns01_answer_zone(w, n, "_acme-challenge.www.example.org",
                                       "_acme-challenge.www.example.org", &out),
                     0);
    assert_string_equal(out, "example.org.");
    free(out);
    /* An authority SOA that does not enclose the name is ignored. */
    assert_int_equal(dns01_answer_zone(w, n, "x.test.", "x.test.", &out), 0);
    assert_null(out);
    free(w);

    w = answer(ns, &n);
    assert_int_equal(dns01_answer_ns(w, n, "TEST", 8, &v, &k), 0);
    assert_int_equal(k, 2);
    assert_string_equal(v[0], "ns1.test.");
    assert_string_equal(v[1], "ns2.test.");
    free(v[0]);
    free(v[1]);
    free(v);
    assert_int_equal(dns01_answer_ns(w, n, "test.", 1, &v, &k), 0);
    assert_int_equal(k, 1);
    free(v[0]);
    free(v);
    /* Truncated: malformed. */
    assert_int_equal(dns01_answer_ns(w, n - 3, "test.", 8, &v, &k), ERR_PARSE);
    assert_int_equal(dns01_answer_cname(w, 5, "x.", &out), ERR_PARSE);
    free(w);
}

static void test_wire_sane_one_tsig_last(void **state)
{
    struct dns01_key k = test_key("hmac-sha256");
    struct dns01_msg m;
    char *why = NULL;

    (void)state;
    assert_int_equal(
        dns01_update_build("test.", "a.test.", "v", true, 60, 1, &k, (int64_t)time(NULL), &m, &why),
        0);
    assert_true(dns01_wire_sane(m.wire, m.len));
    /* Two TSIG records: the message again with its TSIG appended twice. */
    ldns_pkt *p = NULL;
    assert_int_equal(ldns_wire2pkt(&p, m.wire, m.len), LDNS_STATUS_OK);
    ldns_rr *t = ldns_rr_clone(ldns_pkt_tsig(p));
    ldns_pkt_push_rr(p, LDNS_SECTION_ADDITIONAL, t);
    uint8_t *w = NULL;
    size_t n = 0;
    assert_int_equal(ldns_pkt2wire(&w, p, &n), LDNS_STATUS_OK);
    assert_false(dns01_wire_sane(w, n));
    assert_false(dns01_wire_sane(m.wire, m.len - 1));
    assert_false(dns01_wire_sane(m.wire, 11));
    free(w);
    ldns_pkt_free(p);
    dns01_msg_fini(&m);
    dns01_key_fini(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_plain_base64),
        cmocka_unit_test(test_key_plain_errors),
        cmocka_unit_test(test_key_bind_file),
        cmocka_unit_test(test_key_bind_errors),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_update_add_message),
        cmocka_unit_test(test_update_long_value),
        cmocka_unit_test(test_update_delete_message),
        cmocka_unit_test(test_update_hmac_sha384),
        cmocka_unit_test(test_update_rejects_bad_input),
        cmocka_unit_test(test_reply_checks),
        cmocka_unit_test(test_answer_readers),
        cmocka_unit_test(test_wire_sane_one_tsig_last),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
