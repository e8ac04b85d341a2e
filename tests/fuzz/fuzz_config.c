/* libFuzzer target for the configuration schema: the input is loaded as a
 * main configuration file (through a memfd, so no include directory ever
 * matches). An accepted snapshot must satisfy what consumers rely on
 * (sorted, found again by lookup, references resolved, names bounded); a
 * refused one must have produced one-line errors. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config/config.h"
#include "util/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_snapshot(const struct config *cfg)
{
    for (size_t i = 0; i < cfg->n_certs; i++) {
        const struct cfg_cert *c = &cfg->certs[i];
        if (i > 0)
            assert(strcmp(cfg->certs[i - 1].name, c->name) < 0);
        assert(config_cert_find(cfg, c->name) == c);
        assert(c->domains.n <= CONFIG_MAX_DOMAINS);
        assert(c->name[0] != '.' && strchr(c->name, '/') == NULL);
        for (size_t j = 0; j < c->domains.n; j++)
            assert(strlen(c->domains.v[j]) <= 253);
        assert(c->ca == NULL || config_ca_find(cfg, c->ca->name) == c->ca);
        assert(c->challenge != CFG_CHAL_DNS01 || c->ca == NULL || c->dns != NULL);
        assert(config_cert_equal_order(c, c) && config_cert_equal_deploy(c, c));
    }
    for (size_t i = 0; i < cfg->n_cas; i++)
        assert(config_ca_find(cfg, cfg->cas[i].name) == &cfg->cas[i]);
    for (size_t i = 0; i < cfg->n_dns; i++)
        assert(config_dns_find(cfg, cfg->dns[i].name) == &cfg->dns[i]);
    assert(cfg->daemon.max_concurrent_orders >= 1 && cfg->daemon.max_concurrent_orders <= 10000);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    struct config *cfg = NULL;
    struct config_diag diag;

    if (size > 65536)
        return 0;
    int fd = memfd_create("certloop-fuzz", MFD_CLOEXEC);
    assert(fd >= 0);
    assert(write(fd, data, size) == (ssize_t)size);
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

    config_diag_init(&diag);
    int rc = config_load(path, &cfg, &diag);
    if (rc == 0) {
        assert(diag.n == 0);
        check_snapshot(cfg);
        assert(config_ref(cfg) == cfg);
        config_unref(cfg);
        config_unref(cfg);
    } else {
        assert(rc == ERR_CONFIG && cfg == NULL && diag.n > 0);
        for (size_t i = 0; i < diag.n; i++)
            assert(strchr(diag.lines[i], '\n') == NULL);
    }
    config_diag_fini(&diag);
    close(fd);
    return 0;
}
