/* libFuzzer target: arbitrary bytes as the reply to a signed RFC 2136
 * UPDATE, through dns01_reply_check (ldns parsing, the id/opcode checks,
 * TSIG error mapping and HMAC verification). Each input is tried as is and
 * with its header patched to look like our reply (same id, QR, opcode
 * UPDATE) so the deeper paths are reached; the bytes also go through the
 * readers of resolver answers (CNAME target, zone by SOA, NS names). Never
 * crashes or leaks; a failure always comes with a printable ASCII reason, no
 * random input passes the signature check, and a zone found encloses the
 * name. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "challenge/dns01_internal.h"
#include "util/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SECRET "dGhpcyBpcyBhIHRlc3Qgc2VjcmV0IGZvciBUU0lHISE="

static struct dns01_key key;
static struct dns01_msg req;

static void setup(void)
{
    char *why = NULL;

    if (req.wire != NULL)
        return;
    if (dns01_key_parse((const uint8_t *)SECRET, strlen(SECRET), "acme-key.", "hmac-sha256", &key,
                        &why) != 0 ||
        dns01_update_build("test.", "_acme-challenge.a.test.", "value", true, 60, 0x1234, &key,
                           (int64_t)time(NULL), &req, &why) != 0)
        abort();
}

static void check(const uint8_t *w, size_t n)
{
    char *why = NULL;
    uint16_t id;
    bool tc, qr;

    (void)dns01_wire_header(w, n, &id, &tc, &qr);
    int rc = dns01_reply_check(w, n, &req, &key, "test.", (int64_t)time(NULL), &why);
    if (rc == 0) {
        /* Random bytes cannot carry a valid HMAC over our request MAC. */
        abort();
    }
    if (rc != ERR_DNS && rc != ERR_PARSE)
        abort();
    if (why == NULL)
        abort();
    for (const char *c = why; *c != '\0'; c++)
        if (*c < 0x20 || *c > 0x7e)
            abort();
    free(why);
    /* Unsigned view of the same bytes (key NULL). */
    rc = dns01_reply_check(w, n, &req, NULL, "test.", 0, &why);
    if (rc != 0 && rc != ERR_DNS && rc != ERR_PARSE)
        abort();
    if (rc != 0 && why == NULL)
        abort();
    free(why);
}

/* The readers of resolver answers (CNAME, zone by SOA, NS list). */
static void answers(const uint8_t *w, size_t n)
{
    char *out = NULL;
    char **v = NULL;
    size_t k = 0;

    if (dns01_answer_cname(w, n, "_acme-challenge.a.test.", &out) == 0)
        free(out);
    out = NULL;
    if (dns01_answer_zone(w, n, "a.test.", "_acme-challenge.a.test.", &out) == 0 && out != NULL) {
        if (!dns01_name_in_zone("_acme-challenge.a.test.", out))
            abort(); /* a zone must enclose the name */
        free(out);
    }
    if (dns01_answer_ns(w, n, "test.", 4, &v, &k) == 0) {
        if (k > 4)
            abort();
        for (size_t i = 0; i < k; i++)
            free(v[i]);
        free(v);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    check(data, size);
    answers(data, size);
    if (size >= 12 && size <= 65535) {
        uint8_t *w = malloc(size);
        memcpy(w, data, size);
        w[0] = 0x12;
        w[1] = 0x34;
        w[2] = (uint8_t)(0x80 | 5 << 3 | (w[2] & 0x07));
        check(w, size);
        free(w);
    }
    return 0;
}
