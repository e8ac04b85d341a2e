/* util: UTC time formatting and descriptor hygiene. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/fd.h"
#include "util/timefmt.h"

static void test_timefmt_rfc3339_and_date(void **state)
{
    char b[32];

    (void)state;
    assert_string_equal(timefmt_utc(b, sizeof(b), 0, TIMEFMT_RFC3339), "1970-01-01T00:00:00Z");
    /* 2027-01-03T10:00:00Z: 20821 days and 10 hours after the epoch */
    int64_t t = 20821LL * 86400 + 10 * 3600;
    assert_string_equal(timefmt_utc(b, sizeof(b), t, TIMEFMT_RFC3339), "2027-01-03T10:00:00Z");
    assert_string_equal(timefmt_utc(b, sizeof(b), t, TIMEFMT_DATE), "2027-01-03");
    assert_string_equal(timefmt_utc(b, sizeof(b), -1, TIMEFMT_RFC3339), "1969-12-31T23:59:59Z");
}

static void test_timefmt_falls_back_to_seconds(void **state)
{
    char small[12];
    char b[32];

    (void)state;
    /* the date does not fit: the raw seconds are written instead */
    assert_string_equal(timefmt_utc(small, sizeof(small), 86400, TIMEFMT_RFC3339), "@86400");
    /* a year gmtime_r cannot represent in struct tm's int */
    assert_string_equal(timefmt_utc(b, sizeof(b), INT64_MAX, TIMEFMT_RFC3339),
                        "@9223372036854775807");
}

static void test_fd_cloexec_all_marks_every_descriptor(void **state)
{
    int fds[2];

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    int nul = open("/dev/null", O_RDONLY);
    assert_true(nul > 2);
    assert_int_equal(fcntl(fds[0], F_GETFD) & FD_CLOEXEC, 0);
    assert_int_equal(fcntl(nul, F_GETFD) & FD_CLOEXEC, 0);
    int err_flags = fcntl(STDERR_FILENO, F_GETFD);
    assert_int_equal(fd_cloexec_all(), 0);
    assert_int_equal(fcntl(fds[0], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    assert_int_equal(fcntl(fds[1], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    assert_int_equal(fcntl(nul, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    /* stdio stays as it was: children get it */
    assert_int_equal(fcntl(STDERR_FILENO, F_GETFD), err_flags);
    close(fds[0]);
    close(fds[1]);
    close(nul);
}

/* A FIFO without a writer, /dev/zero and a directory where a file was
 * expected: buf_read_file answers at once (alarm: a hang fails the test). */
static void test_buf_read_file_never_waits(void **state)
{
    char dir[] = "/tmp/certloop-util-XXXXXX";
    char fifo[64];
    struct buf b = BUF_INIT(4096);

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    alarm(5);
    int rc = buf_read_file(&b, fifo);
    assert_true(rc == 0 || rc == -EAGAIN);
    assert_int_equal(b.len, 0);
    buf_fini(&b);
    b = (struct buf)BUF_INIT(4096);
    assert_int_equal(buf_read_file(&b, "/dev/zero"), ERR_TOO_BIG);
    buf_fini(&b);
    b = (struct buf)BUF_INIT(4096);
    assert_int_equal(buf_read_file(&b, dir), -EISDIR);
    buf_fini(&b);
    alarm(0);
    assert_int_equal(unlink(fifo), 0);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timefmt_rfc3339_and_date),
        cmocka_unit_test(test_timefmt_falls_back_to_seconds),
        cmocka_unit_test(test_fd_cloexec_all_marks_every_descriptor),
        cmocka_unit_test(test_buf_read_file_never_waits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
