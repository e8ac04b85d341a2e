/* The API's folder: conf.d/api/ beside the main file holds the files POST
 * /v1/certificates writes (src/api), one NAME.toml per certificate with
 * only [certificate.NAME] in it. They are read after the administrator's
 * files, their certificates are marked api_owned, and a load may see a
 * change of the folder that is not written yet (struct config_overlay). */
#include "config/config.h"

#include <errno.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"
#include "util/xalloc.h"

#define API_SUBDIR "conf.d/api"

char *config_api_dir(const char *path)
{
    const char *slash = strrchr(path, '/');

    if (slash == NULL)
        return xstrdup(API_SUBDIR);
    return xasprintf("%.*s/%s", (int)(slash - path), path, API_SUBDIR);
}

bool config_api_dir_holds(const struct cctx *c, const char *path)
{
    const char *dir = c->cfg->api_dir;
    size_t n = strlen(dir);

    return strncmp(path, dir, n) == 0 && path[n] == '/' && strchr(path + n + 1, '/') == NULL;
}

/* "DIR/NAME.toml" -> "NAME" (owned). */
static char *stem(const char *path)
{
    const char *b = strrchr(path, '/');
    b = b != NULL ? b + 1 : path;
    size_t n = strlen(b);
    return xstrndup(b, n > 5 ? n - 5 : n);
}

/* One file of the folder: only [certificate.NAME] for its NAME. */
static void load_one(struct cctx *c, const char *path, const char *text)
{
    struct toml_table *root = NULL;
    char *name = stem(path);

    c->file = config_add_file(c->cfg, path);
    if (c->api_first_file == 0)
        c->api_first_file = c->file;
    int rc = text != NULL ? config_parse_text(c, c->file, text, strlen(text), &root)
                          : config_read_file(c, c->file, &root);
    if (rc == 0) {
        const struct toml_keyval *ct = root->n == 1 ? toml_table_get(root, "certificate") : NULL;
        const struct toml_table *t =
            ct != NULL && ct->val.type == TOML_TABLE ? ct->val.u.tab : NULL;
        if (t == NULL || t->n != 1 || t->items[0].keylen != strlen(name) ||
            memcmp(t->items[0].key, name, t->items[0].keylen) != 0) {
            struct toml_pos pos = root->n > 0 ? root->items[0].keypos : (struct toml_pos){1, 1};
            config_err(c, c->file, pos, NULL,
                       "%s/ holds the certificates the API creates: only [certificate.%s] may be "
                       "in %s.toml",
                       c->cfg->api_dir, name, name);
        } else {
            config_load_root(c, root, false);
        }
    }
    toml_table_free(root);
    free(name);
}

void config_load_api_dir(struct cctx *c)
{
    const struct config_overlay *ov = c->overlay;
    char *pattern = xasprintf("%s/*.toml", c->cfg->api_dir);
    char *put = ov != NULL && ov->put_name != NULL
                    ? xasprintf("%s/%s.toml", c->cfg->api_dir, ov->put_name)
                    : NULL;
    char *del = ov != NULL && ov->del_name != NULL
                    ? xasprintf("%s/%s.toml", c->cfg->api_dir, ov->del_name)
                    : NULL;
    glob_t g;
    bool put_done = false;

    memset(&g, 0, sizeof(g));
    int rc = glob(pattern, 0, NULL, &g); /* sorted */
    if (rc != 0 && rc != GLOB_NOMATCH)
        config_err(c, 0, (struct toml_pos){0, 0}, NULL, "cannot list %s", c->cfg->api_dir);
    for (size_t i = 0; rc == 0 && i < g.gl_pathc; i++) {
        const char *p = g.gl_pathv[i];
        if (del != NULL && strcmp(p, del) == 0)
            continue;
        if (put != NULL && !put_done && strcmp(p, put) >= 0) { /* in name order */
            load_one(c, put, ov->put_text);
            put_done = true;
            if (strcmp(p, put) == 0)
                continue;
        }
        load_one(c, p, NULL);
    }
    if (put != NULL && !put_done)
        load_one(c, put, ov->put_text);
    globfree(&g);
    free(pattern);
    free(put);
    free(del);
}
