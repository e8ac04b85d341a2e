/* libFuzzer target for the TOML parser: parse, and when the document is
 * accepted walk the whole tree checking the invariants consumers rely on
 * (positions set, strings terminated, every key found again by lookup),
 * then free it. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config/toml.h"
#include "util/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t walk_table(const struct toml_table *t, int depth);

static size_t walk_value(const struct toml_value *v, int depth)
{
    size_t n = 1;

    assert(depth < 1000);
    assert(v->pos.line >= 1 && v->pos.col >= 1);
    switch (v->type) {
    case TOML_STRING:
        assert(v->u.s.ptr != NULL);
        assert(v->u.s.ptr[v->u.s.len] == '\0');
        break;
    case TOML_DATETIME:
    case TOML_DATETIME_LOCAL:
    case TOML_DATE_LOCAL:
    case TOML_TIME_LOCAL:
        assert(v->u.dt.nanosecond >= 0 && v->u.dt.nanosecond < 1000000000);
        assert(v->u.dt.second <= 60 && v->u.dt.minute <= 59 && v->u.dt.hour <= 23);
        break;
    case TOML_ARRAY:
        for (size_t i = 0; i < v->u.arr->n; i++) {
            if (v->u.arr->aot)
                assert(v->u.arr->items[i].type == TOML_TABLE);
            n += walk_value(&v->u.arr->items[i], depth + 1);
        }
        break;
    case TOML_TABLE:
        n += walk_table(v->u.tab, depth + 1);
        break;
    default:
        break;
    }
    return n;
}

static size_t walk_table(const struct toml_table *t, int depth)
{
    size_t n = 0;

    for (size_t i = 0; i < t->n; i++) {
        const struct toml_keyval *kv = &t->items[i];
        assert(kv->key[kv->keylen] == '\0');
        assert(kv->keypos.line >= 1 && kv->keypos.col >= 1);
        /* keys are unique, so the lookup finds exactly this entry */
        assert(toml_table_getn(t, kv->key, kv->keylen) == kv);
        n += walk_value(&kv->val, depth);
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct toml_table *root = NULL;
    struct toml_error err;

    int rc = toml_parse(data, size, &root, &err);
    if (rc == 0) {
        assert(root != NULL);
        (void)walk_table(root, 0);
        toml_table_free(root);
    } else {
        assert(rc == ERR_PARSE);
        assert(err.pos.line >= 1 && err.pos.col >= 1);
        assert(memchr(err.msg, '\0', sizeof(err.msg)) != NULL);
        assert(strchr(err.msg, '\n') == NULL);
    }
    return 0;
}
