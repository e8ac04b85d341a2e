/* The HTTPS API server's state (src/api), shared by api.c (listeners,
 * connections, requests, answers), api_tls.c (the TLS contexts it hands new
 * connections: the bootstrap and the managed certificate) and tokens.c (the
 * token set the tokens file holds now). Included by those three only; the
 * route files reach the server through the accessors in api_internal.h. */
#ifndef CERTLOOP_API_SERVER_INTERNAL_H
#define CERTLOOP_API_SERVER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "api/api.h"
#include "api/api_internal.h"
#include "api/dashboard_internal.h"
#include "net/tls_mem.h"

#define API_EV_RING 256 /* events kept for Last-Event-ID */

struct listener {
    struct api *a;
    uv_tcp_t tcp; /* tcp.data = self */
};

struct api {
    uv_loop_t *loop;     /* borrowed */
    struct listener *ls; /* owned array; handles must not move */
    size_t n_ls;
    int open_handles;
    struct tls_conn_list conns;
    unsigned max_conns;
    struct api_limits lim;
    struct api_handlers h;
    char *tokens_file, *certificate, *state_dir; /* owned */
    struct store *store;                         /* borrowed: outlives the API */
    uint64_t cert_checked;                       /* uv_now of the last look at it */
    struct api_tokens tokens;
    struct stat tokens_st; /* of the file tokens came from; st_ino 0: none */
    bool tokens_bad;       /* the last read failed (logged once) */
    struct api_faillimit fails;
    struct api_sessions sessions; /* the dashboard's logins (session.c) */
    SSL_CTX *boot_ctx;            /* owned: the self-signed bootstrap */
    int64_t boot_until;           /* its notAfter */
    SSL_CTX *cert_ctx;            /* owned: the managed certificate, or NULL */
    char *cert_gen;               /* owned: the generation cert_ctx holds, or the one that failed */
    struct {
        char *id;   /* owned */
        char *text; /* owned: the "id:", "event:", "data:" lines and the empty one */
    } ring[API_EV_RING];
    size_t ring_next, ring_n;  /* the slot written next; how many are filled */
    char *config_path;         /* owned: the main configuration file */
    struct api_writes *writes; /* owned by write.c: POST/DELETE one at a time */
    int jobs;                  /* threadpool jobs of the routes still running */
    bool closing;
    void (*closed_cb)(void *arg);
    void *closed_arg;
};

/* ---- api_tls.c ------------------------------------------------------------ */

/* Makes a->boot_ctx: DNS:localhost and every listen address that is not a
 * wildcard. The one the store kept from the last start serves again unless
 * fresh (it ends soon) or it no longer fits; a new one is handed to the store.
 * 0, or < 0 after a log line. */
int api_boot_make(struct api *a, bool fresh);

/* The context a new connection gets (borrowed from a): the managed
 * certificate's current generation once there is one (loaded again when
 * `current` moves, looked at once a second at most), else the bootstrap
 * (made again when it ends soon). NULL when there is none. */
SSL_CTX *api_ctx_current(struct api *a);

/* ---- tokens.c ------------------------------------------------------------- */

/* The token set of a->tokens_file as it is now (borrowed from a): read again
 * when its inode, size or mtime changed. A file that cannot be read or parsed
 * gives no tokens, so every request is refused until it is fixed (logged
 * once). */
const struct api_tokens *api_tokens_current(struct api *a);

#endif
