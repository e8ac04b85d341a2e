/* `certloop account show|update|rollover|deactivate CA`: the account of a
 * [ca.NAME] at the CA (RFC 8555 §7.3.2, §7.3.5, §7.3.6), run as a command on
 * its own loop with the ACME client. It never registers an account: the
 * daemon does that with its first order. Files are written before or after
 * the loop runs, never while requests are in flight. */
#include "reactor/account.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "acme/acme.h"
#include "net/net.h"
#include "store/store.h"
#include "util/err.h"
#include "util/xalloc.h"

enum act { ACT_SHOW, ACT_UPDATE, ACT_ROLLOVER, ACT_DEACTIVATE };

struct acct_ctx {
    enum act act;
    struct acme_client *client;
    const char *url;     /* the account URL (borrowed) */
    EVP_PKEY *old_key;   /* borrowed */
    EVP_PKEY *new_key;   /* rollover: borrowed */
    const char *payload; /* update/deactivate */
    bool done, key_changed;
    int status;
    char *error;  /* owned */
    json_t *acct; /* owned: the account object the CA returned last */
};

static void note(struct acct_ctx *x, int status, const struct acme_response *r)
{
    x->status = status;
    if (status != 0) {
        free(x->error);
        x->error = xstrdup(r->error != NULL ? r->error : err_str(status));
        return;
    }
    if (json_is_object(r->json)) {
        json_decref(x->acct);
        x->acct = json_incref(r->json);
    }
}

static void keychange_cb(int status, const struct acme_response *r, void *arg)
{
    struct acct_ctx *x = arg;

    x->done = true;
    note(x, status, r);
    x->key_changed = status == 0;
}

/* The first answer (a POST-as-GET of the account, or the update): with the
 * directory now read, a rollover sends keyChange. */
static void first_cb(int status, const struct acme_response *r, void *arg)
{
    struct acct_ctx *x = arg;
    char *inner = NULL;
    int rc;

    note(x, status, r);
    if (status != 0 || x->act != ACT_ROLLOVER) {
        x->done = true;
        return;
    }
    const char *kc = acme_client_dir_url(x->client, "keyChange");
    if (kc == NULL) {
        x->done = true;
        x->status = ERR_UNSUPPORTED;
        x->error = xstrdup("the CA's directory has no keyChange");
        return;
    }
    rc = acme_key_change_inner(x->new_key, x->old_key, x->url, kc, &inner);
    if (rc == 0) {
        struct acme_request_opts ro = {
            .resource = "keyChange", .payload = inner, .subject = "account rollover"};
        rc = acme_request_start(x->client, &ro, keychange_cb, x, NULL);
    }
    free(inner);
    if (rc < 0) {
        x->done = true;
        x->status = rc;
        x->error = xasprintf("keyChange: %s", err_str(rc));
    }
}

static void print_account(FILE *out, const char *ca, const char *url, const json_t *a,
                          const char *thumb)
{
    const char *st = json_string_value(json_object_get(a, "status"));
    const json_t *contact = json_object_get(a, "contact");
    size_t i;
    json_t *v;

    fprintf(out, "ca=%s\n", ca);
    fprintf(out, "  url:        %s\n", url);
    fprintf(out, "  status:     %s\n", st != NULL ? st : "?");
    fprintf(out, "  contact:    ");
    if (json_array_size(contact) == 0)
        fprintf(out, "none");
    json_array_foreach(contact, i, v)
    {
        fprintf(out, "%s%s", i > 0 ? ", " : "", json_string_value(v) ? json_string_value(v) : "?");
    }
    fprintf(out, "\n");
    if (json_string_value(json_object_get(a, "orders")) != NULL)
        fprintf(out, "  orders:     %s\n", json_string_value(json_object_get(a, "orders")));
    if (thumb != NULL)
        fprintf(out, "  key:        JWK thumbprint %s\n", thumb);
}

int account_run(struct config *cfg, const char *action, const char *ca_name, bool yes, FILE *out,
                FILE *err)
{
    const struct cfg_ca *ca = config_ca_find(cfg, ca_name);
    char *key_pem = NULL, *acct_json = NULL, *where = NULL, *next_pem = NULL, *payload = NULL;
    struct store *store = NULL;
    struct store_wait w;
    uv_loop_t loop;
    bool loop_ok = false;
    EVP_PKEY *old_key = NULL, *new_key = NULL;
    json_t *aj = NULL;
    struct acct_ctx x = {0};
    struct http_client *http = NULL;
    int exit_code = 1, rc;

    if (strcmp(action, "show") == 0)
        x.act = ACT_SHOW;
    else if (strcmp(action, "update") == 0)
        x.act = ACT_UPDATE;
    else if (strcmp(action, "rollover") == 0)
        x.act = ACT_ROLLOVER;
    else if (strcmp(action, "deactivate") == 0)
        x.act = ACT_DEACTIVATE;
    else {
        fprintf(err,
                "certloop account: unknown action '%s' (show, update, rollover or "
                "deactivate)\n",
                action);
        return 64;
    }
    if (ca == NULL) {
        fprintf(err, "certloop account: no [ca.%s] in the configuration\n", ca_name);
        return 64;
    }
    if (x.act == ACT_DEACTIVATE && !yes) {
        fprintf(err,
                "certloop account deactivate: refusing without --yes: deactivation is "
                "permanent (RFC 8555 §7.3.6); ca=%s will then refuse this account's requests, "
                "and certloop registers a new account with the next order\n",
                ca_name);
        return 64;
    }
    store_wait_init(&w);
    uv_loop_init(&loop);
    loop_ok = true;
    /* beside a running daemon: no lock; only this account is written */
    rc = store_open_config(&loop, cfg, STORE_FS_SHARED, &store);
    if (rc < 0) {
        fprintf(err, "certloop account: the store ([store] type = \"%s\"): %s\n",
                cfg->store.type == CFG_STORE_POSTGRESQL ? "postgresql" : "files", err_str(rc));
        exit_code = 69;
        goto out;
    }
    where = store_where(store, STORE_WHERE_ACCOUNT, ca->name);
    rc = store_account_read(store, ca->name, &key_pem, &acct_json);
    if (rc < 0 || key_pem == NULL || acct_json == NULL) {
        fprintf(err,
                "certloop account: ca=%s: no account in %s (%s): the daemon "
                "registers one with its first order\n",
                ca->name, where, err_str(rc < 0 ? rc : -ENOENT));
        exit_code = 69;
        goto out;
    }
    aj = json_loads(acct_json, 0, NULL);
    x.url = json_string_value(json_object_get(aj, "url"));
    const char *dir = json_string_value(json_object_get(aj, "directory"));
    if (x.url == NULL || dir == NULL || strcmp(dir, ca->directory) != 0) {
        fprintf(err, "certloop account: ca=%s: the account in %s names no account at %s\n",
                ca->name, where, ca->directory);
        exit_code = 69;
        goto out;
    }
    if (acme_key_from_pem(key_pem, strlen(key_pem), &old_key) < 0) {
        fprintf(err, "certloop account: ca=%s: account.key does not parse\n", ca->name);
        exit_code = 69;
        goto out;
    }
    x.old_key = old_key;
    if (x.act == ACT_ROLLOVER) {
        /* RFC 8555 §7.3.5 with a crash in mind: the new key is stored (the
         * account's next key) before the CA hears of it, and the account's
         * key is replaced only once the CA has confirmed. A next key left by
         * an interrupted rollover is used again. */
        if (store_account_next_read(store, ca->name, &next_pem) == 0 &&
            acme_key_from_pem(next_pem, strlen(next_pem), &new_key) == 0) {
            fprintf(out, "ca=%s: using the new key of an interrupted rollover (%s)\n", ca->name,
                    where);
        } else {
            size_t len;
            free(next_pem);
            next_pem = NULL;
            if (acme_key_generate(CFG_KEY_EC_P256, &new_key) < 0 ||
                acme_key_to_pem(new_key, &next_pem, &len) < 0) {
                fprintf(err, "certloop account: ca=%s: cannot make a new key\n", ca->name);
                goto out;
            }
            rc = store_account_next_put_start(store, ca->name, next_pem, store_wait_cb, &w);
            if (rc == 0)
                rc = store_wait_run(&loop, &w);
            if (rc < 0) {
                fprintf(err, "certloop account: ca=%s: storing the new key: %s\n", ca->name,
                        w.error != NULL ? w.error : err_str(rc));
                goto out;
            }
        }
        x.new_key = new_key;
    } else if (x.act == ACT_UPDATE) {
        json_t *contact = json_array();
        for (size_t i = 0; i < ca->contact.n; i++)
            json_array_append_new(contact, json_string(ca->contact.v[i]));
        json_t *p = json_pack("{s:o}", "contact", contact);
        payload = json_dumps(p, JSON_COMPACT);
        json_decref(p);
    } else if (x.act == ACT_DEACTIVATE) {
        payload = xstrdup("{\"status\":\"deactivated\"}");
    }

    rc = http_client_open(&loop, &http);
    if (rc == 0) {
        struct acme_client_opts co = {
            .loop = &loop, .http = http, .cfg = cfg, .ca = ca, .store = store};
        rc = acme_client_new(&co, &x.client);
    }
    if (rc == 0) {
        char *subject = xasprintf("account %s", action);
        struct acme_request_opts ro = {.url = x.url, .payload = payload, .subject = subject};
        rc = acme_request_start(x.client, &ro, first_cb, &x, NULL);
        free(subject);
    }
    if (rc == 0)
        uv_run(&loop, UV_RUN_DEFAULT);
    acme_client_close(x.client);
    if (http != NULL)
        http_client_close(http);
    uv_run(&loop, UV_RUN_DEFAULT);

    if (rc < 0) {
        fprintf(err, "certloop account: ca=%s: cannot send the request: %s\n", ca->name,
                err_str(rc));
        goto out;
    }
    if (!x.done || x.status != 0) {
        fprintf(err, "certloop account %s: ca=%s: %s\n", action, ca->name,
                x.error != NULL ? x.error : "no answer");
        goto out;
    }
    switch (x.act) {
    case ACT_SHOW:
    case ACT_UPDATE: {
        char *thumb = acme_jwk_thumbprint(old_key);
        if (x.act == ACT_UPDATE) {
            /* account.json records what the CA has, so the daemon does not
             * push the same contacts again */
            json_t *contact = json_array();
            for (size_t i = 0; i < ca->contact.n; i++)
                json_array_append_new(contact, json_string(ca->contact.v[i]));
            json_object_set_new(aj, "contact", contact);
            char *nj = json_dumps(aj, JSON_INDENT(2));
            store_wait_fini(&w);
            store_wait_init(&w);
            rc = store_account_put_start(store, ca->name, key_pem, nj, store_wait_cb, &w);
            if (rc == 0)
                rc = store_wait_run(&loop, &w);
            if (rc < 0)
                fprintf(err,
                        "certloop account update: ca=%s: cannot record the contacts in "
                        "the account (%s)\n",
                        ca->name, w.error != NULL ? w.error : err_str(rc));
            free(nj);
            fprintf(out, "ca=%s: contacts updated at the CA\n", ca->name);
        }
        print_account(out, ca->name, x.url, x.acct, thumb);
        free(thumb);
        break;
    }
    case ACT_ROLLOVER: {
        store_wait_fini(&w);
        store_wait_init(&w);
        rc = store_account_rollover_start(store, ca->name, next_pem, acct_json, store_wait_cb, &w);
        if (rc == 0)
            rc = store_wait_run(&loop, &w);
        if (rc < 0) {
            fprintf(err,
                    "certloop account rollover: ca=%s: the CA now knows the new key, but "
                    "storing it as the account's key failed (%s): it stays in %s as the next "
                    "key (account.key.next); make it the account key (account.key)\n",
                    ca->name, w.error != NULL ? w.error : err_str(rc), where);
            goto out;
        }
        char *t_old = acme_jwk_thumbprint(old_key), *t_new = acme_jwk_thumbprint(new_key);
        fprintf(out, "ca=%s: account key rolled over (JWK thumbprint %s -> %s)\n", ca->name, t_old,
                t_new);
        free(t_old);
        free(t_new);
        break;
    }
    case ACT_DEACTIVATE: {
        long t = (long)time(NULL);
        rc = store_account_retire_start(store, ca->name, t, store_wait_cb, &w);
        if (rc == 0)
            rc = store_wait_run(&loop, &w);
        if (rc < 0)
            fprintf(err, "certloop account: ca=%s: putting the account aside: %s\n", ca->name,
                    w.error != NULL ? w.error : err_str(rc));
        fprintf(out,
                "ca=%s: account %s deactivated; its files are kept as *.deactivated-%ld, and "
                "the next order registers a new account\n",
                ca->name, x.url, t);
        break;
    }
    }
    exit_code = 0;
out:
    free(x.error);
    json_decref(x.acct);
    json_decref(aj);
    if (key_pem != NULL)
        OPENSSL_cleanse(key_pem, strlen(key_pem));
    free(key_pem);
    if (next_pem != NULL)
        OPENSSL_cleanse(next_pem, strlen(next_pem));
    free(next_pem);
    free(where);
    if (loop_ok) {
        store_close(store);
        store_wait_fini(&w);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
    }
    free(acct_json);
    free(payload);
    acme_key_free(old_key);
    acme_key_free(new_key);
    return exit_code;
}
