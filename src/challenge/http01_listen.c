/* Where the http-01 listener's sockets come from: its listen addresses
 * ("IP:PORT", "[IPv6]:PORT"), the error that names the program holding a port
 * already in use (http01_owner.c) and how to share it, and the sockets systemd
 * passes by socket activation. It binds and accepts nothing itself: http01.c
 * does, with these. Runs when a listener opens, before it serves. */
#include "challenge/http01_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "util/log.h"

/* "IP:PORT" or "[IPv6]:PORT" */
int http01_listen_parse(const char *str, struct sockaddr_storage *ss)
{
    char host[64];
    const char *colon;
    size_t hl;

    if (str[0] == '[') {
        const char *rb = strchr(str, ']');
        if (rb == NULL || rb[1] != ':')
            return -EINVAL;
        hl = (size_t)(rb - str - 1);
        if (hl == 0 || hl >= sizeof(host))
            return -EINVAL;
        memcpy(host, str + 1, hl);
        colon = rb + 1;
    } else {
        colon = strrchr(str, ':');
        if (colon == NULL)
            return -EINVAL;
        hl = (size_t)(colon - str);
        if (hl == 0 || hl >= sizeof(host) || memchr(str, ':', hl) != NULL)
            return -EINVAL;
        memcpy(host, str, hl);
    }
    host[hl] = '\0';
    const char *pp = colon + 1;
    size_t pl = strlen(pp);
    unsigned long port = 0;
    if (pl == 0 || pl > 5)
        return -EINVAL;
    for (size_t i = 0; i < pl; i++) {
        if (pp[i] < '0' || pp[i] > '9')
            return -EINVAL;
        port = port * 10 + (unsigned long)(pp[i] - '0');
    }
    if (port > 65535)
        return -EINVAL;
    memset(ss, 0, sizeof(*ss));
    if (str[0] == '[')
        return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss);
    return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss);
}

/* A web server usually owns port 80 already: say which program, and the
 * three ways to share the port, instead of a bare "address already in use". */
void http01_log_addr_in_use(const char *addr, const struct sockaddr_storage *ss)
{
    unsigned port = ss->ss_family == AF_INET6 ? ntohs(((const struct sockaddr_in6 *)ss)->sin6_port)
                                              : ntohs(((const struct sockaddr_in *)ss)->sin_port);
    char who[64], name[32];
    long pid;

    if (http01_port_owner(port, name, sizeof(name), &pid) == 0)
        snprintf(who, sizeof(who), "%s (pid %ld)", name, pid);
    else
        snprintf(who, sizeof(who), "another program (see: ss -ltnp 'sport = :%u')", port);
    log_error(LOG_CHAL,
              "http01: listen %s: address already in use by %s. To share the port with a web "
              "server, either set [http01] webroot to the document root it serves for this name "
              "(certloop writes DIR/.well-known/acme-challenge/TOKEN) and listen = [], "
              "or have it proxy /.well-known/acme-challenge/ to certloop (etc/examples/"
              "nginx-acme.conf) and set [http01] listen to that address, e.g. "
              "[\"127.0.0.1:8402\"]",
              addr, who);
}

static int parse_uint_env(const char *name, unsigned long *out)
{
    const char *v = getenv(name);
    char *end;

    if (v == NULL || *v < '0' || *v > '9')
        return -ENOENT;
    errno = 0;
    *out = strtoul(v, &end, 10);
    if (errno != 0 || *end != '\0')
        return -EINVAL;
    return 0;
}

/* systemd socket activation (sd_listen_fds(3)): how many inherited sockets
 * start at fd 3, or 0. The variables are unset so that nothing (a second
 * open, a child) takes the same descriptors again. */
size_t http01_activation_fds(void)
{
    unsigned long pid, nfds;

    if (parse_uint_env("LISTEN_PID", &pid) < 0 || pid != (unsigned long)getpid())
        return 0; /* not for us (a parent's, or none) */
    int rc = parse_uint_env("LISTEN_FDS", &nfds);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (rc < 0 || nfds == 0 || nfds > 1024) {
        log_warn(LOG_CHAL, "http01: LISTEN_FDS: no usable count, socket activation ignored");
        return 0;
    }
    return nfds;
}

/* Only listening TCP sockets are ours: a unit may pass others (a unix
 * socket for something else), which are left alone. */
bool http01_is_tcp_listener(int fd)
{
    int type = 0, acc = 0, dom = 0;
    socklen_t len = sizeof(int);

    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &len) < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) < 0)
        return false;
    return type == SOCK_STREAM && acc != 0 && (dom == AF_INET || dom == AF_INET6);
}
