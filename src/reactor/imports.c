/* Imported certificates ([certificate.NAME] import = {cert, key}): when
 * their files are read again, their daily "expiring" alert, and reading
 * them for a run (run.c then stores and deploys them when they changed).
 * They are never ordered. It starts no step of a run itself. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "reactor/manager_internal.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

/* Inside the expiring window an imported certificate's "expiring" event
 * goes out daily; returns when to look again (0: not inside it). */
int64_t mgr_import_expiring(struct mcert *mc, int64_t now)
{
    struct manager *m = mc->m;
    int64_t exp_next = 0;

    if (mc->not_after > 0 &&
        notify_expiring_due(now, mc->not_after, m->cfg->daemon.expiring_window_s,
                            mc->alert_sent[STORE_ALERT_EXPIRING], &exp_next)) {
        char na[32];
        mgr_fmt_time(mc->not_after, na, sizeof(na));
        if (mc->cfg->hub != NULL)
            log_warn(LOG_MAIN,
                     "cert=%s: the pulled certificate expires %s: hub.%s has handed out no "
                     "newer one",
                     mc->name, na, mc->cfg->hub->name);
        else
            log_warn(LOG_MAIN, "cert=%s: the imported certificate expires %s: replace %s", mc->name,
                     na, mc->cfg->import_cert);
        mgr_hist_add(mc, "expiring", "not_after %s", na);
        mgr_emit(mc, NOTIFY_EV_EXPIRING, NULL, NULL);
        mgr_alert_set(mc, STORE_ALERT_EXPIRING, now);
        (void)notify_expiring_due(now, mc->not_after, m->cfg->daemon.expiring_window_s, now,
                                  &exp_next);
    }
    return exp_next;
}

/* An imported certificate is never ordered: its files are read at start,
 * then hourly (a run that stores and deploys them when they changed), and
 * inside the expiring window an "expiring" event goes out daily. */
void mgr_import_decide(struct mcert *mc, int64_t now)
{
    int64_t next = mc->import_checked_at + IMPORT_CHECK_S;

    if (mc->import_checked_at == 0 || next <= now) {
        mc->reason = "imported: reading its files";
        mgr_enqueue(mc);
        return;
    }
    mgr_import_arm(mc, now, next, "imported: its files are checked hourly");
}

void mgr_import_arm(struct mcert *mc, int64_t now, int64_t next, const char *reason)
{
    int64_t exp_next = mgr_import_expiring(mc, now);

    if (exp_next > now && exp_next < next)
        next = exp_next;
    mc->reason = reason;
    mgr_arm(mc, next);
}

/* True when the certificate's names (sans) cover name: the same name, or
 * a wildcard SAN "*.X" for a name one label below X (RFC 6125 §6.4.3). */
static bool import_covers(const struct acme_chain *ch, const char *name)
{
    for (size_t i = 0; i < ch->n_sans; i++) {
        const char *san = ch->sans[i];
        if (strcasecmp(san, name) == 0)
            return true;
        const char *dot = strchr(name, '.');
        if (san[0] == '*' && san[1] == '.' && name[0] != '*' && dot != NULL && dot != name &&
            strcasecmp(san + 1, dot) == 0)
            return true;
    }
    return false;
}

/* "a.test, b.test" from n strings (owned). */
static char *import_list(char *const *v, size_t n)
{
    struct buf b = BUF_INIT(1 << 16);
    for (size_t i = 0; i < n; i++)
        (void)buf_printf(&b, "%s%s", i > 0 ? ", " : "", v[i]);
    size_t len;
    return b.data != NULL ? buf_steal(&b, &len) : xstrdup("(none)");
}

/* Checks a certificate and key about to become a generation (an import's
 * files, or what a hub handed out: pull.c) and compares them with the
 * current generation; see manager_internal.h. */
int mgr_import_take(struct mcert *mc, const struct acme_chain *ch, const char *key,
                    const char *prefix, const char *cert_label, const char *key_label, char **err)
{
    const struct cfg_cert *cc = mc->run_cfg;
    struct store_cert sc = {0};
    char *e = NULL;
    int rc;

    rc = acme_key_from_pem(key, strlen(key), &mc->key);
    if (rc < 0) {
        e = xasprintf("%s: %s: not a PEM private key", prefix, key_label);
        goto fail;
    }
    if (!acme_chain_matches_key(ch, mc->key)) {
        rc = ERR_CRYPTO;
        e = xasprintf("%s: %s does not belong to the key %s", prefix, cert_label, key_label);
        goto fail;
    }
    /* every configured name must be in the certificate: deploying it for
     * names it does not cover would break them silently */
    for (size_t i = 0; i < cc->domains.n; i++) {
        if (import_covers(ch, cc->domains.v[i]))
            continue;
        char *want = import_list(cc->domains.v, cc->domains.n);
        char *has = import_list(ch->sans, ch->n_sans);
        rc = ERR_DEPLOY;
        e = xasprintf("%s: %s does not cover %s: it names %s; domains asks for %s", prefix,
                      cert_label, cc->domains.v[i], has, want);
        free(want);
        free(has);
        goto fail;
    }
    mc->not_after = ch->not_after;
    mc->not_before = ch->not_before;
    /* the same files as the current generation: nothing to do */
    if (store_cert_read_current(mc->m->store, mc->name, true, &sc) == 0) {
        bool same = sc.cert_pem != NULL && sc.key_pem != NULL &&
                    strcmp(sc.cert_pem, ch->pem[0]) == 0 && strcmp(sc.key_pem, key) == 0;
        store_cert_fini(&sc);
        if (same) {
            mc->summary = SUM_OK;
            mc->run_deploy_only = true; /* nothing ordered, nothing counted */
            if (store_redeploy_marked(mc->m->store, mc->name)) {
                log_info(LOG_MAIN,
                         "cert=%s: its last deployment did not finish: deploying it "
                         "again",
                         mc->name);
                return MGR_IMPORT_REDEPLOY;
            }
            mc->run_unchanged = true;
            return MGR_IMPORT_SAME;
        }
    }
    struct buf chain = BUF_INIT(1 << 20), full = BUF_INIT(1 << 20);
    for (size_t i = 0; i < ch->n; i++) {
        if (i > 0)
            (void)buf_printf(&chain, "%s", ch->pem[i]);
        (void)buf_printf(&full, "%s", ch->pem[i]);
    }
    size_t n;
    mc->res = xcalloc(1, sizeof(*mc->res));
    mc->res->cert_pem = xstrdup(ch->pem[0]);
    mc->res->chain_pem = chain.data != NULL ? buf_steal(&chain, &n) : xstrdup("");
    mc->res->fullchain_pem = buf_steal(&full, &n);
    /* a copy of the chain for the store: the caller keeps its own */
    if (acme_chain_parse(mc->res->fullchain_pem, strlen(mc->res->fullchain_pem), &mc->res->chain) <
        0) {
        rc = ERR_PARSE;
        e = xasprintf("%s: %s: not a PEM certificate chain", prefix, cert_label);
        goto fail;
    }
    buf_fini(&chain);
    buf_fini(&full);
    mc->had_cert = true;
    mc->run_deploy_only = true; /* deployed, not issued: no order was made */
    return MGR_IMPORT_CHANGED;
fail:
    mc->run_deploy_only = true; /* a deployment problem: never an order */
    *err = e;
    return rc < 0 ? rc : ERR_DEPLOY;
}

/* An imported certificate's run, its first step: reads import.cert (leaf
 * then chain) and import.key, refuses a key that does not match, and
 * compares them with the current generation. */
int mgr_import_read(struct mcert *mc, char **err)
{
    const struct cfg_cert *cc = mc->run_cfg;
    char *cert = NULL, *key = NULL;
    struct acme_chain ch = {0};
    char *e = NULL;
    int rc;

    mc->import_checked_at = mgr_now();
    rc = store_read_file(cc->import_cert, &cert, NULL);
    if (rc < 0) {
        e = xasprintf("import: %s: %s", cc->import_cert, err_str(rc));
        goto fail;
    }
    rc = store_read_file(cc->import_key, &key, NULL);
    if (rc < 0) {
        e = xasprintf("import: %s: %s", cc->import_key, err_str(rc));
        goto fail;
    }
    rc = acme_chain_parse(cert, strlen(cert), &ch);
    if (rc < 0) {
        e = xasprintf("import: %s: not a PEM certificate chain", cc->import_cert);
        goto fail;
    }
    rc = mgr_import_take(mc, &ch, key, "import", cc->import_cert, cc->import_key, &e);
    if (rc == MGR_IMPORT_CHANGED) {
        log_info(LOG_MAIN, "cert=%s: imported files changed: storing and deploying them", mc->name);
        mgr_hist_add(mc, "imported", "%s", cc->import_cert);
    }
    acme_chain_fini(&ch);
    OPENSSL_cleanse(key, strlen(key));
    free(key);
    free(cert);
    if (rc >= 0)
        return rc;
    *err = e;
    return rc;
fail:
    acme_chain_fini(&ch);
    if (key != NULL)
        OPENSSL_cleanse(key, strlen(key));
    free(key);
    free(cert);
    mc->run_deploy_only = true; /* a deployment problem: never an order */
    *err = e;
    return rc < 0 ? rc : ERR_DEPLOY;
}
