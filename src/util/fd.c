/* Close-on-exec for every descriptor, via close_range(2) where the kernel
 * has CLOSE_RANGE_CLOEXEC (5.11) and a walk of /proc/self/fd otherwise. It
 * knows nothing of the loop or of what the descriptors are. */
#include "util/fd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#if defined(__linux__)
#include <linux/close_range.h>
#include <sys/syscall.h>
#endif

static int cloexec_by_proc(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;

    if (d == NULL)
        return -errno;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (end == e->d_name || *end != '\0' || fd <= 2 || fd > INT_MAX || fd == dirfd(d))
            continue;
        int flags = fcntl((int)fd, F_GETFD);
        if (flags >= 0 && !(flags & FD_CLOEXEC))
            (void)fcntl((int)fd, F_SETFD, flags | FD_CLOEXEC);
    }
    closedir(d);
    return 0;
}

int fd_cloexec_all(void)
{
#if defined(SYS_close_range) && defined(CLOSE_RANGE_CLOEXEC)
    if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
        return 0;
#endif
    return cloexec_by_proc();
}
