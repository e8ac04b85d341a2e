/* File descriptor hygiene for spawning children. */
#ifndef CERTLOOP_UTIL_FD_H
#define CERTLOOP_UTIL_FD_H

/* Marks every open descriptor above 2 close-on-exec, so that a child we
 * spawn next inherits only its stdio. Our own descriptors are opened with
 * O_CLOEXEC already; this catches the ones libraries create without it
 * (libcurl's connection sockets and its multi wake-up socketpair, as of
 * curl 7.88) and whatever the process inherited. Call it on the thread
 * that spawns, right before uv_spawn. 0 or -errno. */
int fd_cloexec_all(void);

#endif
