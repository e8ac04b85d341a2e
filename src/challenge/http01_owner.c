/* Who holds a TCP port: when the http-01 listener cannot bind because the
 * address is in use, the error names the program (usually nginx or Apache)
 * so the operator knows what to reconfigure. Linux /proc only, best effort:
 * an unprivileged daemon cannot see other users' descriptors (and
 * ProtectProc=invisible hides their processes), so "unknown" is normal
 * there. Runs before the loop starts (a listener is opened at start-up). */
#include "challenge/http01_internal.h"

#include <ctype.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_INODES 16

/* The inodes of listening sockets (state 0A) on port in one of
 * /proc/self/net/tcp or tcp6 (ProcSubset=pid hides /proc/net). */
static size_t listening_inodes(const char *file, unsigned port, unsigned long *inodes, size_t n,
                               size_t cap)
{
    FILE *f = fopen(file, "re");
    char line[512];

    if (f == NULL)
        return n;
    if (fgets(line, sizeof(line), f) == NULL) { /* the header */
        fclose(f);
        return n;
    }
    while (n < cap && fgets(line, sizeof(line), f) != NULL) {
        char local[64], remote[64], state[8];
        unsigned long inode;
        /* sl local rem st tx:rx tr:tm retrnsmt uid timeout inode */
        if (sscanf(line, "%*s %63s %63s %7s %*s %*s %*s %*s %*s %lu", local, remote, state,
                   &inode) != 4)
            continue;
        const char *colon = strrchr(local, ':');
        if (colon == NULL || strcmp(state, "0A") != 0 || inode == 0)
            continue;
        if (strtoul(colon + 1, NULL, 16) == port)
            inodes[n++] = inode;
    }
    fclose(f);
    return n;
}

static bool pid_has_socket(const char *pid, const unsigned long *inodes, size_t n)
{
    char path[300], target[64];
    struct dirent *e;
    bool found = false;

    snprintf(path, sizeof(path), "/proc/%s/fd", pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return false;
    while (!found && (e = readdir(d)) != NULL) {
        char link[600];
        unsigned long ino;
        snprintf(link, sizeof(link), "%s/%s", path, e->d_name);
        ssize_t l = readlink(link, target, sizeof(target) - 1);
        if (l <= 0)
            continue;
        target[l] = '\0';
        if (sscanf(target, "socket:[%lu]", &ino) != 1)
            continue;
        for (size_t i = 0; i < n; i++)
            if (inodes[i] == ino)
                found = true;
    }
    closedir(d);
    return found;
}

int http01_port_owner(unsigned port, char *name, size_t name_len, long *pid_out)
{
    unsigned long inodes[MAX_INODES];
    size_t n = listening_inodes("/proc/self/net/tcp", port, inodes, 0, MAX_INODES);
    n = listening_inodes("/proc/self/net/tcp6", port, inodes, n, MAX_INODES);
    if (n == 0 || name_len == 0)
        return -1;
    DIR *d = opendir("/proc");
    struct dirent *e;
    long best = -1;

    if (d == NULL)
        return -1;
    /* The lowest pid holding it: nginx's master rather than a worker. */
    while ((e = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        long pid = strtol(e->d_name, NULL, 10);
        if (best >= 0 && pid >= best)
            continue;
        if (pid_has_socket(e->d_name, inodes, n))
            best = pid;
    }
    closedir(d);
    if (best < 0)
        return -1;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/comm", best);
    FILE *f = fopen(path, "re");
    if (f == NULL || fgets(name, (int)name_len, f) == NULL)
        snprintf(name, name_len, "?");
    if (f != NULL)
        fclose(f);
    name[strcspn(name, "\n")] = '\0';
    *pid_out = best;
    return 0;
}
