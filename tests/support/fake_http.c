/* The scriptable HTTP/1.1 test server (see fake_http.h). It owns its
 * listener and connections; it never talks to anything but 127.0.0.1. */
#include "fake_http.h"

#include "util/xalloc.h"

#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define FAKE_MAX_REQUEST ((size_t)16 * 1024 * 1024)

struct conn;

struct fake_http {
    uv_loop_t *loop;
    uv_tcp_t listener; /* listener.data = self */
    fake_http_handler_cb handler;
    void *arg;
    int port;
    char url[64];
    unsigned requests;
    unsigned connections;
    unsigned open_handles;
    bool closing;
    struct conn *conns;
};

struct conn {
    struct fake_http *srv; /* borrowed */
    unsigned id;
    uv_tcp_t tcp;     /* tcp.data = self */
    uv_timer_t delay; /* delay.data = self */
    unsigned open_handles;
    struct buf in;
    char *out; /* owned: the response being delayed or written */
    size_t out_len;
    bool busy;    /* a request is being answered (or hangs) */
    bool closing; /* handles closing */
    bool close_after;
    struct conn *prev, *next;
};

static void server_maybe_free(struct fake_http *s)
{
    if (s->closing && s->open_handles == 0)
        free(s);
}

static void conn_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct fake_http *s = c->srv;

    if (--c->open_handles > 0)
        return;
    buf_fini(&c->in);
    free(c->out);
    free(c);
    s->open_handles--;
    server_maybe_free(s);
}

static void conn_close(struct conn *c)
{
    struct fake_http *s = c->srv;

    if (c->closing)
        return;
    c->closing = true;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&c->delay, conn_handle_closed);
}

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Status";
    }
}

static void try_process(struct conn *c);

static void write_done(uv_write_t *w, int status)
{
    struct conn *c = w->data;

    free(w);
    free(c->out);
    c->out = NULL;
    if (c->closing)
        return;
    if (status < 0 || c->close_after) {
        conn_close(c);
        return;
    }
    c->busy = false;
    try_process(c);
}

static void send_out(struct conn *c)
{
    uv_write_t *w = xcalloc(1, sizeof(*w));
    uv_buf_t b = uv_buf_init(c->out, (unsigned)c->out_len);

    w->data = c;
    if (uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, write_done) < 0) {
        free(w);
        conn_close(c);
    }
}

static void delay_done(uv_timer_t *t)
{
    send_out(t->data);
}

static bool find_header(const char *headers, const char *name, const char **val, size_t *vlen)
{
    size_t nlen = strlen(name);
    const char *p = headers;

    while (*p != '\0') {
        const char *eol = strstr(p, "\r\n");
        if (eol == NULL)
            eol = p + strlen(p);
        if ((size_t)(eol - p) > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            *val = v;
            *vlen = (size_t)(eol - v);
            return true;
        }
        p = *eol != '\0' ? eol + 2 : eol;
    }
    return false;
}

const char *fake_http_req_header(const struct fake_http_request *req, const char *name, char *out,
                                 size_t n)
{
    const char *v;
    size_t vlen;

    if (n == 0 || !find_header(req->headers, name, &v, &vlen))
        return NULL;
    if (vlen >= n)
        vlen = n - 1;
    memcpy(out, v, vlen);
    out[vlen] = '\0';
    return out;
}

/* Handles one complete request at the start of c->in, if there is one. */
static void try_process(struct conn *c)
{
    struct fake_http *s = c->srv;

    if (c->busy || c->closing || c->in.len == 0)
        return;
    char *end = strstr(c->in.data, "\r\n\r\n");
    if (end == NULL)
        return;
    size_t head_len = (size_t)(end - c->in.data) + 4;
    char *head = xstrndup(c->in.data, head_len - 2); /* keeps the last header's CRLF */
    char *line_end = strstr(head, "\r\n");
    *line_end = '\0';
    char *sp1 = strchr(head, ' ');
    char *sp2 = sp1 != NULL ? strchr(sp1 + 1, ' ') : NULL;
    if (sp1 == NULL || sp2 == NULL) {
        free(head);
        conn_close(c);
        return;
    }
    *sp1 = '\0';
    *sp2 = '\0';
    const char *headers = line_end + 2;
    const char *cl;
    size_t cl_len;
    size_t body_len = 0;
    if (find_header(headers, "Content-Length", &cl, &cl_len))
        body_len = strtoul(cl, NULL, 10);
    if (c->in.len < head_len + body_len) {
        free(head);
        return; /* wait for the rest of the body */
    }
    char *body = xstrndup(c->in.data + head_len, body_len);

    struct fake_http_request req = {
        .seq = s->requests++,
        .conn_id = c->id,
        .method = head,
        .target = sp1 + 1,
        .headers = headers,
        .body = body,
        .body_len = body_len,
    };
    struct fake_http_response resp;
    memset(&resp, 0, sizeof(resp));
    buf_init(&resp.headers, FAKE_MAX_REQUEST);
    buf_init(&resp.body, FAKE_MAX_REQUEST);
    if (s->handler != NULL)
        s->handler(&req, &resp, s->arg);
    bool head_method = strcmp(head, "HEAD") == 0;
    free(body);
    free(head);

    /* Drop the consumed request from the input buffer. */
    size_t used = head_len + body_len;
    memmove(c->in.data, c->in.data + used, c->in.len - used);
    c->in.len -= used;
    c->in.data[c->in.len] = '\0';

    if (resp.close_without_answer) {
        buf_fini(&resp.headers);
        buf_fini(&resp.body);
        conn_close(c);
        return;
    }
    c->busy = true;
    if (resp.hang) {
        buf_fini(&resp.headers);
        buf_fini(&resp.body);
        return;
    }
    int status = resp.status != 0 ? resp.status : 200;
    size_t blen = resp.huge_body > 0 ? resp.huge_body : resp.body.len;
    struct buf out = BUF_INIT((size_t)-1);
    if (resp.no_length)
        resp.close_after = true;
    buf_printf(&out, "HTTP/1.1 %d %s\r\n", status, reason(status));
    if (!resp.no_length)
        buf_printf(&out, "Content-Length: %zu\r\n", blen);
    buf_printf(&out, "%s%s\r\n", resp.headers.data != NULL ? resp.headers.data : "",
               resp.close_after ? "Connection: close\r\n" : "");
    if (!head_method) {
        if (resp.huge_body > 0) {
            char *x = xmalloc(resp.huge_body);
            memset(x, 'x', resp.huge_body);
            buf_append(&out, x, resp.huge_body);
            free(x);
        } else if (resp.body.len > 0) {
            buf_append(&out, resp.body.data, resp.body.len);
        }
    }
    buf_fini(&resp.headers);
    buf_fini(&resp.body);
    c->close_after = resp.close_after;
    c->out = buf_steal(&out, &c->out_len);
    if (resp.delay_ms > 0)
        uv_timer_start(&c->delay, delay_done, resp.delay_ms, 0);
    else
        send_out(c);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    b->base = xmalloc(suggested);
    b->len = suggested;
}

static void read_cb(uv_stream_t *stream, ssize_t n, const uv_buf_t *b)
{
    struct conn *c = stream->data;

    if (n < 0) {
        free(b->base);
        conn_close(c);
        return;
    }
    if (n > 0 && buf_append(&c->in, b->base, (size_t)n) < 0) {
        free(b->base);
        conn_close(c);
        return;
    }
    free(b->base);
    try_process(c);
}

static void accept_cb(uv_stream_t *l, int status)
{
    struct fake_http *s = l->data;

    if (status < 0 || s->closing)
        return;
    struct conn *c = xcalloc(1, sizeof(*c));
    c->srv = s;
    c->id = s->connections;
    buf_init(&c->in, FAKE_MAX_REQUEST);
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->delay);
    c->tcp.data = c;
    c->delay.data = c;
    uv_unref((uv_handle_t *)&c->tcp);
    uv_unref((uv_handle_t *)&c->delay);
    c->open_handles = 2;
    s->open_handles++;
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = c;
    s->conns = c;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    s->connections++;
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

static void listener_closed(uv_handle_t *h)
{
    struct fake_http *s = h->data;

    s->open_handles--;
    server_maybe_free(s);
}

int fake_http_start(uv_loop_t *loop, fake_http_handler_cb handler, void *arg,
                    struct fake_http **out)
{
    struct fake_http *s = xcalloc(1, sizeof(*s));
    struct sockaddr_in sa;
    int rc;

    s->loop = loop;
    s->handler = handler;
    s->arg = arg;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    uv_unref((uv_handle_t *)&s->listener);
    s->open_handles = 1;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, 512, accept_cb);
    if (rc == 0) {
        struct sockaddr_in got;
        int len = sizeof(got);
        rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&got, &len);
        s->port = ntohs(got.sin_port);
    }
    if (rc < 0) {
        s->closing = true;
        uv_close((uv_handle_t *)&s->listener, listener_closed);
        return rc;
    }
    snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d", s->port);
    *out = s;
    return 0;
}

void fake_http_close(struct fake_http *s)
{
    if (s == NULL || s->closing)
        return;
    s->closing = true;
    uv_close((uv_handle_t *)&s->listener, listener_closed);
    while (s->conns != NULL)
        conn_close(s->conns);
}

int fake_http_port(const struct fake_http *s)
{
    return s->port;
}

const char *fake_http_url(const struct fake_http *s)
{
    return s->url;
}

unsigned fake_http_requests(const struct fake_http *s)
{
    return s->requests;
}

unsigned fake_http_connections(const struct fake_http *s)
{
    return s->connections;
}

void fake_http_resp_header(struct fake_http_response *r, const char *name, const char *fmt, ...)
{
    va_list ap;

    buf_printf(&r->headers, "%s: ", name);
    va_start(ap, fmt);
    buf_vprintf(&r->headers, fmt, ap);
    va_end(ap);
    buf_append_str(&r->headers, "\r\n");
}

void fake_http_resp_body(struct fake_http_response *r, const char *text)
{
    buf_append_str(&r->body, text);
}

int fake_http_free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int port = -1;

    if (fd < 0)
        return -1;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}
