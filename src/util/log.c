/* stderr logging with journald priority prefixes. Knows nothing of the loop
 * or of configuration; main sets the level from [daemon] log_level. */
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static enum log_level level = LOG_LVL_INFO;
static bool debug_groups[LOG_GROUP__MAX];
static bool journal;
static log_sink_cb sink;
static void *sink_arg;

static const char *const group_names[LOG_GROUP__MAX] = {
    "main", "config", "acme", "challenge", "deploy", "store", "http", "dns", "control", "api",
};
static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const int syslog_prio[] = {3, 4, 6, 7};

void log_init(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    struct stat st;
    unsigned long long dev, ino;

    journal = false;
    if (js != NULL && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
        (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino)
        journal = true;
}

void log_set_level(enum log_level lvl)
{
    level = lvl;
}

enum log_level log_get_level(void)
{
    return level;
}

void log_set_debug_group(enum log_group g, bool on)
{
    if (g < LOG_GROUP__MAX)
        debug_groups[g] = on;
}

int log_level_parse(const char *s, enum log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

bool log_enabled(enum log_group g, enum log_level lvl)
{
    if (lvl <= level)
        return true;
    return lvl == LOG_LVL_DEBUG && g < LOG_GROUP__MAX && debug_groups[g];
}

void log_set_sink(log_sink_cb cb, void *arg)
{
    sink = cb;
    sink_arg = arg;
}

void log_vmsg(enum log_level lvl, enum log_group g, const char *fmt, va_list ap)
{
    char msg[2048];
    char line[2200];
    int n;

    if (!log_enabled(g, lvl) && sink == NULL)
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (sink != NULL)
        sink(lvl, g, msg, sink_arg);
    if (!log_enabled(g, lvl))
        return;
    if (journal) {
        n = snprintf(line, sizeof(line), "<%d>%s: %s\n", syslog_prio[lvl], group_names[g], msg);
    } else {
        struct timespec ts;
        struct tm tm;
        char when[32];

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
        n = snprintf(line, sizeof(line), "%s.%03ldZ %s %s: %s\n", when, ts.tv_nsec / 1000000L,
                     level_names[lvl], group_names[g], msg);
    }
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line)) {
        n = sizeof(line) - 1;
        line[n - 1] = '\n';
    }
    /* one write(2) per line so concurrent writers (hooks) do not interleave */
    ssize_t off = 0;
    while (off < n) {
        ssize_t w = write(STDERR_FILENO, line + off, (size_t)(n - off));
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        off += w;
    }
}

void log_msg(enum log_level lvl, enum log_group g, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vmsg(lvl, g, fmt, ap);
    va_end(ap);
}

char *log_mask(char *out, size_t n, const char *s, size_t len)
{
    size_t i;

    if (n == 0)
        return out;
    for (i = 0; i < len && i + 1 < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '.';
    }
    out[i] = '\0';
    return out;
}
