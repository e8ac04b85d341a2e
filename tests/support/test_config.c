#include "test_config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>

struct config *test_config_load(const char *path)
{
    struct config_diag diag;
    struct config *cfg = NULL;

    config_diag_init(&diag);
    int rc = config_load(path, &cfg, &diag);
    for (size_t i = 0; i < diag.n; i++)
        fprintf(stderr, "%s\n", diag.lines[i]);
    config_diag_fini(&diag);
    assert_int_equal(rc, 0);
    return cfg;
}
