/* libFuzzer target: the JSON objects an ACME CA sends (RFC 8555 §7.1):
 * the input is parsed as certloop parses a response body and then read as
 * a directory (profile choice, every member through acme_url_check), an
 * order (status word, finalize, certificate and every authorization URL
 * checked, its "error" as a problem), an authorization (identifier, the
 * http-01 and dns-01 challenges, their URLs and errors) and an ARI
 * renewalInfo. Checks invariants, not just crashes: whatever is shown is
 * printable ASCII; a URL accepted is https and, without allow_other_hosts,
 * refused for a directory on another host; a refusal names its origin; a
 * challenge found has the asked type. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "acme/acme.h"
#include "util/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DIR_URL "https://ca.example:14000/dir"

static void printable(const char *s)
{
    for (; *s != '\0'; s++)
        if (*s < 0x20 || *s > 0x7e)
            abort();
}

static void url(const json_t *v, const char *from)
{
    const char *u = json_string_value(v);
    char *why = NULL;

    if (u == NULL)
        return;
    for (int other = 0; other < 2; other++) {
        int rc = acme_url_check(DIR_URL, other, u, from, &why);
        if (rc == 0) {
            if (why != NULL || strncasecmp(u, "https://", 8) != 0)
                abort();
            /* same origin as one directory cannot be as another's */
            if (!other &&
                acme_url_check("https://elsewhere.example:14000/dir", false, u, from, &why) == 0)
                abort();
            free(why);
            why = NULL;
        } else {
            if (rc != ERR_URL_REFUSED || why == NULL || strstr(why, from) == NULL)
                abort();
            printable(why);
            free(why);
            why = NULL;
        }
    }
}

static void problem(const json_t *err)
{
    struct acme_problem p;

    if (err == NULL || acme_problem_from_json(err, &p) != 0)
        return;
    char *s = acme_problem_str(&p);
    printable(s);
    free(s);
    acme_problem_fini(&p);
}

static void word(const char *w)
{
    char *s = acme_status_word(w);
    if (s != NULL) {
        printable(s);
        if (strlen(s) > 32)
            abort();
    }
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *j = json_loadb((const char *)data, size, 0, NULL);
    const char *key;
    json_t *v;

    if (j == NULL)
        return 0;
    /* a directory */
    static const char *const wants[] = {NULL, "classic", "shortlived"};
    for (size_t i = 0; i < 3; i++) {
        for (int fb = 0; fb < 2; fb++) {
            const char *use = NULL;
            char *why = NULL;
            int rc = acme_profile_choose(j, wants[i], fb, &use, &why);
            if (rc < 0 && why == NULL)
                abort();
            if (rc == 0 && use != NULL && (wants[i] == NULL || strcmp(use, wants[i]) != 0))
                abort();
            free(why);
        }
    }
    /* a dns-persist-01 challenge against a directory's meta (the input as
     * both): an issuer only on success, a reason only on failure, and the
     * issuer one of the challenge's names */
    {
        const json_t *meta = json_object_get(j, "meta");
        const char *issuer = NULL;
        char *why = NULL;
        int rc = acme_dns_persist_issuer(j, meta, &issuer, &why);
        if ((rc == 0) != (issuer != NULL) || (rc == 0) != (why == NULL))
            abort();
        if (rc == 0) {
            bool in = false;
            size_t k;
            json_t *n;
            json_array_foreach(json_object_get(j, "issuerDomainNames"), k, n)
            {
                if (json_is_string(n) && strcmp(json_string_value(n), issuer) == 0)
                    in = true;
            }
            if (!in)
                abort();
        }
        free(why);
    }
    json_object_foreach(j, key, v) url(v, "a directory member");
    /* an order */
    word(json_string_value(json_object_get(j, "status")));
    url(json_object_get(j, "finalize"), "finalize");
    url(json_object_get(j, "certificate"), "certificate");
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(j, "authorizations"), i, a) url(a, "authorizations");
    problem(json_object_get(j, "error"));
    /* an authorization */
    char *id = acme_authz_identifier(j);
    if (id != NULL) {
        printable(id);
        if (strlen(id) > 255)
            abort();
    }
    free(id);
    static const char *const types[] = {"http-01", "dns-01"};
    for (size_t t = 0; t < 2; t++) {
        const json_t *ch = acme_authz_challenge(j, types[t]);
        if (ch == NULL)
            continue;
        if (strcmp(json_string_value(json_object_get(ch, "type")), types[t]) != 0)
            abort();
        url(json_object_get(ch, "url"), "challenge");
        word(json_string_value(json_object_get(ch, "status")));
        problem(json_object_get(ch, "error"));
        const char *tok = json_string_value(json_object_get(ch, "token"));
        if (tok != NULL) {
            char *ka = acme_key_authorization(tok, "thumb");
            char *txt = acme_dns01_txt(ka);
            free(txt);
            free(ka);
        }
    }
    /* a renewalInfo */
    char *text = json_dumps(j, JSON_COMPACT);
    if (text != NULL) {
        struct acme_ari_info ai;
        if (acme_ari_parse(text, strlen(text), &ai) == 0) {
            if (ai.end <= ai.start)
                abort();
            if (ai.explanation_url != NULL)
                printable(ai.explanation_url);
            acme_ari_info_fini(&ai);
        }
        free(text);
    }
    json_decref(j);
    return 0;
}
