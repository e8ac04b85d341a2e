/* `certloop revoke`: see revoke.h. */
#include "reactor/revoke.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <uv.h>

#include "acme/acme.h"
#include "reactor/control.h"
#include "net/net.h"
#include "store/store.h"
#include "util/b64.h"
#include "util/err.h"
#include "util/xalloc.h"

static const char *const reason_names[] = {
    [0] = "unspecified", [1] = "keyCompromise",        [3] = "affiliationChanged",
    [4] = "superseded",  [5] = "cessationOfOperation",
};

int revoke_reason_code(const char *name)
{
    for (size_t i = 0; i < sizeof(reason_names) / sizeof(reason_names[0]); i++)
        if (reason_names[i] != NULL && strcmp(name, reason_names[i]) == 0)
            return (int)i;
    return -1;
}

/* The first certificate of a PEM text as base64url DER, and its serial in
 * hex; NULL when it does not parse. */
static char *leaf_der_b64(const char *pem, char **serial_hex)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *x = bio != NULL ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    unsigned char *der = NULL;
    char *out = NULL;
    int n;

    *serial_hex = NULL;
    if (x != NULL && (n = i2d_X509(x, &der)) > 0) {
        out = b64url_encode(der, (size_t)n);
        BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
        char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
        if (hex != NULL)
            *serial_hex = xstrdup(hex);
        OPENSSL_free(hex);
        BN_free(bn);
    }
    OPENSSL_free(der);
    X509_free(x);
    BIO_free(bio);
    return out;
}

/* Records the revocation with the generation (its "revoked" note: status and
 * plan show it; keyCompromise keeps reuse_key from using its key again; a
 * reissue request makes the daemon order the replacement at once) and,
 * with reissue, asks a running daemon to renew now. */
static void mark_revoked(const struct config *cfg, struct store *store, uv_loop_t *loop,
                         const struct store_cert *sc, const char *name, int reason, bool reissue,
                         FILE *out, FILE *err)
{
    struct store_wait w;

    json_t *j =
        json_pack("{s:s, s:I, s:b}", "reason", reason >= 0 ? reason_names[reason] : "unspecified",
                  "revoked_at", (json_int_t)time(NULL), "reissue", reissue);
    char *text = json_dumps(j, JSON_INDENT(2));

    store_wait_init(&w);
    int rc = store_note_put_start(store, name, sc->generation, "revoked", text, store_wait_cb, &w);
    if (rc == 0)
        rc = store_wait_run(loop, &w);
    json_decref(j);
    free(text);
    if (rc < 0)
        fprintf(err, "certloop revoke: cert=%s: %s (status will not show it revoked)\n", name,
                w.error != NULL ? w.error : err_str(rc));
    store_wait_fini(&w);
    if (!reissue) {
        fprintf(out,
                "cert=%s: the stored files stay until a new certificate replaces them: "
                "`certloop renew %s --force`, or `certloop revoke %s --reissue` next time\n",
                name, name, name);
        return;
    }
    struct ctl_response r = {0};
    char *why = NULL;
    char *target = xasprintf("/v1/certificates/%s/renew", name);
    rc = ctl_request(cfg->daemon.control_socket, "POST", target, "{\"force\":true}", 10000, &r,
                     &why);
    free(target);
    if (rc == 0 && (r.status == 200 || r.status == 202))
        fprintf(out, "cert=%s: the daemon orders the replacement now\n", name);
    else
        fprintf(out,
                "cert=%s: the daemon did not take the renewal (%s): the replacement is "
                "ordered when it starts\n",
                name, rc == 0 ? "it refused" : (why != NULL ? why : err_str(rc)));
    free(why);
    ctl_response_fini(&r);
}

struct revoke_ctx {
    bool done;
    int status;
    char *error; /* owned: what failed, with the CA's problem document */
};

static void revoke_cb(int status, const struct acme_response *r, void *arg)
{
    struct revoke_ctx *x = arg;

    x->done = true;
    x->status = status;
    if (status != 0)
        x->error = xstrdup(r->error != NULL ? r->error : err_str(status));
}

int revoke_run(struct config *cfg, const char *name, int reason, bool reissue, FILE *out, FILE *err)
{
    const struct cfg_cert *cc = config_cert_find(cfg, name);
    struct store_cert sc = {0};
    char *key_pem = NULL, *acct_json = NULL, *der = NULL, *serial = NULL, *payload = NULL;
    struct http_client *http = NULL;
    struct acme_client *client = NULL;
    struct revoke_ctx x = {0};
    struct store *store = NULL;
    uv_loop_t loop;
    int rc;

    if (cc == NULL) {
        fprintf(err, "certloop revoke: no certificate '%s' in the configuration\n", name);
        return 64;
    }
    if (cc->hub != NULL) {
        fprintf(err,
                "certloop revoke: cert=%s is pulled from hub.%s (no CA here): revoke it on the "
                "hub\n",
                name, cc->hub->name);
        return 64;
    }
    if (cc->ca == NULL) {
        fprintf(err,
                "certloop revoke: cert=%s is imported (no CA in the configuration): revoke it "
                "where it was issued\n",
                name);
        return 64;
    }
    /* beside a running daemon: no lock, nothing written (the account
     * exists, or the revocation stops below) */
    rc = store_open_config(NULL, cfg, STORE_FS_SHARED, &store);
    if (rc == 0)
        rc = store_cert_read_current(store, name, false, &sc);
    if (rc < 0) {
        char *where = store != NULL ? store_where(store, STORE_WHERE_CERT, name) : NULL;
        fprintf(err, "certloop revoke: cert=%s: no stored certificate in %s (%s)\n", name,
                where != NULL ? where : cfg->daemon.state_dir, err_str(rc));
        free(where);
        store_close(store);
        return 69;
    }
    der = sc.cert_pem != NULL ? leaf_der_b64(sc.cert_pem, &serial) : NULL;
    if (der == NULL) {
        fprintf(err, "certloop revoke: cert=%s: generation %s: cert.pem does not parse\n", name,
                sc.generation);
        store_cert_fini(&sc);
        store_close(store);
        return 69;
    }
    /* Only the account that ordered it may revoke by kid: never register. */
    rc = store_account_read(store, cc->ca->name, &key_pem, &acct_json);
    free(key_pem);
    free(acct_json);
    if (rc < 0) {
        char *where = store_where(store, STORE_WHERE_ACCOUNT, cc->ca->name);
        fprintf(err,
                "certloop revoke: cert=%s: no account for ca=%s in %s (%s): only "
                "the account that ordered a certificate can revoke it\n",
                name, cc->ca->name, where, err_str(rc));
        free(where);
        free(der);
        free(serial);
        store_cert_fini(&sc);
        store_close(store);
        return 69;
    }

    json_t *p = json_pack("{s:s}", "certificate", der);
    if (reason >= 0)
        json_object_set_new(p, "reason", json_integer(reason));
    payload = json_dumps(p, JSON_COMPACT);
    json_decref(p);

    uv_loop_init(&loop);
    store->loop = &loop;
    rc = http_client_open(&loop, &http);
    if (rc == 0) {
        struct acme_client_opts co = {
            .loop = &loop,
            .http = http,
            .cfg = cfg,
            .ca = cc->ca,
            .store = store,
        };
        rc = acme_client_new(&co, &client);
    }
    if (rc == 0) {
        char *subject = xasprintf("revoke cert=%s", name);
        struct acme_request_opts ro = {
            .resource = "revokeCert", .payload = payload, .subject = subject};
        rc = acme_request_start(client, &ro, revoke_cb, &x, NULL);
        free(subject);
    }
    if (rc == 0)
        uv_run(&loop, UV_RUN_DEFAULT);
    acme_client_close(client);
    if (http != NULL)
        http_client_close(http);
    uv_run(&loop, UV_RUN_DEFAULT);

    int exit_code = 0;
    if (rc < 0) {
        fprintf(err, "certloop revoke: cert=%s ca=%s: cannot send the request: %s\n", name,
                cc->ca->name, err_str(rc));
        exit_code = 1;
    } else if (!x.done || x.status != 0) {
        fprintf(err, "certloop revoke: cert=%s ca=%s: %s\n", name, cc->ca->name,
                x.error != NULL ? x.error : "no answer");
        exit_code = 1;
    } else {
        fprintf(out, "cert=%s: serial %s (generation %s) revoked by ca=%s%s%s\n", name,
                serial != NULL ? serial : "?", sc.generation != NULL ? sc.generation : "?",
                cc->ca->name, reason >= 0 ? ", reason " : "",
                reason >= 0 ? reason_names[reason] : "");
        mark_revoked(cfg, store, &loop, &sc, name, reason, reissue, out, err);
    }
    free(x.error);
    free(payload);
    free(der);
    free(serial);
    store_cert_fini(&sc);
    store_close(store);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return exit_code;
}
