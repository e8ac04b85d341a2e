/* Internals of the http-01 listener shared by http01.c, its unit tests and its
 * fuzz target: the challenge-path matcher (the request-head parser it shares
 * with the API is net/httpd.h) and where the listening sockets come from
 * (http01_listen.c, http01_owner.c). Nothing here touches the loop or
 * allocates. */
#ifndef CERTLOOP_CHALLENGE_HTTP01_INTERNAL_H
#define CERTLOOP_CHALLENGE_HTTP01_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "net/httpd.h"

#define HTTP01_TOKEN_MAX 256 /* longest token we store or look up */

#define HTTP01_PREFIX "/.well-known/acme-challenge/"

/* If path (as in struct httpd_req) is "/.well-known/acme-challenge/TOKEN"
 * with TOKEN 1..HTTP01_TOKEN_MAX base64url characters (percent-encoded ones
 * are decoded first, RFC 3986 §6.2.2.2), copies TOKEN NUL-terminated into
 * tok (size HTTP01_TOKEN_MAX + 1) and returns its length; otherwise -1. */
int http01_path_token(const uint8_t *path, size_t len, char *tok);

/* True if s[0..n) is 1..HTTP01_TOKEN_MAX base64url characters. */
bool http01_token_valid(const char *s, size_t n);

/* The program holding a listening TCP socket on port (IPv4 or IPv6), from
 * /proc: 0 with its name (comm) in name and its lowest pid in *pid, or -1
 * when none can be seen (no permission, none listening). http01_owner.c. */
int http01_port_owner(unsigned port, char *name, size_t name_len, long *pid);

/* ---- the listening sockets (http01_listen.c) ---------------------------- */

/* Parses a listen address, "IP:PORT" or "[IPv6]:PORT" (an IPv6 address only
 * in brackets, a port of 0..65535 in at most five digits), into *ss.
 * 0, or < 0 (-EINVAL, or libuv's code for an address it does not take). */
int http01_listen_parse(const char *str, struct sockaddr_storage *ss);

/* Logs that addr (parsed into *ss) is in use: by which program when /proc
 * shows it (http01_port_owner), and the ways to share the port with a web
 * server (webroot, or a proxy to another listen address). */
void http01_log_addr_in_use(const char *addr, const struct sockaddr_storage *ss);

/* systemd socket activation (sd_listen_fds(3)): how many inherited sockets
 * start at fd 3, or 0 (none for this process, or an unusable count: logged).
 * Unsets LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES when they are ours. */
size_t http01_activation_fds(void);

/* True when fd is a listening TCP socket (IPv4 or IPv6): the only inherited
 * sockets the listener takes. */
bool http01_is_tcp_listener(int fd);

#endif
