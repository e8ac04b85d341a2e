/* The systemd notification protocol (sd_notify(3)) spoken directly over
 * $NOTIFY_SOCKET, without libsystemd: one unix datagram per message. */
#ifndef CERTLOOP_REACTOR_SDNOTIFY_H
#define CERTLOOP_REACTOR_SDNOTIFY_H

/* Sends msg ("READY=1", "STATUS=...", several lines joined by '\n') to
 * $NOTIFY_SOCKET. A leading '@' in the socket name means the Linux abstract
 * namespace. Never blocks (MSG_DONTWAIT). Returns 0 when sent, 0 as well
 * when $NOTIFY_SOCKET is unset (not under systemd: nothing to do), or a
 * negative errno; failures are logged at debug level only. */
int sdnotify_send(const char *msg);

/* Sends "RELOADING=1\nMONOTONIC_USEC=N" with N the CLOCK_MONOTONIC time in
 * microseconds, as systemd expects at the start of a reload. */
int sdnotify_reloading(void);

#endif
