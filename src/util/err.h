/* Error codes: 0 is success, negative errno (and libuv UV_E*) values pass
 * through unchanged, and certloop's own codes live at -10000 and below. */
#ifndef CERTLOOP_UTIL_ERR_H
#define CERTLOOP_UTIL_ERR_H

enum {
    ERR_BASE = -10000,
    ERR_CONFIG = -10001,       /* configuration invalid (details already reported) */
    ERR_PARSE = -10002,        /* malformed input (TOML, JSON, PEM, HTTP, DNS) */
    ERR_CRYPTO = -10003,       /* OpenSSL failure (error queue drained and logged) */
    ERR_HTTP = -10004,         /* transport failure talking HTTP (curl) */
    ERR_HTTP_STATUS = -10005,  /* unexpected HTTP status */
    ERR_ACME = -10006,         /* the CA answered with a problem document */
    ERR_BAD_NONCE = -10007,    /* ACME badNonce: retry with a fresh nonce */
    ERR_RATE_LIMITED = -10008, /* ACME rateLimited */
    ERR_TOO_BIG = -10009,      /* input past its cap */
    ERR_TIMEOUT = -10010,      /* an operation ran out of time */
    ERR_LOCKED = -10011,       /* the state directory is locked by another daemon */
    ERR_DNS = -10012,          /* DNS failure (c-ares, RFC 2136) */
    ERR_CHALLENGE = -10013,    /* a challenge or authorization failed */
    ERR_DEPLOY = -10014,       /* a deploy action failed */
    ERR_HOOK = -10015,         /* a hook or command exited non-zero */
    ERR_BAD_STATE = -10016,    /* state directory content is inconsistent */
    ERR_UNSUPPORTED = -10017,  /* feature not offered by the peer */
    ERR_CANCELED = -10018,     /* unused: cancellation is -ECANCELED */
    ERR_URL_REFUSED = -10019,  /* a URL from the CA is not https or not on the directory's host */
    ERR_DB = -10020,           /* the database refused a statement (SQLSTATE logged) */
    ERR__MIN = -10021
};

/* Returns a static string naming any error code (ours, errno or libuv). */
const char *err_str(int code);

#endif
