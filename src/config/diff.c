/* What a reload compares between the old and the new snapshot of one
 * certificate: whether it must be ordered again and whether its deploy
 * actions changed. The reactor decides what to do with the answers. */
#include "config/config.h"

#include <string.h>

bool config_strv_equal(const struct cfg_strv *a, const struct cfg_strv *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        if (strcmp(a->v[i], b->v[i]) != 0)
            return false;
    }
    return true;
}

static bool str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

bool config_cert_equal_order(const struct cfg_cert *a, const struct cfg_cert *b)
{
    if (!config_strv_equal(&a->domains, &b->domains) || a->key != b->key ||
        a->challenge != b->challenge)
        return false;
    if ((a->ca == NULL) != (b->ca == NULL) || (a->hub == NULL) != (b->hub == NULL))
        return false;
    if (a->hub != NULL &&
        (!str_eq(a->hub->name, b->hub->name) || !str_eq(a->hub->url, b->hub->url)))
        return false;
    if (a->ca != NULL &&
        (!str_eq(a->ca->directory, b->ca->directory) || !str_eq(a->ca->profile, b->ca->profile)))
        return false;
    if ((a->dns == NULL) != (b->dns == NULL))
        return false;
    return a->dns == NULL || str_eq(a->dns->name, b->dns->name);
}

static bool deploy_eq(const struct cfg_deploy *a, const struct cfg_deploy *b)
{
    return a->type == b->type && str_eq(a->cert, b->cert) && str_eq(a->chain, b->chain) &&
           str_eq(a->fullchain, b->fullchain) && str_eq(a->key, b->key) &&
           str_eq(a->bundle, b->bundle) && str_eq(a->pkcs12, b->pkcs12) &&
           str_eq(a->pkcs12_password_file, b->pkcs12_password_file) &&
           a->pkcs12_legacy == b->pkcs12_legacy && str_eq(a->owner, b->owner) &&
           str_eq(a->group, b->group) && a->uid == b->uid && a->gid == b->gid &&
           a->has_mode == b->has_mode && (!a->has_mode || a->mode == b->mode) &&
           config_strv_equal(&a->command, &b->command) && a->timeout_s == b->timeout_s &&
           a->per_certificate == b->per_certificate;
}

bool config_cert_equal_deploy(const struct cfg_cert *a, const struct cfg_cert *b)
{
    if (a->n_deploy != b->n_deploy)
        return false;
    for (size_t i = 0; i < a->n_deploy; i++) {
        if (!deploy_eq(&a->deploy[i], &b->deploy[i]))
            return false;
    }
    return true;
}
