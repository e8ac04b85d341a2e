/* The PostgreSQL backend's in-memory copy of the rows it answers reads
 * from (pg_store.c loads it and keeps it current): certificates with their
 * current generation, generation names, notes, orders, marks, alerts and
 * history; accounts and rollovers' next keys. Plain data, no I/O. Lookups
 * are linear: fine for thousands of certificates. */
#include "store/pg_internal.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/xalloc.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

void pg_cache_strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void pg_cache_pcert_free(struct pcert *c)
{
    free(c->name);
    store_cert_fini(&c->cur);
    pg_cache_strv_free(c->gens, c->ngens);
    pg_cache_strv_free(c->note_key, c->nnotes);
    pg_cache_strv_free(c->note_json, c->nnotes);
    buf_fini(&c->history);
    free(c->order_json);
    free(c->deployed);
    free(c);
}

struct pcert *pg_cache_cert_find(struct pg_store *p, const char *name)
{
    for (size_t i = 0; i < p->ncerts; i++)
        if (strcmp(p->certs[i]->name, name) == 0)
            return p->certs[i];
    return NULL;
}

struct pcert *pg_cache_cert_get(struct pg_store *p, const char *name)
{
    struct pcert *c = pg_cache_cert_find(p, name);

    if (c != NULL)
        return c;
    c = xcalloc(1, sizeof(*c));
    c->name = xstrdup(name);
    p->certs = xreallocarray_grow(p->certs, &p->capcerts, p->ncerts + 1, sizeof(*p->certs));
    p->certs[p->ncerts++] = c;
    return c;
}

void pg_cache_gen_add(struct pcert *c, const char *gen)
{
    size_t i = 0;

    while (i < c->ngens && strcmp(c->gens[i], gen) < 0)
        i++;
    if (i < c->ngens && strcmp(c->gens[i], gen) == 0)
        return;
    c->gens = xrealloc(c->gens, (c->ngens + 1) * sizeof(*c->gens));
    memmove(c->gens + i + 1, c->gens + i, (c->ngens - i) * sizeof(*c->gens));
    c->gens[i] = xstrdup(gen);
    c->ngens++;
}

/* Keeps the newest keep + 1 generations (the current one is the newest:
 * names sort by age) and their ARI state, as the DELETE in the database. */
void pg_cache_gens_prune(struct pcert *c, int keep)
{
    size_t n = (size_t)keep + 1;

    while (c->ngens > n) {
        char *old = c->gens[0];
        size_t olen = strlen(old);
        for (size_t j = 0; j < c->nnotes;) {
            if (strncmp(c->note_key[j], old, olen) == 0 && c->note_key[j][olen] == '\n') {
                free(c->note_key[j]);
                free(c->note_json[j]);
                c->note_key[j] = c->note_key[c->nnotes - 1];
                c->note_json[j] = c->note_json[c->nnotes - 1];
                c->nnotes--;
            } else {
                j++;
            }
        }
        free(old);
        memmove(c->gens, c->gens + 1, (c->ngens - 1) * sizeof(*c->gens));
        c->ngens--;
    }
}

char **pg_cache_note_find(struct pcert *c, const char *gen, const char *note)
{
    char *key = xasprintf("%s\n%s", gen, note);
    char **found = NULL;

    for (size_t j = 0; j < c->nnotes && found == NULL; j++)
        if (strcmp(c->note_key[j], key) == 0)
            found = &c->note_json[j];
    free(key);
    return found;
}

void pg_cache_note_set(struct pcert *c, const char *gen, const char *note, const char *json)
{
    char **old = pg_cache_note_find(c, gen, note);

    if (old != NULL) {
        free(*old);
        *old = xstrdup(json);
        return;
    }
    c->note_key = xrealloc(c->note_key, (c->nnotes + 1) * sizeof(char *));
    c->note_json = xrealloc(c->note_json, (c->nnotes + 1) * sizeof(char *));
    c->note_key[c->nnotes] = xasprintf("%s\n%s", gen, note);
    c->note_json[c->nnotes] = xstrdup(json);
    c->nnotes++;
}

struct pacct *pg_cache_acct_find(struct pg_store *p, const char *ca)
{
    for (size_t i = 0; i < p->naccts; i++)
        if (strcmp(p->accts[i].ca, ca) == 0)
            return &p->accts[i];
    return NULL;
}

void pg_cache_acct_set(struct pg_store *p, const char *ca, const char *key_pem, const char *json)
{
    struct pacct *a = pg_cache_acct_find(p, ca);

    if (a == NULL) {
        p->accts = xreallocarray_grow(p->accts, &p->capaccts, p->naccts + 1, sizeof(*p->accts));
        a = &p->accts[p->naccts++];
        a->ca = xstrdup(ca);
    } else {
        if (a->key_pem != NULL)
            OPENSSL_cleanse(a->key_pem, strlen(a->key_pem));
        free(a->key_pem);
        free(a->json);
    }
    a->key_pem = key_pem != NULL ? xstrdup(key_pem) : NULL;
    a->json = xstrdup(json);
}

void pg_cache_wipe_free(char *secret)
{
    if (secret != NULL)
        OPENSSL_cleanse(secret, strlen(secret));
    free(secret);
}

struct pnext *pg_cache_next_find(struct pg_store *p, const char *ca)
{
    for (size_t i = 0; i < p->nnexts; i++)
        if (strcmp(p->nexts[i].ca, ca) == 0)
            return &p->nexts[i];
    return NULL;
}

/* key_pem NULL forgets the next key. */
void pg_cache_acct_next_set(struct pg_store *p, const char *ca, const char *key_pem)
{
    struct pnext *n = pg_cache_next_find(p, ca);

    if (n != NULL) {
        pg_cache_wipe_free(n->key_pem);
        n->key_pem = NULL;
        if (key_pem == NULL) {
            free(n->ca);
            *n = p->nexts[--p->nnexts];
            return;
        }
    } else if (key_pem == NULL) {
        return;
    } else {
        p->nexts = xreallocarray_grow(p->nexts, &p->capnexts, p->nnexts + 1, sizeof(*p->nexts));
        n = &p->nexts[p->nnexts++];
        n->ca = xstrdup(ca);
    }
    n->key_pem = xstrdup(key_pem);
}

/* History: appended whole lines; past 64 KiB cut to the newest lines within
 * 32 KiB, as the DELETE in the database does. */

void pg_cache_history_add(struct pcert *c, const char *line)
{
    if (c->history.max == 0)
        buf_init(&c->history, 2 * HISTORY_MAX);
    buf_append_str(&c->history, line);
    if (c->history.len <= HISTORY_MAX)
        return;
    size_t cut = c->history.len - HISTORY_KEEP;
    while (cut < c->history.len && c->history.data[cut - 1] != '\n')
        cut++; /* whole lines only */
    memmove(c->history.data, c->history.data + cut, c->history.len - cut + 1);
    c->history.len -= cut;
}

void pg_cache_box_set(struct pg_store *p, const char *id, const char *text)
{
    size_t i = 0;

    while (i < p->nboxes && strcmp(p->boxes[i].id, id) != 0)
        i++;
    if (text == NULL) { /* gone: keep the order of the rest */
        if (i == p->nboxes)
            return;
        free(p->boxes[i].id);
        free(p->boxes[i].text);
        memmove(p->boxes + i, p->boxes + i + 1, (p->nboxes - i - 1) * sizeof(*p->boxes));
        p->nboxes--;
        return;
    }
    if (i == p->nboxes) {
        p->boxes = xreallocarray_grow(p->boxes, &p->capboxes, p->nboxes + 1, sizeof(*p->boxes));
        p->boxes[p->nboxes++].id = xstrdup(id);
    } else {
        free(p->boxes[i].text);
    }
    p->boxes[i].text = xstrdup(text);
}
