/* `certloop persist-record NAME [--publish]`: the persistent TXT records
 * of dns-persist-01 (draft-ietf-acme-dns-persist-02) for a certificate,
 * from the directory's issuerDomainNames and accountHashPrefix and the
 * account (URL and key) in the state directory;
 * with --publish they are put in place once through the certificate's
 * [dns.NAME] solver and checked on every authoritative server. A one-shot
 * on a private loop. */
#include "reactor/persist.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <uv.h>

#include "acme/acme.h"
#include "net/net.h"
#include "reactor/dns01_provider.h"
#include "reactor/preflight.h"
#include "util/err.h"
#include "util/xalloc.h"

struct persist_ctx {
    json_t *ids;  /* owned: meta.issuerDomainNames */
    char *prefix; /* owned: meta.accountHashPrefix */
    char *error;  /* owned */
    int pending;  /* publications in flight */
    int failed;
    FILE *out, *err;
};

static void dir_cb(int status, const struct http_response *r, void *arg)
{
    struct persist_ctx *x = arg;
    json_t *j = NULL;

    if (status != 0 || r->status != 200) {
        x->error = xasprintf("the CA directory: %s",
                             status != 0 ? (r->error != NULL ? r->error : err_str(status))
                                         : "not HTTP 200");
        return;
    }
    j = json_loadb(r->body.data != NULL ? r->body.data : "", r->body.len, 0, NULL);
    json_t *meta = json_object_get(j, "meta");
    json_t *ids = json_object_get(meta, "issuerDomainNames");
    const char *prefix = json_string_value(json_object_get(meta, "accountHashPrefix"));
    /* draft-ietf-acme-dns-persist-02 §3.2 and §4.1: both are needed to
     * pre-provision a record */
    if (json_is_array(ids) && json_array_size(ids) > 0 && json_array_size(ids) <= 10 &&
        prefix != NULL)
        x->ids = json_incref(ids);
    else
        x->error = xstrdup("the CA's directory has no issuerDomainNames (1 to 10 names) and "
                           "accountHashPrefix to pre-provision dns-persist-01 records with "
                           "(draft-ietf-acme-dns-persist-02 sections 3.2 and 4.1)");
    x->prefix = prefix != NULL ? xstrdup(prefix) : NULL;
    json_decref(j);
}

struct pub {
    struct persist_ctx *x;
    char *name, *value;
};

static void pub_cb(int status, const char *detail, void *arg)
{
    struct pub *p = arg;

    if (status != 0) {
        fprintf(p->x->err, "certloop persist-record: %s: %s\n", p->name,
                detail != NULL ? detail : err_str(status));
        p->x->failed++;
    } else {
        fprintf(p->x->out, "published %s (served by every authoritative server)\n", p->name);
    }
    p->x->pending--;
    free(p->name);
    free(p->value);
    free(p);
}

int persist_record_run(struct config *cfg, const char *name, bool publish, FILE *out, FILE *err)
{
    const struct cfg_cert *cc = config_cert_find(cfg, name);
    struct persist_ctx x = {.out = out, .err = err};
    struct http_client *http = NULL;
    struct dns01_provider *prov = NULL;
    char *url = NULL, *thumb = NULL;
    uv_loop_t loop;
    int rc, exit_code = 1;

    if (cc == NULL || cc->ca == NULL) {
        fprintf(err,
                "certloop persist-record: no certificate '%s' with a CA in the "
                "configuration\n",
                name);
        return 64;
    }
    if (cc->challenge != CFG_CHAL_DNSPERSIST01) {
        fprintf(err,
                "certloop persist-record: cert=%s uses challenge = \"%s\", not "
                "\"dns-persist-01\"\n",
                name, config_challenge_name(cc->challenge));
        return 64;
    }
    url = pf_account(cfg, cc, &thumb);
    if (url == NULL || thumb == NULL) {
        fprintf(err,
                "certloop persist-record: cert=%s: no account for ca=%s in %s/accounts yet: "
                "the first order registers it (and, with the record missing, fails naming "
                "it); run this again then\n",
                name, cc->ca->name, cfg->daemon.state_dir);
        free(url);
        free(thumb);
        return 69;
    }
    if (cc->persist_until > 0 && cc->persist_until <= (int64_t)time(NULL))
        fprintf(err,
                "certloop persist-record: warning: cert=%s: persist_until has passed: the CA "
                "refuses these records; set a later persist_until\n",
                name);
    uv_loop_init(&loop);
    rc = http_client_open(&loop, &http);
    if (rc == 0) {
        struct http_request_opts ho = {
            .method = "GET", .url = cc->ca->directory, .trust_file = cc->ca->trust};
        rc = http_req_start(http, &ho, dir_cb, &x, NULL);
    }
    if (rc == 0)
        uv_run(&loop, UV_RUN_DEFAULT);
    if (rc < 0 && x.error == NULL)
        x.error = xasprintf("the CA directory: %s", err_str(rc));
    if (x.error == NULL) {
        size_t i;
        json_t *v;
        if (publish && dns01_provider_open(&loop, cfg, &prov) < 0) {
            x.error = xstrdup("cannot start the dns solver");
            prov = NULL;
        }
        for (size_t d = 0; d < cc->domains.n && x.error == NULL; d++) {
            const char *dom = cc->domains.v[d];
            bool wild = strncmp(dom, "*.", 2) == 0;
            const char *base = wild ? dom + 2 : dom;
            char *rname = xasprintf("_validation-persist.%s", base);
            char *auri = acme_dns_persist_account_uri(x.prefix, base, thumb, url);
            json_array_foreach(x.ids, i, v)
            {
                const char *issuer = json_string_value(v);
                if (issuer == NULL || auri == NULL)
                    continue;
                char *value = acme_dns_persist_value(issuer, auri, wild, cc->persist_until);
                /* zone-file form: character-strings of at most 255
                 * octets (draft-ietf-acme-dns-persist-02 §9.1) */
                fprintf(out, "%s. IN TXT", rname);
                for (size_t off = 0, vl = strlen(value); off < vl; off += 255)
                    fprintf(out, " \"%.*s\"", (int)(vl - off < 255 ? vl - off : 255), value + off);
                fprintf(out, "\n");
                if (prov != NULL) {
                    struct pub *p = xcalloc(1, sizeof(*p));
                    p->x = &x;
                    p->name = xstrdup(rname);
                    p->value = xstrdup(value);
                    if (dns01_provider_record_start(prov, cfg, cc, rname, value, true, pub_cb, p,
                                                    NULL) == 0) {
                        x.pending++;
                    } else {
                        fprintf(err, "certloop persist-record: %s: cannot start\n", rname);
                        x.failed++;
                        free(p->name);
                        free(p->value);
                        free(p);
                    }
                }
                free(value);
            }
            free(auri);
            free(rname);
        }
        if (prov != NULL) {
            while (x.pending > 0 && uv_run(&loop, UV_RUN_ONCE) != 0)
                ;
            dns01_provider_close(prov);
        }
    }
    if (http != NULL)
        http_client_close(http);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (x.error != NULL) {
        fprintf(err, "certloop persist-record: cert=%s ca=%s: %s\n", name, cc->ca->name, x.error);
        exit_code = 69;
    } else {
        exit_code = x.failed > 0 ? 1 : 0;
    }
    free(x.error);
    json_decref(x.ids);
    free(x.prefix);
    free(url);
    free(thumb);
    return exit_code;
}
