/* The fake renewalInfo endpoint (see ari_fake.h). Test support only. */
#include "ari_fake.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

void ari_fake_rfc3339(int64_t t, char *out, size_t n)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL || strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, n, "invalid");
}

void ari_fake_handle(const struct fake_http_request *req, struct fake_http_response *resp,
                     void *arg)
{
    struct ari_fake *a = arg;
    size_t plen = strlen(a->prefix);
    char start[40], end[40];

    if (strcmp(req->method, "GET") != 0 || strncmp(req->target, a->prefix, plen) != 0 ||
        req->target[plen] == '\0') {
        resp->status = 404;
        return;
    }
    a->hits++;
    snprintf(a->last_cert_id, sizeof(a->last_cert_id), "%s", req->target + plen);
    if (a->retry_after != NULL)
        fake_http_resp_header(resp, "Retry-After", "%s", a->retry_after);
    if (a->status != 0 && a->status != 200) {
        resp->status = a->status;
        fake_http_resp_header(resp, "Content-Type", "application/problem+json");
        fake_http_resp_body(resp, "{\"type\":\"urn:ietf:params:acme:error:malformed\","
                                  "\"detail\":\"no such certificate\"}");
        return;
    }
    fake_http_resp_header(resp, "Content-Type", "application/json");
    if (a->raw_body != NULL) {
        fake_http_resp_body(resp, a->raw_body);
        return;
    }
    ari_fake_rfc3339(a->start, start, sizeof(start));
    ari_fake_rfc3339(a->end, end, sizeof(end));
    fake_http_resp_body(resp, "{\"suggestedWindow\":{\"start\":\"");
    fake_http_resp_body(resp, start);
    fake_http_resp_body(resp, "\",\"end\":\"");
    fake_http_resp_body(resp, end);
    fake_http_resp_body(resp, "\"}");
    if (a->explanation_url != NULL) {
        fake_http_resp_body(resp, ",\"explanationURL\":\"");
        fake_http_resp_body(resp, a->explanation_url);
        fake_http_resp_body(resp, "\"");
    }
    fake_http_resp_body(resp, "}");
}
