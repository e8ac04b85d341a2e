/* sd_notify over $NOTIFY_SOCKET: messages arrive intact on a path socket
 * and on an abstract-namespace ('@') socket; an unset variable is a no-op;
 * a missing listener is an error, not a crash or a block. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "reactor/sdnotify.h"

struct listener {
    int fd;
    char dir[64];
    char env[128]; /* what NOTIFY_SOCKET is set to */
};

static void listener_fini(struct listener *l)
{
    if (l->fd >= 0)
        close(l->fd);
    if (l->dir[0] != '\0') {
        char path[128];
        snprintf(path, sizeof(path), "%s/notify", l->dir);
        unlink(path);
        rmdir(l->dir);
    }
    unsetenv("NOTIFY_SOCKET");
}

/* Binds a datagram socket at a fresh path (abstract: in the abstract
 * namespace) and points NOTIFY_SOCKET at it. */
static void listener_init(struct listener *l, int abstract)
{
    struct sockaddr_un sa;
    socklen_t len;

    memset(l, 0, sizeof(*l));
    l->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(l->fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (abstract) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        snprintf(l->env, sizeof(l->env), "@certloop-test-%ld-%ld", (long)getpid(),
                 (long)ts.tv_nsec);
        size_t n = strlen(l->env);
        memcpy(sa.sun_path, l->env, n);
        sa.sun_path[0] = '\0';
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        snprintf(l->dir, sizeof(l->dir), "/tmp/certloop-sdnotify-XXXXXX");
        assert_non_null(mkdtemp(l->dir));
        snprintf(l->env, sizeof(l->env), "%s/notify", l->dir);
        memcpy(sa.sun_path, l->env, strlen(l->env) + 1);
        len = (socklen_t)sizeof(sa);
    }
    assert_int_equal(bind(l->fd, (struct sockaddr *)&sa, len), 0);
    assert_int_equal(setenv("NOTIFY_SOCKET", l->env, 1), 0);
}

/* Receives one datagram within a second; returns its length. */
static ssize_t listener_recv(struct listener *l, char *out, size_t n)
{
    struct pollfd p = {.fd = l->fd, .events = POLLIN};

    if (poll(&p, 1, 1000) != 1)
        return -1;
    ssize_t r = recv(l->fd, out, n - 1, 0);
    if (r >= 0)
        out[r] = '\0';
    return r;
}

static void test_ready_reaches_path_socket(void **state)
{
    struct listener l;
    char msg[256];

    (void)state;
    listener_init(&l, 0);
    assert_int_equal(sdnotify_send("READY=1\nSTATUS=managing 3 certificates"), 0);
    assert_int_equal(listener_recv(&l, msg, sizeof(msg)), 38);
    assert_string_equal(msg, "READY=1\nSTATUS=managing 3 certificates");
    listener_fini(&l);
}

static void test_abstract_socket_with_at_sign(void **state)
{
    struct listener l;
    char msg[256];

    (void)state;
    listener_init(&l, 1);
    assert_int_equal(sdnotify_send("STOPPING=1"), 0);
    assert_true(listener_recv(&l, msg, sizeof(msg)) > 0);
    assert_string_equal(msg, "STOPPING=1");
    /* and a second message is a separate datagram */
    assert_int_equal(sdnotify_send("READY=1"), 0);
    assert_true(listener_recv(&l, msg, sizeof(msg)) > 0);
    assert_string_equal(msg, "READY=1");
    listener_fini(&l);
}

static void test_reloading_carries_monotonic_usec(void **state)
{
    struct listener l;
    struct timespec ts;
    char msg[256];
    unsigned long long before, after, usec = 0;
    int end = 0;

    (void)state;
    listener_init(&l, 0);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    before = (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000;
    assert_int_equal(sdnotify_reloading(), 0);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    after = (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000;
    assert_true(listener_recv(&l, msg, sizeof(msg)) > 0);
    assert_int_equal(sscanf(msg, "RELOADING=1\nMONOTONIC_USEC=%llu%n", &usec, &end), 1);
    assert_int_equal((size_t)end, strlen(msg));
    assert_true(usec >= before);
    assert_true(usec <= after);
    listener_fini(&l);
}

static void test_unset_socket_is_a_noop(void **state)
{
    (void)state;
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(sdnotify_send("READY=1"), 0);
    setenv("NOTIFY_SOCKET", "", 1);
    assert_int_equal(sdnotify_send("READY=1"), 0);
    unsetenv("NOTIFY_SOCKET");
}

static void test_missing_listener_fails_without_blocking(void **state)
{
    (void)state;
    setenv("NOTIFY_SOCKET", "/nonexistent/certloop/notify", 1);
    assert_int_equal(sdnotify_send("READY=1"), -ENOENT);
    setenv("NOTIFY_SOCKET", "relative/path", 1);
    assert_int_equal(sdnotify_send("READY=1"), -EINVAL);
    unsetenv("NOTIFY_SOCKET");
}

static void test_full_listener_does_not_block(void **state)
{
    struct listener l;
    char big[4096];
    int rc = 0;

    (void)state;
    listener_init(&l, 0);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    /* nobody reads: the receive queue fills and the send must fail with
     * EAGAIN instead of blocking the loop */
    for (int i = 0; i < 100000 && rc == 0; i++)
        rc = sdnotify_send(big);
    assert_int_equal(rc, -EAGAIN);
    listener_fini(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_reaches_path_socket),
        cmocka_unit_test(test_abstract_socket_with_at_sign),
        cmocka_unit_test(test_reloading_carries_monotonic_usec),
        cmocka_unit_test(test_unset_socket_is_a_noop),
        cmocka_unit_test(test_missing_listener_fails_without_blocking),
        cmocka_unit_test(test_full_listener_does_not_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
