/* Logging to stderr (STYLE §7): one line per event, subject first.
 * Under systemd ($JOURNAL_STREAM names our stderr) lines carry a "<N>"
 * syslog priority prefix and journald adds the time; otherwise we add
 * an ISO-8601 UTC timestamp and the level name ourselves. */
#ifndef CERTLOOP_UTIL_LOG_H
#define CERTLOOP_UTIL_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

enum log_group {
    LOG_MAIN = 0,
    LOG_CONFIG,
    LOG_ACME,
    LOG_CHAL,
    LOG_DEPLOY,
    LOG_STORE,
    LOG_HTTP,
    LOG_DNS,
    LOG_CTL,
    LOG_API,
    LOG_GROUP__MAX
};

/* Reads $JOURNAL_STREAM and checks it against stderr. Call once at start. */
void log_init(void);
void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* Enables debug for one group whatever the global level. */
void log_set_debug_group(enum log_group g, bool on);
/* Parses "error|warn|info|debug"; -EINVAL if unknown. */
int log_level_parse(const char *s, enum log_level *out);
bool log_enabled(enum log_group g, enum log_level lvl);

/* A sink receives every emitted line (without prefix) in addition to stderr;
 * used by tests and by the status history. NULL removes it. */
typedef void (*log_sink_cb)(enum log_level lvl, enum log_group g, const char *msg, void *arg);
void log_set_sink(log_sink_cb cb, void *arg);

void log_msg(enum log_level lvl, enum log_group g, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vmsg(enum log_level lvl, enum log_group g, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#define log_error(g, ...) log_msg(LOG_LVL_ERROR, (g), __VA_ARGS__)
#define log_warn(g, ...) log_msg(LOG_LVL_WARN, (g), __VA_ARGS__)
#define log_info(g, ...) log_msg(LOG_LVL_INFO, (g), __VA_ARGS__)
#define log_debug(g, ...)                                                                          \
    do {                                                                                           \
        if (log_enabled((g), LOG_LVL_DEBUG))                                                       \
            log_msg(LOG_LVL_DEBUG, (g), __VA_ARGS__);                                              \
    } while (0)

/* Copies s into out (size n) with non-printable bytes masked as '.'
 * (for debug dumps of peer input). Returns out. */
char *log_mask(char *out, size_t n, const char *s, size_t len);

#endif
