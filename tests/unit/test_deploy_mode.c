/* The deployed files' default modes, as etc/certloop.toml and
 * certloop.toml(5) state them (issue 17 item 6: the docs said 0640 for
 * keys while the code wrote 0600): files with the key 0600, 0640 when a
 * group is set, the others 0644; an explicit mode wins. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "deploy/deploy.h"

static void test_default_modes(void **state)
{
    struct cfg_deploy d;
    (void)state;

    memset(&d, 0, sizeof(d));
    d.uid = (uid_t)-1;
    d.gid = (gid_t)-1;
    assert_int_equal(deploy_file_mode(&d, DEPLOY_FILE_KEY), 0600);
    assert_int_equal(deploy_file_mode(&d, DEPLOY_FILE_BUNDLE), 0600);
    assert_int_equal(deploy_file_mode(&d, DEPLOY_FILE_PKCS12), 0600);
    assert_int_equal(deploy_file_mode(&d, DEPLOY_FILE_FULLCHAIN), 0644);
    assert_int_equal(deploy_file_mode(&d, DEPLOY_FILE_CERT), 0644);
    assert_int_equal(deploy_file_mode(&d, DEPLOY_FILE_CHAIN), 0644);
    d.gid = 0;
    assert_int_equal(deploy_file_mode(&d, DEPLOY_FILE_KEY), 0640);
    assert_int_equal(deploy_file_mode(&d, DEPLOY_FILE_FULLCHAIN), 0644);
    d.has_mode = true;
    d.mode = 0440;
    assert_int_equal(deploy_file_mode(&d, DEPLOY_FILE_KEY), 0440);
    assert_int_equal(deploy_file_mode(&d, DEPLOY_FILE_CERT), 0440);
}

/* The example configuration says the same. */
static void test_example_config_states_them(void **state)
{
    const char *src = getenv("SOURCE_DIR");
    char path[512], line[512];
    bool key_0600 = false, group_0640 = false;
    (void)state;

    if (src == NULL)
        skip();
    snprintf(path, sizeof(path), "%s/etc/certloop.toml", src);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strstr(line, "the key (key, bundle, pkcs12): \"0600\"") != NULL)
            key_0600 = true;
        if (strstr(line, "\"0640\" when group is set") != NULL)
            group_0640 = true;
    }
    fclose(f);
    assert_true(key_0600);
    assert_true(group_0640);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_modes),
        cmocka_unit_test(test_example_config_states_them),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
