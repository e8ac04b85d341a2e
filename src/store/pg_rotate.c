/* Rotation of the encryption key (issue 14 item 2): every sealed private
 * key in the database (certificate generations, accounts, rollovers' next
 * keys, retired accounts) is opened
 * with the old key and sealed again with the new one, in one transaction.
 * Two round trips: read every blob, then one op of guarded UPDATEs. A blob
 * already sealed with the new key is left alone, so an interrupted or
 * repeated rotation is harmless; a blob that opens with neither key stops
 * the rotation before anything is written. */
#include "store/pg_internal.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rotate {
    struct pg_conn *c; /* borrowed */
    struct pg_key old_key, new_key;
    pg_rotate_cb cb;
    void *arg;
    size_t count;
    bool passed; /* the writing op owns r now, not the reading one */
};

static void rotate_free(void *arg)
{
    struct rotate *r = arg;

    pg_key_wipe(&r->old_key);
    pg_key_wipe(&r->new_key);
    free(r);
}

static void rotate_end(struct rotate *r, int status)
{
    r->cb(status, status == 0 ? r->count : 0, r->arg);
}

static void written(int status, const struct pg_res *res, void *arg)
{
    struct rotate *r = arg;

    if (status == ERR_DB)
        log_error(LOG_STORE, "database: key rotation rolled back: %s %s", res->sqlstate,
                  res->message);
    else if (status == 0 && r->count > 0)
        log_info(LOG_STORE, "database: %zu private keys sealed again with the new key", r->count);
    rotate_end(r, status);
}

/* One row's blob resealed: 1 and *out (bytea hex text) when it needed it,
 * 0 when it is already under the new key, < 0 when it opens with neither. */
static int reseal(struct rotate *r, const char *cert, const char *gen, const char *hex, char **out)
{
    size_t n, ptlen, len;
    uint8_t *blob = pg_hex_bytes(hex, &n), *pt = NULL, *sealed = NULL;
    int rc;

    if (blob == NULL)
        return ERR_PARSE;
    rc = pg_unseal(&r->new_key, cert, gen, blob, n, &pt, &ptlen);
    if (rc == 0) { /* done already */
        OPENSSL_cleanse(pt, ptlen);
        free(pt);
        free(blob);
        return 0;
    }
    rc = pg_unseal(&r->old_key, cert, gen, blob, n, &pt, &ptlen);
    free(blob);
    if (rc < 0)
        return rc;
    rc = pg_seal(&r->new_key, cert, gen, pt, ptlen, &sealed, &len);
    OPENSSL_cleanse(pt, ptlen);
    free(pt);
    if (rc < 0)
        return rc;
    *out = pg_bytea_hex(sealed, len);
    free(sealed);
    return 1;
}

/* Every table holding sealed keys: how its rows were sealed (the AD, as
 * pg_store.c seals them) and how one is rewritten, guarded by the old blob
 * so a row changed meanwhile is not overwritten. $1, $2 are the row's key
 * columns as selected, $3 the new blob, $4 the old. */
struct sealed_kind {
    char kind;
    const char *ad_prefix; /* the AD's certificate name is this and $1 */
    bool gen_in_ad;        /* $2 is the AD's generation (else "") */
    const char *update_sql;
};

static const struct sealed_kind kinds[] = {
    {'g', "", true,
     "UPDATE certloop_generations SET key_sealed = $3::bytea WHERE cert = $1"
     " AND generation = $2 AND key_sealed = $4::bytea"},
    {'a', "@account/", false,
     "UPDATE certloop_accounts SET key_sealed = $3::bytea WHERE ca = $1 AND $2 = ''"
     " AND key_sealed = $4::bytea"},
    {'n', "@account-next/", false,
     "UPDATE certloop_account_next SET key_sealed = $3::bytea WHERE ca = $1 AND $2 = ''"
     " AND key_sealed = $4::bytea"},
    {'r', "@account/", false,
     "UPDATE certloop_accounts_retired SET key_sealed = $3::bytea WHERE ca = $1"
     " AND t = $2::bigint AND key_sealed = $4::bytea"},
};

static const struct sealed_kind *kind_of(char k)
{
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (kinds[i].kind == k)
            return &kinds[i];
    return &kinds[0]; /* not reached: the SELECT names only these */
}

static void read_blobs(int status, const struct pg_res *res, void *arg)
{
    struct rotate *r = arg;

    if (status < 0) {
        if (status == ERR_DB)
            log_error(LOG_STORE, "database: key rotation: %s %s", res->sqlstate, res->message);
        rotate_end(r, status);
        return;
    }
    PGresult *rows = res->res[0];
    int nrows = PQntuples(rows);
    struct pg_stmt *st = xcalloc((size_t)nrows + 1, sizeof(*st));
    char *(*par)[4] = xcalloc((size_t)nrows + 1, sizeof(*par));
    size_t n = 0;
    int rc = 0;

    for (int i = 0; i < nrows && rc >= 0; i++) {
        const char *kind = PQgetvalue(rows, i, 0), *cert = PQgetvalue(rows, i, 1);
        const char *gen = PQgetvalue(rows, i, 2), *hex = PQgetvalue(rows, i, 3);
        const struct sealed_kind *k = kind_of(kind[0]);
        char *ad = xasprintf("%s%s", k->ad_prefix, cert);
        char *fresh = NULL;
        rc = reseal(r, ad, k->gen_in_ad ? gen : "", hex, &fresh);
        free(ad);
        if (rc < 0) {
            log_error(LOG_STORE,
                      "database: key rotation: the key of %s %s opens with neither the old nor "
                      "the new key (%s); nothing was changed",
                      cert, gen, err_str(rc));
            break;
        }
        if (rc == 0)
            continue;
        /* guarded by the old blob: a row changed meanwhile is not overwritten */
        par[n][0] = xstrdup(cert);
        par[n][1] = xstrdup(gen);
        par[n][2] = fresh;
        par[n][3] = xasprintf("\\x%s", hex);
        st[n] = (struct pg_stmt){k->update_sql, 4, (const char *const *)par[n]};
        n++;
    }
    r->count = n;
    if (rc >= 0 && n == 0)
        rc = 1; /* nothing to write */
    if (rc >= 0 && n > 0)
        rc = pg_op_start_owning(r->c, st, n, written, r, rotate_free, NULL);
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < 4; j++)
            free(par[i][j]);
    free(par);
    free(st);
    if (rc == 0) {
        r->passed = true; /* written() ends it */
        return;
    }
    rotate_end(r, rc == 1 ? 0 : rc); /* the reading op frees r when we return */
}

/* The reading op's arg_free: r goes with it unless the writing op took it. */
static void rotate_release(void *arg)
{
    struct rotate *r = arg;

    if (!r->passed)
        rotate_free(r);
}

int pg_key_rotate_start(struct pg_conn *c, const struct pg_key *old_key,
                        const struct pg_key *new_key, pg_rotate_cb cb, void *arg)
{
    if (CRYPTO_memcmp(old_key->id, new_key->id, sizeof(old_key->id)) == 0)
        return -EINVAL;
    struct rotate *r = xcalloc(1, sizeof(*r));
    r->c = c;
    r->old_key = *old_key;
    r->new_key = *new_key;
    r->cb = cb;
    r->arg = arg;
    struct pg_stmt st = {
        "SELECT 'g', cert, generation, encode(key_sealed, 'hex') FROM certloop_generations"
        " UNION ALL SELECT 'a', ca, '', encode(key_sealed, 'hex') FROM certloop_accounts"
        " UNION ALL SELECT 'n', ca, '', encode(key_sealed, 'hex') FROM certloop_account_next"
        " UNION ALL SELECT 'r', ca, t::text, encode(key_sealed, 'hex')"
        " FROM certloop_accounts_retired",
        0, NULL};
    int rc = pg_op_start_owning(c, &st, 1, read_blobs, r, rotate_release, NULL);
    if (rc < 0)
        rotate_free(r);
    return rc;
}
