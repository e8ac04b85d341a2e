/* notify-listen: a stand-in for systemd's notification socket in tests.
 * Binds a unix datagram socket at SOCKET (a path, or "@name" for the
 * abstract namespace) and prints every datagram received on its own line
 * of stdout, newlines inside a message written as the two characters "\n",
 * flushing after each. Runs until killed.
 *
 *   notify-listen /tmp/x/notify > messages &
 *   NOTIFY_SOCKET=/tmp/x/notify certloop run ... */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    struct sockaddr_un sa;
    socklen_t len;
    char msg[65536];
    size_t n;
    int fd;

    if (argc != 2) {
        fprintf(stderr, "usage: notify-listen SOCKET\n");
        return 64;
    }
    n = strlen(argv[1]);
    if (n == 0 || n >= sizeof(sa.sun_path)) {
        fprintf(stderr, "notify-listen: %s: bad socket name\n", argv[1]);
        return 64;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, argv[1], n);
    if (argv[1][0] == '@') {
        sa.sun_path[0] = '\0';
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        unlink(argv[1]);
        len = (socklen_t)sizeof(sa);
    }
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, len) < 0) {
        fprintf(stderr, "notify-listen: %s: %s\n", argv[1], strerror(errno));
        return 71;
    }
    for (;;) {
        ssize_t r = recv(fd, msg, sizeof(msg), 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "notify-listen: recv: %s\n", strerror(errno));
            return 74;
        }
        for (ssize_t i = 0; i < r; i++) {
            if (msg[i] == '\n')
                fputs("\\n", stdout);
            else
                putchar(msg[i]);
        }
        putchar('\n');
        fflush(stdout);
    }
}
