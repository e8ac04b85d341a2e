/* An ARI (RFC 9773) renewalInfo endpoint for loop tests, as a handler for
 * fake_http: answers GET PREFIX/CERTID with a suggested window, an optional
 * explanationURL and Retry-After, or an error status with a problem
 * document; counts requests and remembers the last CertID asked for. */
#ifndef CERTLOOP_TESTS_ARI_FAKE_H
#define CERTLOOP_TESTS_ARI_FAKE_H

#include <stddef.h>
#include <stdint.h>

#include "fake_http.h"

struct ari_fake {
    const char *prefix;          /* e.g. "/acme/renewal-info/" (the directory's renewalInfo path) */
    int64_t start, end;          /* the window, Unix seconds */
    const char *explanation_url; /* or NULL */
    const char *retry_after;     /* Retry-After value, or NULL */
    int status;                  /* 0: 200 with the window; else this status and a problem */
    const char *raw_body;        /* non-NULL: sent as the 200 body instead (garbage tests) */
    /* filled in by the handler */
    unsigned hits;
    char last_cert_id[512];
};

/* The fake_http handler; arg is a struct ari_fake. Other paths get 404. */
void ari_fake_handle(const struct fake_http_request *req, struct fake_http_response *resp,
                     void *arg);
/* Unix seconds as "YYYY-MM-DDTHH:MM:SSZ" into out (at least 21 bytes). */
void ari_fake_rfc3339(int64_t t, char *out, size_t n);

#endif
