/* The setup of one CA's ACME client, before its first signed request: the
 * directory (every URL checked, the profile chosen), then the account:
 * loaded from the store, or a key generated and stored first, then
 * newAccount (with EAB; onlyReturnExisting for a stored key without a URL)
 * and contacts pushed when the configuration changed them. It sends
 * through the client's queue (client.c) and never touches a request. */
#include "acme/acme.h"
#include "acme/client_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "net/net.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#define DIR_MAX_BODY (64 * 1024)

static void setup_fail(struct acme_client *c, int rc, const char *msg);
static void account_register(struct acme_client *c, bool only_existing);

/* Generates the account key (if gen) and encodes it on the threadpool
 * (the work function touches only the job), then stores key + account
 * JSON (store_account_put_start). */
struct acct_job {
    struct acme_client *c; /* not touched by the work function */
    bool gen;
    EVP_PKEY *key; /* in (gen false) or out (gen true) */
    char *account_json, *key_pem;
    const char *step;
    bool ready_after; /* true: the account is complete once written */
    bool write_only;  /* true: nothing follows the write (contacts pushed) */
};

static int acct_job_work(void *arg)
{
    struct acct_job *j = arg;
    size_t len;
    int rc;

    if (j->gen) {
        j->step = "generate key";
        rc = acme_key_generate(CFG_KEY_EC_P256, &j->key);
        if (rc < 0)
            return rc;
    }
    j->step = "encode key";
    return acme_key_to_pem(j->key, &j->key_pem, &len);
}

static bool contacts_equal(const json_t *stored, const struct cfg_strv *want)
{
    if (json_array_size(stored) != want->n)
        return false;
    for (size_t i = 0; i < want->n; i++) {
        const char *s = json_string_value(json_array_get(stored, i));
        if (s == NULL || strcmp(s, want->v[i]) != 0)
            return false;
    }
    return true;
}

static int acct_job_start(struct acme_client *c, bool gen, bool ready_after, bool write_only);

static void contacts_pushed(int status, const struct acme_response *r, void *arg)
{
    struct acme_client *c = arg;

    if (status != 0) {
        log_warn(LOG_ACME, "acme ca=%s: account update (contacts): %s", c->ca->name, r->error);
        return;
    }
    log_info(LOG_ACME, "acme ca=%s: account contacts updated at the CA", c->ca->name);
    if (acct_job_start(c, false, false, true) < 0)
        log_warn(LOG_ACME, "acme ca=%s: cannot record the contacts in account.json", c->ca->name);
}

/* Sends the configured contacts to the account URL (RFC 8555 §7.3.2). */
static void contacts_push(struct acme_client *c)
{
    json_t *contact = json_array();
    char *payload;

    for (size_t i = 0; i < c->ca->contact.n; i++)
        json_array_append_new(contact, json_string(c->ca->contact.v[i]));
    json_t *p = json_pack("{s:o}", "contact", contact);
    payload = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    struct acme_request_opts o = {.url = c->kid, .payload = payload, .subject = "account update"};
    if (acme_request_start(c, &o, contacts_pushed, c, NULL) < 0)
        log_warn(LOG_ACME, "acme ca=%s: account update (contacts): cannot send", c->ca->name);
    free(payload);
}

static void account_ready(struct acme_client *c)
{
    free(c->thumb);
    c->thumb = acme_jwk_thumbprint(c->key);
    c->acct = ACCT_READY;
    log_info(LOG_ACME, "acme ca=%s: account ready: %s", c->ca->name, c->kid);
    acme_client_send_waiting(c);
    if (c->push_contacts && !c->closing) {
        c->push_contacts = false;
        contacts_push(c);
    }
}

static void account_load(struct acme_client *c);

static void acct_job_end(struct acct_job *j, int status)
{
    struct acme_client *c = j->c;

    c->jobs--;
    if (c->closing) {
        if (j->gen)
            EVP_PKEY_free(j->key);
        if (c->jobs == 0)
            acme_client_free(c);
        goto out;
    }
    if (status < 0 && j->write_only) {
        log_warn(LOG_ACME, "acme ca=%s: account.json: %s: %s", c->ca->name, j->step,
                 err_str(status));
        goto out;
    }
    if (status == ERR_LOCKED && j->gen) {
        /* a store shared by several instances: another stored its new
         * account first; every instance uses that one (its orders must be
         * resumable by the others) */
        log_info(LOG_ACME, "acme ca=%s: another instance created the account: using it",
                 c->ca->name);
        EVP_PKEY_free(j->key);
        account_load(c);
        goto out;
    }
    if (status < 0) {
        char *m = xasprintf("account: %s: %s", j->step, err_str(status));
        if (j->gen)
            EVP_PKEY_free(j->key);
        setup_fail(c, status, m);
        free(m);
        goto out;
    }
    if (j->gen) {
        c->key = j->key;
        log_info(LOG_ACME, "acme ca=%s: new account key stored", c->ca->name);
    }
    if (j->write_only)
        ; /* account.json now records the contacts the CA has */
    else if (j->ready_after)
        account_ready(c);
    else
        account_register(c, false);
out:
    if (j->key_pem != NULL)
        OPENSSL_cleanse(j->key_pem, strlen(j->key_pem));
    free(j->key_pem);
    free(j->account_json);
    free(j);
}

static void acct_put_done(int status, const struct store_result *r, void *arg)
{
    (void)r; /* the step is named below; the store's detail is not needed */
    acct_job_end(arg, status);
}

static void acct_job_done(int status, void *arg)
{
    struct acct_job *j = arg;
    struct acme_client *c = j->c;

    if (status == 0 && !c->closing) {
        j->step = "write";
        status = store_account_put_start(c->store, c->ca->name, j->key_pem, j->account_json,
                                         acct_put_done, j);
        if (status == 0)
            return; /* acct_put_done ends the job */
    }
    acct_job_end(j, status);
}

static int acct_job_start(struct acme_client *c, bool gen, bool ready_after, bool write_only)
{
    struct acct_job *j = xcalloc(1, sizeof(*j));
    json_t *aj = json_object();
    int rc;

    json_object_set_new(aj, "directory", json_string(c->ca->directory));
    if (c->kid != NULL)
        json_object_set_new(aj, "url", json_string(c->kid));
    /* the contacts the CA has (sent with newAccount or an update), so that
     * a later change in the configuration is noticed and pushed */
    json_t *contact = json_array();
    for (size_t i = 0; i < c->ca->contact.n; i++)
        json_array_append_new(contact, json_string(c->ca->contact.v[i]));
    json_object_set_new(aj, "contact", contact);
    j->c = c;
    j->gen = gen;
    j->key = gen ? NULL : c->key;
    j->account_json = json_dumps(aj, JSON_INDENT(2));
    j->ready_after = ready_after;
    j->write_only = write_only;
    json_decref(aj);
    rc = store_job_start(c->loop, acct_job_work, j, acct_job_done);
    if (rc < 0) {
        free(j->account_json);
        free(j);
        return rc;
    }
    c->jobs++;
    return 0;
}

static void setup_fail(struct acme_client *c, int rc, const char *msg)
{
    log_error(LOG_ACME, "acme ca=%s: %s", c->ca->name, msg);
    c->acct = ACCT_NONE;
    acme_client_fail_waiting(c, rc, msg);
}

static char *read_trimmed(const char *path, int *rc)
{
    struct buf b = BUF_INIT(4096);
    char *s;
    size_t len;

    *rc = buf_read_file(&b, path);
    if (*rc < 0) {
        buf_fini(&b);
        return NULL;
    }
    s = buf_steal(&b, &len);
    while (len > 0 &&
           (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' ' || s[len - 1] == '\t'))
        s[--len] = '\0';
    return s;
}

static void account_response(int status, const struct acme_response *r, void *arg)
{
    struct acme_client *c = arg;

    if (status != 0) {
        if (c->only_existing && r->problem != NULL &&
            acme_problem_is(r->problem, "accountDoesNotExist")) {
            log_info(LOG_ACME, "acme ca=%s: stored key has no account yet: registering",
                     c->ca->name);
            account_register(c, false);
            return;
        }
        char *m;
        if (r->problem != NULL && acme_problem_is(r->problem, "agreementRequired")) {
            /* RFC 8555 §7.3: the CA wants termsOfServiceAgreed; only the
             * operator may agree, through the configuration. */
            json_t *meta = json_object_get(c->dir, "meta");
            const char *tos = json_string_value(json_object_get(meta, "termsOfService"));
            m = xasprintf("account: newAccount: %s; the CA requires agreeing to its terms of "
                          "service%s%s: read them, then set agree_tos = true in [ca.%s] (%s:%u)",
                          r->error, tos != NULL ? " at " : "", tos != NULL ? tos : "", c->ca->name,
                          c->ca->where.file, c->ca->where.pos.line);
        } else {
            m = xasprintf("account: newAccount: %s", r->error);
        }
        setup_fail(c, status, m);
        free(m);
        return;
    }
    if (r->location == NULL) {
        setup_fail(c, ERR_PARSE, "account: newAccount: no Location in the response");
        return;
    }
    char *why = NULL;
    int urc = acme_url_check(c->ca->directory, c->ca->allow_other_hosts, r->location,
                             "the newAccount Location", &why);
    if (urc < 0) {
        char *m = xasprintf("account: %s", why);
        free(why);
        setup_fail(c, urc, m);
        free(m);
        return;
    }
    free(c->kid);
    c->kid = xstrdup(r->location);
    c->kid_stale = false;
    log_info(LOG_ACME, "acme ca=%s: account %s: %s", c->ca->name,
             r->http_status == 201 ? "registered" : "found", c->kid);
    int rc = acct_job_start(c, false, true, false);
    if (rc < 0)
        setup_fail(c, rc, "account: cannot start the store job");
}

/* newAccount (RFC 8555 §7.3), signed with the JWK. only_existing looks up
 * the account of a stored key without creating one (§7.3.1). */
static void account_register(struct acme_client *c, bool only_existing)
{
    json_t *p = json_object();
    char *payload;
    int rc;

    c->only_existing = only_existing;
    if (only_existing) {
        json_object_set_new(p, "onlyReturnExisting", json_true());
    } else {
        json_t *contact = json_array();
        for (size_t i = 0; i < c->ca->contact.n; i++)
            json_array_append_new(contact, json_string(c->ca->contact.v[i]));
        json_object_set_new(p, "contact", contact);
        if (c->ca->agree_tos)
            json_object_set_new(p, "termsOfServiceAgreed", json_true());
        if (c->ca->eab_kid != NULL) {
            const char *url = acme_client_dir_url(c, "newAccount");
            char *hmac = read_trimmed(c->ca->eab_hmac_key_file, &rc);
            json_t *eab = NULL;
            if (hmac == NULL) {
                char *m =
                    xasprintf("account: EAB key %s: %s", c->ca->eab_hmac_key_file, err_str(rc));
                json_decref(p);
                setup_fail(c, rc, m);
                free(m);
                return;
            }
            rc = url != NULL ? acme_eab_sign(c->key, c->ca->eab_kid, hmac, url, &eab)
                             : ERR_UNSUPPORTED;
            OPENSSL_cleanse(hmac, strlen(hmac));
            free(hmac);
            if (rc < 0) {
                json_decref(p);
                setup_fail(c, rc, "account: external account binding failed");
                return;
            }
            json_object_set_new(p, "externalAccountBinding", eab);
        }
    }
    payload = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    struct acme_request_opts o = {
        .resource = "newAccount",
        .payload = payload,
        .subject = only_existing ? "account lookup" : "account",
    };
    acme_client_post_jwk(c, &o, account_response, c);
    free(payload);
}

static void account_load(struct acme_client *c)
{
    char *key_pem = NULL, *acct_json = NULL;
    int rc = store_account_read(c->store, c->ca->name, &key_pem, &acct_json);

    if (rc < 0 && rc != -ENOENT) {
        char *where = store_where(c->store, STORE_WHERE_ACCOUNT, c->ca->name);
        char *m = xasprintf("account: reading %s: %s", where, err_str(rc));
        setup_fail(c, rc, m);
        free(m);
        free(where);
        goto out;
    }
    if (key_pem == NULL) {
        /* No key: generate one and store it before registering. */
        rc = acct_job_start(c, true, false, false);
        if (rc < 0)
            setup_fail(c, rc, "account: cannot start the key job");
        goto out;
    }
    acme_key_free(c->key);
    c->key = NULL;
    rc = acme_key_from_pem(key_pem, strlen(key_pem), &c->key);
    if (rc < 0) {
        char *where = store_where(c->store, STORE_WHERE_ACCOUNT, c->ca->name);
        char *m = xasprintf("account: %s: unreadable key", where);
        setup_fail(c, ERR_PARSE, m);
        free(m);
        free(where);
        goto out;
    }
    if (acct_json != NULL) {
        json_t *j = json_loads(acct_json, 0, NULL);
        const char *url = json_string_value(json_object_get(j, "url"));
        const char *dir = json_string_value(json_object_get(j, "directory"));
        if (url != NULL && dir != NULL && strcmp(dir, c->ca->directory) == 0 && !c->kid_stale) {
            free(c->kid);
            c->kid = xstrdup(url);
            /* RFC 8555 §7.3.2: contacts changed in the configuration since
             * they were last sent go to the CA once the account is ready */
            json_t *stored = json_object_get(j, "contact");
            if (json_is_array(stored) && !contacts_equal(stored, &c->ca->contact))
                c->push_contacts = true;
        }
        json_decref(j);
    }
    if (c->kid != NULL)
        account_ready(c);
    else
        account_register(c, true);
out:
    if (key_pem != NULL)
        OPENSSL_cleanse(key_pem, strlen(key_pem));
    free(key_pem);
    free(acct_json);
}

/* Every resource URL of the directory (RFC 8555 §7.1.1, RFC 9773 §4)
 * passes acme_url_check before any is used. */
static int dir_urls_check(const struct acme_client *c, const json_t *dir, char **why)
{
    static const char *const resources[] = {"newNonce",   "newAccount", "newOrder",   "newAuthz",
                                            "revokeCert", "keyChange",  "renewalInfo"};

    for (size_t i = 0; i < sizeof(resources) / sizeof(resources[0]); i++) {
        const json_t *v = json_object_get(dir, resources[i]);
        if (v == NULL)
            continue;
        char *from = xasprintf("%s in the directory", resources[i]);
        int rc = json_is_string(v) ? acme_url_check(c->ca->directory, c->ca->allow_other_hosts,
                                                    json_string_value(v), from, why)
                                   : ERR_PARSE;
        if (rc == ERR_PARSE)
            *why = xasprintf("%s is not a string", from);
        free(from);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void dir_response(int status, const struct http_response *hr, void *arg)
{
    struct acme_client *c = arg;
    json_t *j = NULL;

    c->dir_req = NULL;
    if (status != 0) {
        char *m = xasprintf("directory %s: %s", c->ca->directory, hr->error);
        setup_fail(c, status, m);
        free(m);
        return;
    }
    acme_client_nonce_push(c, hr->replay_nonce);
    if (hr->status != 200) {
        char *m = xasprintf("directory %s: HTTP %ld", c->ca->directory, hr->status);
        setup_fail(c, ERR_HTTP_STATUS, m);
        free(m);
        return;
    }
    j = json_loadb(hr->body.data != NULL ? hr->body.data : "", hr->body.len, 0, NULL);
    if (!json_is_object(j) || !json_is_string(json_object_get(j, "newNonce")) ||
        !json_is_string(json_object_get(j, "newAccount")) ||
        !json_is_string(json_object_get(j, "newOrder"))) {
        char *m = xasprintf("directory %s: not an ACME directory", c->ca->directory);
        json_decref(j);
        setup_fail(c, ERR_PARSE, m);
        free(m);
        return;
    }
    char *why = NULL;
    const char *use = NULL;
    int drc = dir_urls_check(c, j, &why);
    if (drc == 0)
        drc = acme_profile_choose(j, c->ca->profile, c->ca->profile_fallback, &use, &why);
    if (drc < 0) {
        /* a profile not offered: every certificate of this CA is refused */
        char *m = xasprintf("directory %s: [ca.%s] %s", c->ca->directory, c->ca->name, why);
        free(why);
        json_decref(j);
        setup_fail(c, drc, m);
        free(m);
        return;
    }
    if (why != NULL)
        log_warn(LOG_ACME, "acme ca=%s: %s", c->ca->name, why);
    free(why);
    free(c->profile);
    c->profile = use != NULL ? xstrdup(use) : NULL;
    json_decref(c->dir);
    c->dir = j;
    log_debug(LOG_ACME, "acme ca=%s: directory fetched", c->ca->name);
    if (c->key != NULL && c->kid != NULL)
        account_ready(c);
    else
        account_load(c);
}

int acme_client_setup_start(struct acme_client *c)
{
    int rc;

    c->acct = ACCT_SETUP;
    struct http_request_opts ho = {
        .method = "GET",
        .url = c->ca->directory,
        .trust_file = c->ca->trust,
        .max_body = DIR_MAX_BODY,
    };
    rc = http_req_start(c->http, &ho, dir_response, c, &c->dir_req);
    if (rc < 0) {
        c->dir_req = NULL;
        c->acct = ACCT_NONE;
        log_error(LOG_ACME, "acme ca=%s: directory %s: %s", c->ca->name, c->ca->directory,
                  err_str(rc));
    }
    return rc;
}
