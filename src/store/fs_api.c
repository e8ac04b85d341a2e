/* The file backend's record of the HTTPS API's bootstrap certificate:
 * STATE/api/bootstrap.pem (the certificate, 0644: clients pin it) and
 * STATE/api/bootstrap-key.pem (its key, 0600). Kept apart from the
 * certificates' generations (STATE/certs/): nothing renews, deploys or
 * lists it. */
#include "store/store.h"
#include "store/store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "util/xalloc.h"

int store_fs_api_bootstrap_read(const char *state_dir, char **cert_pem, char **key_pem)
{
    char *cp = xasprintf("%s/api/bootstrap.pem", state_dir);
    char *kp = xasprintf("%s/api/bootstrap-key.pem", state_dir);
    char *c = NULL, *k = NULL;
    size_t kl = 0;
    int rc = store_read_file(cp, &c, NULL);

    if (rc == 0)
        rc = store_read_file(kp, &k, &kl);
    if (rc == 0) {
        *cert_pem = c;
        *key_pem = k;
        c = k = NULL;
    }
    if (k != NULL)
        OPENSSL_cleanse(k, kl);
    free(c);
    free(k);
    free(cp);
    free(kp);
    return rc;
}

int store_fs_api_bootstrap_put(const char *state_dir, const char *cert_pem, const char *key_pem)
{
    char *dir = xasprintf("%s/api", state_dir);
    char *cp = xasprintf("%s/bootstrap.pem", dir);
    char *kp = xasprintf("%s/bootstrap-key.pem", dir);
    int rc = store_mkdirs(dir, 0755);

    /* the key first: a certificate is never left beside another's key
     * longer than the two renames */
    if (rc == 0)
        rc = store_write_atomic(kp, key_pem, strlen(key_pem), 0600, (uid_t)-1, (gid_t)-1, NULL);
    if (rc == 0)
        rc = store_write_atomic(cp, cert_pem, strlen(cert_pem), 0644, (uid_t)-1, (gid_t)-1, NULL);
    free(dir);
    free(cp);
    free(kp);
    return rc;
}
