/* webhook-receiver: a stand-in for a webhook endpoint in integration tests
 * and demos. Listens on 127.0.0.1:PORT, reads each POST (one request per
 * connection, Content-Length bodies), checks X-Certloop-Signature against
 * the secret (HMAC-SHA256 of the body, computed here with OpenSSL), answers
 * 500 to the first N requests and 200 afterwards, and prints one JSON line
 * per request on stdout (flushed):
 *
 *   {"status":200,"event":"issued","delivery":"…","signature":"ok"|"bad"|"none",
 *    "body":{…the event…}}
 *
 *   webhook-receiver [--port N] [--port-file F] [--secret-file F] [--fail N]
 *                    [--status CODE] [--exec PROG]
 *
 * --status CODE answers CODE (with a one-line body) instead of 200 after
 * the failures. --exec PROG plays a dns-01 callback endpoint: for each
 * dns_record_required / dns_record_removable whose signature verifies, it
 * runs `PROG EVENT NAME VALUE` (the event's record) and answers 200 when
 * PROG exits 0, else 500; a bad or missing signature is answered 401.
 *
 * --port 0 (the default) picks a free port; --port-file gets it once the
 * socket listens. Runs until killed. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define REQ_MAX (1024 * 1024)

static char *read_secret(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    char buf[4097];
    size_t n;

    if (fp == NULL) {
        fprintf(stderr, "webhook-receiver: %s: %s\n", path, strerror(errno));
        exit(2);
    }
    n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    /* the same rule as certloop: one final newline is not part of the key */
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    char *s = malloc(n + 1);
    if (s == NULL)
        abort();
    memcpy(s, buf, n);
    s[n] = '\0';
    *len = n;
    return s;
}

/* The value of header `name` in the raw header block, copied into out. */
static const char *header(const char *head, const char *name, char *out, size_t n)
{
    size_t nl = strlen(name);
    const char *p = strstr(head, "\r\n");

    while (p != NULL && p[2] != '\0' && p[2] != '\r') {
        const char *line = p + 2;
        const char *end = strstr(line, "\r\n");
        if (end == NULL)
            break;
        if ((size_t)(end - line) > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t vl = (size_t)(end - v);
            if (vl >= n)
                vl = n - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return out;
        }
        p = end;
    }
    return NULL;
}

static void write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

/* Runs PROG EVENT NAME VALUE for a dns event; its exit status, or -1. */
static int run_exec(const char *prog, const char *event, json_t *ev)
{
    json_t *rec = json_object_get(ev, "record");
    const char *name = json_string_value(json_object_get(rec, "name"));
    const char *value = json_string_value(json_object_get(rec, "value"));

    if (name == NULL || value == NULL)
        return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(2, 1); /* stdout carries our JSON lines */
        execlp(prog, prog, event, name, value, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    default:
        return status >= 500 ? "Internal Server Error" : "Error";
    }
}

/* Answers one request; false when the peer left without sending one. */
static bool serve(int c, const char *secret, size_t secret_len, int status, const char *prog)
{
    bool handled = false;
    char *req = malloc(REQ_MAX + 1);
    size_t len = 0, need = 0;
    char *body = NULL;

    if (req == NULL)
        abort();
    for (;;) {
        ssize_t r = read(c, req + len, REQ_MAX - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            goto out;
        len += (size_t)r;
        req[len] = '\0';
        char *eoh = strstr(req, "\r\n\r\n");
        if (eoh == NULL) {
            if (len == REQ_MAX)
                goto out;
            continue;
        }
        char cl[32];
        size_t hl = (size_t)(eoh + 4 - req);
        need = hl +
               (header(req, "Content-Length", cl, sizeof(cl)) != NULL ? strtoul(cl, NULL, 10) : 0);
        if (need > REQ_MAX)
            goto out;
        if (len >= need) {
            eoh[2] = '\0'; /* headers end with the last CRLF */
            body = req + hl;
            req[need] = '\0';
            break;
        }
    }

    char event[128] = "", delivery[128] = "", sig[256] = "", want[80];
    header(req, "X-Certloop-Event", event, sizeof(event));
    header(req, "X-Certloop-Delivery", delivery, sizeof(delivery));
    bool has_sig = header(req, "X-Certloop-Signature", sig, sizeof(sig)) != NULL;
    const char *verdict = "none";
    if (has_sig) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int ml = 0;
        HMAC(EVP_sha256(), secret != NULL ? secret : "", (int)secret_len,
             (const unsigned char *)body, strlen(body), mac, &ml);
        int off = snprintf(want, sizeof(want), "sha256=");
        for (unsigned i = 0; i < ml; i++)
            off += snprintf(want + off, sizeof(want) - (size_t)off, "%02x", mac[i]);
        verdict = secret != NULL && strcmp(sig, want) == 0 ? "ok" : "bad";
    }

    json_error_t jerr;
    json_t *ev = json_loads(body, 0, &jerr);
    const char *why = status == 200 ? "" : "refused by the test receiver";
    if (prog != NULL && status == 200 &&
        (strcmp(event, "dns_record_required") == 0 || strcmp(event, "dns_record_removable") == 0)) {
        if (strcmp(verdict, "ok") != 0) {
            status = 401;
            why = "bad or missing signature";
        } else if (run_exec(prog, event, ev) != 0) {
            status = 500;
            why = "the record could not be changed";
        }
    }
    json_t *line = json_object();
    json_object_set_new(line, "status", json_integer(status));
    json_object_set_new(line, "event", json_string(event));
    json_object_set_new(line, "delivery", json_string(delivery));
    json_object_set_new(line, "signature", json_string(verdict));
    json_object_set_new(line, "body", ev != NULL ? ev : json_string(body));
    char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(line);
    if (text != NULL) {
        printf("%s\n", text);
        fflush(stdout);
        free(text);
    }

    char resp[320];
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s", status,
                     reason_phrase(status), strlen(why), why);
    write_all(c, resp, (size_t)n);
    handled = true;
out:
    free(req);
    return handled;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"port", required_argument, NULL, 'p'},
        {"port-file", required_argument, NULL, 'f'},
        {"secret-file", required_argument, NULL, 's'},
        {"fail", required_argument, NULL, 'n'},
        {"status", required_argument, NULL, 'c'},
        {"exec", required_argument, NULL, 'x'},
        {NULL, 0, NULL, 0},
    };
    int port = 0, fail = 0, ch, code = 200;
    const char *port_file = NULL, *prog = NULL;
    char *secret = NULL;
    size_t secret_len = 0;

    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'p':
            port = (int)strtol(optarg, NULL, 10);
            break;
        case 'f':
            port_file = optarg;
            break;
        case 's':
            secret = read_secret(optarg, &secret_len);
            break;
        case 'n':
            fail = (int)strtol(optarg, NULL, 10);
            break;
        case 'c':
            code = (int)strtol(optarg, NULL, 10);
            break;
        case 'x':
            prog = optarg;
            break;
        default:
            fprintf(stderr, "usage: webhook-receiver [--port N] [--port-file F] "
                            "[--secret-file F] [--fail N] [--status CODE] [--exec PROG]\n");
            return 64;
        }
    }

    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 64) < 0 ||
        getsockname(s, (struct sockaddr *)&sa, &sl) < 0) {
        fprintf(stderr, "webhook-receiver: listen: %s\n", strerror(errno));
        return 1;
    }
    if (port_file != NULL) {
        char tmp[4096];
        snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
        FILE *fp = fopen(tmp, "w");
        if (fp == NULL || fprintf(fp, "%d\n", ntohs(sa.sin_port)) < 0 || fclose(fp) != 0 ||
            rename(tmp, port_file) < 0) {
            fprintf(stderr, "webhook-receiver: %s: %s\n", port_file, strerror(errno));
            return 1;
        }
    }
    fprintf(stderr, "webhook-receiver: listening on 127.0.0.1:%d\n", ntohs(sa.sin_port));
    for (unsigned seq = 0;;) {
        int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "webhook-receiver: accept: %s\n", strerror(errno));
            return 1;
        }
        if (serve(c, secret, secret_len, (int)seq < fail ? 500 : code, prog))
            seq++;
        close(c);
    }
}
