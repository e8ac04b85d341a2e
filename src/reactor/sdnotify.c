/* sd_notify over a unix datagram socket. Owns nothing between calls: a
 * socket is opened, used once and closed, which costs microseconds and only
 * happens at start, reload and stop. Does not implement fd passing
 * (FDSTORE) or the watchdog. */
#include "reactor/sdnotify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util/err.h"
#include "util/log.h"

int sdnotify_send(const char *msg)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa;
    socklen_t salen;
    size_t plen;
    int fd = -1;
    int rc;

    if (path == NULL || path[0] == '\0')
        return 0;
    plen = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || plen >= sizeof(sa.sun_path)) {
        rc = -EINVAL;
        log_debug(LOG_MAIN, "sd_notify: NOTIFY_SOCKET=%s: %s", path, err_str(rc));
        goto out;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, plen);
    if (path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract namespace: the name is not NUL-terminated */
    salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + (path[0] == '/' ? 1 : 0));

    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        rc = -errno;
        log_debug(LOG_MAIN, "sd_notify: socket: %s", err_str(rc));
        goto out;
    }
    ssize_t n = sendto(fd, msg, strlen(msg), MSG_DONTWAIT | MSG_NOSIGNAL,
                       (const struct sockaddr *)&sa, salen);
    if (n < 0) {
        rc = -errno;
        log_debug(LOG_MAIN, "sd_notify: %s: send: %s", path, err_str(rc));
        goto out;
    }
    log_debug(LOG_MAIN, "sd_notify: sent %zd bytes to %s", n, path);
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

int sdnotify_reloading(void)
{
    struct timespec ts;
    char msg[64];

    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL);
    return sdnotify_send(msg);
}
