/* Loads a configuration file in a test: every diagnostic line goes to
 * stderr, and the test fails unless it loads. */
#ifndef CERTLOOP_TESTS_TEST_CONFIG_H
#define CERTLOOP_TESTS_TEST_CONFIG_H

#include "config/config.h"

struct config *test_config_load(const char *path);

#endif
