/* The webhook outbox: every (event, target) delivery is a record in the
 * store's outbox written before the first attempt, sent through the shared
 * HTTP client with a signature, retried with backoff until a 2xx answer
 * removes it or give_up moves it to the dead letters. It does not build
 * events (notify.c) and does not decide which events happen (the manager).
 * Writes after open are the store's asynchronous operations (STYLE §5). */
#include "deploy/deploy.h"
#include "net/net.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define OUTBOX_GIVE_UP_MS ((int64_t)72 * 3600 * 1000)
#define OUTBOX_MAX_INFLIGHT 8
#define OUTBOX_TIMEOUT_MS 10000
#define OUTBOX_REPLY_MAX (64 * 1024)
#define OUTBOX_SECRET_MAX 4096
#define TRANSIENT_BASE_MS 2000
#define TRANSIENT_MAX_MS 30000
#define TRANSIENT_GIVE_UP_MS ((int64_t)3600 * 1000)

struct target {
    char *name;        /* owned */
    char *url;         /* owned */
    char *secret_file; /* owned, or NULL: unsigned */
    char *trust;       /* owned, or NULL: extra CA bundle for an https url */
    char *secret;      /* owned key bytes once read */
    size_t secret_len;
    bool secret_ok;
    unsigned events;           /* CFG_EVENT_* bits */
    bool solver;               /* a [dns.NAME] callback solver: only events addressed to it */
    long timeout_ms;           /* per request */
    enum cfg_notify_type type; /* webhook, email (secret = the SMTP password), slack */
    char *server;              /* email: owned */
    bool starttls;
    char *username, *from; /* email: owned */
    char **to;             /* email: owned, n_to */
    size_t n_to;
};

enum dl_state {
    DL_WRITING,  /* a store job persists the record */
    DL_WAITING,  /* until next_ms (or a free slot, or its target) */
    DL_SENDING,  /* req in flight */
    DL_REMOVING, /* delivered: a store write removes the record */
    DL_BURYING,  /* given up: a store job moves the file to dead/ */
};

struct delivery {
    struct notify *n; /* borrowed: the owner */
    struct delivery *prev, *next;
    char id[NOTIFY_ID_LEN + 1];
    char *target;   /* owned: the target's name */
    char *event;    /* owned: the event's name, for the header and the log */
    char *event_id; /* owned */
    char *body;     /* owned: the exact bytes signed and sent */
    size_t body_len;
    unsigned attempts;           /* failed attempts so far */
    int64_t created_ms, next_ms; /* wall clock (it must mean the same after a restart) */
    char *last_error;            /* owned, or NULL */
    bool solver;                 /* target is a [dns.NAME] callback solver */
    bool transient;              /* memory only: never written to the outbox */
    char *key;                   /* owned tag (solver deliveries), or NULL */
    enum dl_state state;
    struct http_req *req; /* child in flight, or NULL */
};

enum job_op { JOB_WRITE, JOB_REMOVE, JOB_BURY };

/* One store write of a delivery's record, until its callback. */
struct ob_job {
    struct notify *n;   /* borrowed: n waits for its jobs before it is freed */
    struct delivery *d; /* borrowed: deliveries live until n is freed or the job ends */
    enum job_op op;
};

struct notify {
    uv_loop_t *loop;
    struct http_client *http; /* borrowed */
    struct store *store;      /* borrowed: outlives n; NULL: no outbox */
    char *dir;                /* owned: where the outbox is, for messages (NULL: none) */
    char *dead_dir;           /* owned: where its dead letters go, for messages */
    struct notify_opts o;     /* defaults filled in */
    struct target *targets;   /* owned array */
    size_t n_targets;
    struct delivery *head, *tail; /* oldest first */
    unsigned inflight;
    unsigned jobs; /* store jobs not yet back */
    uv_timer_t timer;
    uv_timer_t drain_timer; /* defers a drain's check; then its deadline */
    int open_handles;       /* of the two timers, for close */
    bool closing;
    notify_drain_cb drain_cb; /* a drain waiting, or NULL */
    void *drain_arg;
    uint64_t drain_deadline; /* uv_now */
    notify_close_cb close_cb;
    void *close_arg;
    struct notify_stats stats;
};

static void pump(struct notify *n);
static bool quiescent(struct notify *n);
static const char *kind_name(bool solver);
static void on_drain_timer(uv_timer_t *t);

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint32_t jitter_rand(void)
{
    uint32_t r = 0;

    if (RAND_bytes((unsigned char *)&r, (int)sizeof(r)) != 1)
        r = (uint32_t)uv_hrtime(); /* jitter needs no secrecy */
    return r;
}

/* ---- targets ------------------------------------------------------------- */

/* The secret is the file's bytes with one final newline (LF or CRLF) taken
 * off, so `echo secret > file` and `printf secret > file` agree. */
static void target_load_secret(struct target *t)
{
    char *s = NULL;
    size_t len = 0;

    free(t->secret);
    t->secret = NULL;
    t->secret_len = 0;
    t->secret_ok = false;
    int rc = store_read_file(t->secret_file, &s, &len);
    if (rc == 0 && len > OUTBOX_SECRET_MAX)
        rc = ERR_TOO_BIG;
    if (rc < 0) {
        log_error(LOG_DEPLOY, "%s=%s: secret_file %s: %s", kind_name(t->solver), t->name,
                  t->secret_file, err_str(rc));
        free(s);
        return;
    }
    if (len > 0 && s[len - 1] == '\n')
        len--;
    if (len > 0 && s[len - 1] == '\r')
        len--;
    if (len == 0) {
        log_error(LOG_DEPLOY, "%s=%s: secret_file %s: empty", kind_name(t->solver), t->name,
                  t->secret_file);
        free(s);
        return;
    }
    t->secret = s;
    t->secret_len = len;
    t->secret_ok = true;
}

static void targets_free(struct notify *n)
{
    for (size_t i = 0; i < n->n_targets; i++) {
        struct target *t = &n->targets[i];
        free(t->name);
        free(t->url);
        free(t->secret_file);
        free(t->trust);
        free(t->server);
        free(t->username);
        free(t->from);
        for (size_t k = 0; k < t->n_to; k++)
            free(t->to[k]);
        free(t->to);
        if (t->secret != NULL)
            memset(t->secret, 0, t->secret_len);
        free(t->secret);
    }
    free(n->targets);
    n->targets = NULL;
    n->n_targets = 0;
}

static void target_add(struct notify *n, const char *name, const char *url, const char *secret_file,
                       const char *trust, unsigned events, bool solver, long timeout_ms)
{
    struct target *t = &n->targets[n->n_targets++];

    t->name = xstrdup(name);
    t->url = xstrdup(url);
    t->events = events;
    t->solver = solver;
    t->timeout_ms = timeout_ms > 0 ? timeout_ms : n->o.timeout_ms;
    t->trust = trust != NULL ? xstrdup(trust) : NULL;
    if (secret_file != NULL) {
        t->secret_file = xstrdup(secret_file);
        target_load_secret(t);
    }
}

/* The [notify.NAME] webhooks, and the [dns.NAME] callback solvers (a
 * namespace of their own: a solver gets only what is addressed to it). */
static void targets_set(struct notify *n, const struct config *cfg)
{
    size_t want = 0;

    targets_free(n);
    if (cfg == NULL)
        return;
    want = cfg->n_notify;
    for (size_t i = 0; i < cfg->n_dns; i++)
        want += cfg->dns[i].type == CFG_DNS_CALLBACK;
    if (want == 0)
        return;
    n->targets = xcalloc(want, sizeof(*n->targets));
    for (size_t i = 0; i < cfg->n_notify; i++) {
        const struct cfg_notify *c = &cfg->notify[i];
        bool email = c->type == CFG_NOTIFY_EMAIL;
        target_add(n, c->name, email ? c->server : c->url,
                   email ? c->password_file : c->secret_file, c->trust, c->events, false, 0);
        struct target *t = &n->targets[n->n_targets - 1];
        t->type = c->type;
        if (email) {
            t->server = xstrdup(c->server);
            t->starttls = c->starttls;
            t->username = c->username != NULL ? xstrdup(c->username) : NULL;
            t->from = xstrdup(c->from);
            t->to = xcalloc(c->to.n, sizeof(*t->to));
            for (size_t k = 0; k < c->to.n; k++)
                t->to[t->n_to++] = xstrdup(c->to.v[k]);
        }
    }
    for (size_t i = 0; i < cfg->n_dns; i++) {
        const struct cfg_dns *c = &cfg->dns[i];
        if (c->type != CFG_DNS_CALLBACK || c->url == NULL)
            continue;
        target_add(n, c->name, c->url, c->secret_file, c->trust,
                   CFG_EVENT_DNS_RECORD_REQUIRED | CFG_EVENT_DNS_RECORD_REMOVABLE, true,
                   c->timeout_s > 0 ? (long)c->timeout_s * 1000 : 0);
    }
}

static struct target *target_find(struct notify *n, const char *name, bool solver)
{
    for (size_t i = 0; i < n->n_targets; i++) {
        if (n->targets[i].solver == solver && strcmp(n->targets[i].name, name) == 0)
            return &n->targets[i];
    }
    return NULL;
}

/* What the log calls a target: "notify target=NAME" (a [notify.NAME]
 * webhook, email or slack) or "dns callback solver=NAME". */
static const char *kind_name(bool solver)
{
    return solver ? "dns callback solver" : "notify target";
}

static bool target_wants(const struct target *t, enum notify_event_type ty)
{
    return (t->events & (1u << ty)) != 0; /* CFG_EVENT_* bits are 1 << type */
}

/* ---- deliveries ---------------------------------------------------------- */

static void delivery_free(struct delivery *d)
{
    if (d == NULL)
        return;
    free(d->target);
    free(d->event);
    free(d->event_id);
    free(d->body);
    free(d->last_error);
    free(d->key);
    free(d);
}

static void list_append(struct notify *n, struct delivery *d)
{
    d->n = n;
    d->prev = n->tail;
    d->next = NULL;
    if (n->tail != NULL)
        n->tail->next = d;
    else
        n->head = d;
    n->tail = d;
}

static void list_drop(struct notify *n, struct delivery *d)
{
    if (d->prev != NULL)
        d->prev->next = d->next;
    else
        n->head = d->next;
    if (d->next != NULL)
        d->next->prev = d->prev;
    else
        n->tail = d->prev;
    delivery_free(d);
}

/* The record as stored: everything needed to resend it after a restart. */
static char *record_text(const struct delivery *d)
{
    json_t *o = json_object();

    json_object_set_new(o, "delivery", json_string(d->id));
    json_object_set_new(o, "target", json_string(d->target));
    json_object_set_new(o, "event", json_string(d->event));
    json_object_set_new(o, "event_id", json_string(d->event_id));
    json_object_set_new(o, "created_ms", json_integer(d->created_ms));
    json_object_set_new(o, "attempts", json_integer(d->attempts));
    json_object_set_new(o, "next_attempt_ms", json_integer(d->next_ms));
    if (d->last_error != NULL)
        json_object_set_new(o, "last_error", json_string(d->last_error));
    if (d->solver)
        json_object_set_new(o, "solver", json_true());
    json_object_set_new(o, "body", json_stringn(d->body, d->body_len));
    char *text = json_dumps(o, JSON_PRESERVE_ORDER | JSON_INDENT(1));
    json_decref(o);
    if (text == NULL)
        abort(); /* every string came from valid JSON or is ours: only OOM */
    char *res = xasprintf("%s\n", text);
    free(text);
    return res;
}

static const char *jstr(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* Parses a stored record; NULL (and *why) when it is not one. */
static struct delivery *record_parse(const char *text, const char *file_id, const char **why)
{
    json_error_t jerr;
    json_t *o = json_loads(text, 0, &jerr);
    struct delivery *d = NULL;
    enum notify_event_type ty;

    *why = "not JSON";
    if (o == NULL)
        return NULL;
    const char *id = jstr(o, "delivery"), *target = jstr(o, "target"), *event = jstr(o, "event");
    const char *event_id = jstr(o, "event_id");
    json_t *body = json_object_get(o, "body");
    json_t *created = json_object_get(o, "created_ms"), *attempts = json_object_get(o, "attempts");
    json_t *next = json_object_get(o, "next_attempt_ms");
    *why = "missing or mistyped fields";
    if (id == NULL || target == NULL || event == NULL || event_id == NULL ||
        !json_is_string(body) || !json_is_integer(created) || !json_is_integer(attempts) ||
        !json_is_integer(next) || json_integer_value(attempts) < 0 ||
        json_integer_value(attempts) > 1000000)
        goto out;
    *why = "delivery id does not match the file name";
    if (!notify_id_ok(id) || strlen(id) != NOTIFY_ID_LEN || strcmp(id, file_id) != 0)
        goto out;
    *why = "unknown event";
    if (notify_event_type_parse(event, &ty) < 0)
        goto out;
    d = xcalloc(1, sizeof(*d));
    memcpy(d->id, id, NOTIFY_ID_LEN + 1);
    d->target = xstrdup(target);
    d->event = xstrdup(event);
    d->event_id = xstrdup(event_id);
    d->body_len = json_string_length(body);
    d->body = xmemdup(json_string_value(body), d->body_len + 1);
    d->created_ms = json_integer_value(created);
    d->attempts = (unsigned)json_integer_value(attempts);
    d->next_ms = json_integer_value(next);
    if (jstr(o, "last_error") != NULL)
        d->last_error = xstrdup(jstr(o, "last_error"));
    d->solver = json_is_true(json_object_get(o, "solver"));
    d->state = DL_WAITING;
    *why = NULL;
out:
    json_decref(o);
    return d;
}

/* ---- store writes ------------------------------------------------------- */

static void maybe_free(struct notify *n);
static void job_done(int status, const struct store_result *r, void *arg);

/* Starts the store write of op for d; < 0 when it could not start (logged). */
static int job_start(struct notify *n, struct delivery *d, enum job_op op)
{
    struct ob_job *j = xcalloc(1, sizeof(*j));
    char *text = op != JOB_REMOVE ? record_text(d) : NULL;
    int rc;

    j->n = n;
    j->d = d;
    j->op = op;
    if (op == JOB_WRITE)
        rc = store_outbox_put_start(n->store, d->id, text, job_done, j);
    else if (op == JOB_BURY)
        rc = store_outbox_bury_start(n->store, d->id, text, job_done, j);
    else
        rc = store_outbox_remove_start(n->store, d->id, job_done, j);
    free(text);
    if (rc < 0) {
        log_error(LOG_DEPLOY, "%s=%s delivery=%s: outbox job: %s", kind_name(d->solver), d->target,
                  d->id, uv_strerror(rc));
        free(j);
        return rc;
    }
    n->jobs++;
    return 0;
}

static void job_done(int status, const struct store_result *r, void *arg)
{
    struct ob_job *j = arg;
    struct notify *n = j->n;
    struct delivery *d = j->d;

    n->jobs--;
    if (n->closing) {
        /* the delivery stays in n's list and is freed with it; the record
         * is whatever the write left (a retry sends it again after restart) */
        free(j);
        maybe_free(n);
        return;
    }
    if (status < 0)
        log_error(LOG_DEPLOY, "%s=%s delivery=%s: %s", kind_name(d->solver), d->target, d->id,
                  r->error != NULL ? r->error : err_str(status));
    switch (j->op) {
    case JOB_WRITE:
        /* a failed write still leaves the delivery in memory: it is sent
         * while we run, only a restart could lose it */
        d->state = DL_WAITING;
        break;
    case JOB_REMOVE:
    case JOB_BURY:
        list_drop(n, d);
        break;
    }
    free(j);
    pump(n);
}

/* ---- sending ------------------------------------------------------------- */

/* In-memory deliveries matter while an order waits for them: they are
 * retried sooner and given up sooner than the outbox's. */
static void transient_opts(const struct notify *n, struct notify_opts *o)
{
    *o = n->o;
    if (o->base_delay_ms > TRANSIENT_BASE_MS)
        o->base_delay_ms = TRANSIENT_BASE_MS;
    if (o->max_delay_ms > TRANSIENT_MAX_MS)
        o->max_delay_ms = TRANSIENT_MAX_MS;
    if (o->give_up_ms > TRANSIENT_GIVE_UP_MS)
        o->give_up_ms = TRANSIENT_GIVE_UP_MS;
}

static void attempt_failed(struct delivery *d, const char *reason, int64_t retry_after_s)
{
    struct notify *n = d->n;
    struct notify_opts o = n->o;
    int64_t now = wall_ms();

    if (d->transient)
        transient_opts(n, &o);
    int64_t delay = notify_backoff_ms(&o, d->attempts + 1, jitter_rand());
    d->attempts++;
    n->stats.failed++;
    if (retry_after_s >= 0 && retry_after_s * 1000 > delay)
        delay = retry_after_s * 1000 < o.max_delay_ms ? retry_after_s * 1000 : o.max_delay_ms;
    free(d->last_error);
    d->last_error = xstrdup(reason);
    if (now + delay - d->created_ms > o.give_up_ms) {
        n->stats.dead++;
        if (d->transient) {
            log_error(LOG_DEPLOY, "%s=%s delivery=%s event=%s: giving up after %u attempts: %s",
                      kind_name(d->solver), d->target, d->id, d->event, d->attempts, reason);
            list_drop(n, d);
            return;
        }
        log_error(
            LOG_DEPLOY, "%s=%s delivery=%s event=%s: giving up after %u attempts: %s; moved to %s",
            kind_name(d->solver), d->target, d->id, d->event, d->attempts, reason, n->dead_dir);
        d->state = DL_BURYING;
        if (job_start(n, d, JOB_BURY) < 0)
            list_drop(n, d);
        return;
    }
    log_warn(LOG_DEPLOY, "%s=%s delivery=%s event=%s: attempt %u failed: %s; next in %lld ms",
             kind_name(d->solver), d->target, d->id, d->event, d->attempts, reason,
             (long long)delay);
    d->next_ms = now + delay;
    d->state = DL_WAITING;
    if (!d->transient) {
        d->state = DL_WRITING;
        if (job_start(n, d, JOB_WRITE) < 0)
            d->state = DL_WAITING;
    }
}

/* "HTTP 403: the first line of the answer's body" (masked, short). */
static char *answer_reason(const struct http_response *resp)
{
    const char *b = resp->body.data != NULL ? (const char *)resp->body.data : "";
    size_t len = strcspn(b, "\r\n");
    char line[160];

    if (len == 0)
        return xasprintf("HTTP %ld", resp->status);
    log_mask(line, sizeof(line), b, len);
    return xasprintf("HTTP %ld: %s", resp->status, line);
}

static void on_response(int status, const struct http_response *resp, void *arg)
{
    struct delivery *d = arg;
    struct notify *n = d->n;

    d->req = NULL;
    n->inflight--;
    /* SMTP too: curl fails the transfer on any refusal; 250 is the last reply */
    if (status == 0 && resp->status >= 200 && resp->status <= 299) {
        log_info(LOG_DEPLOY, "%s=%s delivery=%s event=%s: delivered (HTTP %ld)",
                 kind_name(d->solver), d->target, d->id, d->event, resp->status);
        n->stats.delivered++;
        if (d->transient) {
            list_drop(n, d);
        } else {
            d->state = DL_REMOVING;
            if (job_start(n, d, JOB_REMOVE) < 0)
                list_drop(n, d);
        }
    } else if (status == 0) {
        char *reason = answer_reason(resp);
        int64_t ra = http_retry_after_parse(resp->retry_after, wall_ms() / 1000);
        attempt_failed(d, reason, ra);
        free(reason);
    } else {
        attempt_failed(d, resp->error, -1);
    }
    pump(n);
}

/* Email: the event as a text message over SMTP (STARTTLS or TLS), AUTH
 * with the password file when a username is set. */
static void send_mail(struct notify *n, struct delivery *d, struct target *t)
{
    if (t->secret_file != NULL && !t->secret_ok)
        target_load_secret(t); /* maybe fixed since: an inline page-cache read */
    if (t->secret_file != NULL && !t->secret_ok) {
        attempt_failed(d, "no password (password_file unreadable)", -1);
        return;
    }
    char *msg = notify_email_message(d->body, t->from, (const char *const *)t->to, t->n_to, d->id,
                                     wall_ms() / 1000);
    if (msg == NULL) {
        attempt_failed(d, "not an event", -1);
        return;
    }
    char *pass = t->secret_ok ? xmemdup(t->secret, t->secret_len + 1) : NULL;
    if (pass != NULL)
        pass[t->secret_len] = '\0';
    struct http_request_opts o = {
        .method = "MAIL",
        .url = t->server,
        .body = msg,
        .body_len = strlen(msg),
        .mail_from = t->from,
        .mail_rcpt = (const char *const *)t->to,
        .n_mail_rcpt = t->n_to,
        .smtp_plain = !t->starttls,
        .username = t->username,
        .password = pass,
        .trust_file = t->trust,
        .max_body = OUTBOX_REPLY_MAX,
        .timeout_ms = t->timeout_ms,
    };
    d->state = DL_SENDING;
    n->inflight++;
    log_debug(LOG_DEPLOY, "email target=%s delivery=%s event=%s: attempt %u", d->target, d->id,
              d->event, d->attempts + 1);
    int rc = http_req_start(n->http, &o, on_response, d, &d->req);
    if (pass != NULL) {
        memset(pass, 0, t->secret_len);
        free(pass);
    }
    free(msg);
    if (rc < 0) {
        n->inflight--;
        d->req = NULL;
        attempt_failed(d, err_str(rc), -1);
    }
}

static void send_one(struct notify *n, struct delivery *d, struct target *t)
{
    if (t->type == CFG_NOTIFY_EMAIL) {
        send_mail(n, d, t);
        return;
    }
    char sig[NOTIFY_SIG_LEN + 1];
    struct http_header h[4] = {
        {"Content-Type", "application/json"},
        {"X-Certloop-Event", d->event},
        {"X-Certloop-Delivery", d->id},
    };
    size_t nh = 3;

    char *slack = NULL;
    if (t->type == CFG_NOTIFY_SLACK) {
        slack = notify_slack_body(d->body);
        if (slack == NULL) {
            attempt_failed(d, "not an event", -1);
            return;
        }
    }
    if (t->secret_file != NULL) {
        if (!t->secret_ok)
            target_load_secret(t); /* maybe fixed since: an inline page-cache read */
        if (!t->secret_ok) {
            attempt_failed(d, "no secret (secret_file unreadable)", -1);
            return;
        }
        notify_signature(t->secret, t->secret_len, d->body, d->body_len, sig);
        h[nh].name = "X-Certloop-Signature";
        h[nh].value = sig;
        nh++;
    }
    struct http_request_opts o = {
        .method = "POST",
        .url = t->url,
        .headers = h,
        .n_headers = nh,
        .body = slack != NULL ? slack : d->body,
        .body_len = slack != NULL ? strlen(slack) : d->body_len,
        .trust_file = t->trust,
        .max_body = OUTBOX_REPLY_MAX,
        .timeout_ms = t->timeout_ms,
        .redact_url = true, /* webhook URLs often carry a secret */
    };
    d->state = DL_SENDING;
    n->inflight++;
    log_debug(LOG_DEPLOY, "%s=%s delivery=%s event=%s: attempt %u", kind_name(d->solver), d->target,
              d->id, d->event, d->attempts + 1);
    int rc = http_req_start(n->http, &o, on_response, d, &d->req);
    free(slack);
    if (rc < 0) {
        n->inflight--;
        d->req = NULL;
        attempt_failed(d, err_str(rc), -1);
    }
}

static void on_timer(uv_timer_t *t)
{
    pump(t->data);
}

/* Nothing to do right now: no delivery being written, sent or removed, and
 * none due (with a target) but waiting for a slot. */
static bool quiescent(struct notify *n)
{
    int64_t now = wall_ms();

    for (struct delivery *d = n->head; d != NULL; d = d->next) {
        if (d->state != DL_WAITING)
            return false;
        if (d->next_ms <= now && target_find(n, d->target, d->solver) != NULL)
            return false;
    }
    return true;
}

static void on_drain_timer(uv_timer_t *t)
{
    struct notify *n = t->data;
    notify_drain_cb cb = n->drain_cb;
    bool done = quiescent(n);

    if (cb == NULL)
        return;
    if (!done && uv_now(n->loop) < n->drain_deadline) {
        uv_timer_start(&n->drain_timer, on_drain_timer, n->drain_deadline - uv_now(n->loop), 0);
        return;
    }
    n->drain_cb = NULL;
    if (!done && n->dir != NULL)
        log_warn(LOG_DEPLOY, "webhook outbox: deliveries still in progress; they stay in %s",
                 n->dir);
    else if (!done)
        log_warn(LOG_DEPLOY, "webhooks: deliveries still in progress are dropped (no outbox)");
    cb(done, n->drain_arg);
}

/* Starts every due delivery there is room for, oldest first, and arms the
 * timer for the next one that is not due yet. */
static void pump(struct notify *n)
{
    int64_t now = wall_ms();
    int64_t earliest = INT64_MAX;

    if (n->closing)
        return;
    for (struct delivery *d = n->head, *next; d != NULL; d = next) {
        next = d->next; /* d may be dropped by a synchronous failure */
        if (d->state != DL_WAITING)
            continue;
        struct target *t = target_find(n, d->target, d->solver);
        if (t == NULL)
            continue; /* its target is gone from the config: it waits */
        /* no delay is longer than max_delay: a later time was computed
         * before the wall clock stepped back */
        if (d->next_ms - now > n->o.max_delay_ms)
            d->next_ms = now + n->o.max_delay_ms;
        if (d->next_ms > now) {
            if (d->next_ms < earliest)
                earliest = d->next_ms;
            continue;
        }
        if (n->inflight >= n->o.max_inflight)
            continue; /* a completion pumps again */
        send_one(n, d, t);
    }
    if (earliest == INT64_MAX)
        uv_timer_stop(&n->timer);
    else
        uv_timer_start(&n->timer, on_timer, (uint64_t)(earliest - now), 0);
    /* a drain is told from its own timer, never from inside emit or reload */
    if (n->drain_cb != NULL && quiescent(n))
        uv_timer_start(&n->drain_timer, on_drain_timer, 0, 0);
}

/* ---- open, reload, emit, close ------------------------------------------- */

static int cmp_created(const void *a, const void *b)
{
    const struct delivery *x = *(struct delivery *const *)a, *y = *(struct delivery *const *)b;

    if (x->created_ms != y->created_ms)
        return x->created_ms < y->created_ms ? -1 : 1;
    return strcmp(x->id, y->id);
}

struct scan {
    struct notify *n;
    struct delivery **v; /* owned array */
    size_t nv, cap;
};

/* store_outbox_load's callback: a record we cannot use goes to the dead
 * letters at once (the reason returned), so it is neither lost nor retried
 * forever. */
static const char *scan_one(const char *id, const char *text, void *arg)
{
    struct scan *sc = arg;
    const char *why = NULL;

    if (strlen(id) != NOTIFY_ID_LEN) {
        log_debug(LOG_DEPLOY, "webhook outbox: ignoring %s", id);
        return NULL;
    }
    struct delivery *d = record_parse(text, id, &why);
    if (d == NULL)
        return why;
    sc->v = xreallocarray_grow(sc->v, &sc->cap, sc->nv + 1, sizeof(*sc->v));
    sc->v[sc->nv++] = d;
    return NULL;
}

static int outbox_scan(struct notify *n)
{
    struct scan sc = {.n = n};
    int rc = store_outbox_load(n->store, scan_one, &sc);

    if (rc < 0) {
        for (size_t i = 0; i < sc.nv; i++)
            delivery_free(sc.v[i]);
        free(sc.v);
        return rc;
    }
    if (sc.nv > 0)
        qsort(sc.v, sc.nv, sizeof(*sc.v), cmp_created);
    for (size_t i = 0; i < sc.nv; i++)
        list_append(n, sc.v[i]);
    free(sc.v);
    if (sc.nv > 0)
        log_info(LOG_DEPLOY, "webhook outbox %s: %zu pending deliveries", n->dir, sc.nv);
    return 0;
}

static void notify_free(struct notify *n)
{
    while (n->head != NULL) {
        struct delivery *d = n->head;
        n->head = d->next;
        delivery_free(d);
    }
    targets_free(n);
    free(n->dir);
    free(n->dead_dir);
    free(n);
}

int notify_open(uv_loop_t *loop, struct http_client *http, struct store *store,
                const struct config *cfg, const struct notify_opts *o, struct notify **out)
{
    struct notify *n = xcalloc(1, sizeof(*n));
    int rc;

    n->loop = loop;
    n->http = http;
    if (o != NULL)
        n->o = *o;
    if (n->o.base_delay_ms <= 0)
        n->o.base_delay_ms = 10000;
    if (n->o.max_delay_ms <= 0)
        n->o.max_delay_ms = (int64_t)3600 * 1000;
    if (n->o.max_delay_ms < n->o.base_delay_ms)
        n->o.max_delay_ms = n->o.base_delay_ms;
    if (n->o.give_up_ms <= 0)
        n->o.give_up_ms = OUTBOX_GIVE_UP_MS;
    if (n->o.max_inflight == 0)
        n->o.max_inflight = OUTBOX_MAX_INFLIGHT;
    if (n->o.timeout_ms <= 0)
        n->o.timeout_ms = OUTBOX_TIMEOUT_MS;
    if (store != NULL) {
        n->store = store;
        n->dir = store_where(store, STORE_WHERE_OUTBOX, NULL);
        n->dead_dir = store_where(store, STORE_WHERE_OUTBOX_DEAD, NULL);
        rc = outbox_scan(n);
        if (rc < 0) {
            notify_free(n);
            return rc;
        }
    }
    targets_set(n, cfg);
    uv_timer_init(loop, &n->timer);
    n->timer.data = n;
    uv_timer_init(loop, &n->drain_timer);
    n->drain_timer.data = n;
    n->open_handles = 2;
    pump(n);
    *out = n;
    return 0;
}

void notify_reload(struct notify *n, const struct config *cfg)
{
    if (n->closing)
        return;
    targets_set(n, cfg);
    pump(n);
}

/* Parses an event's JSON text for what a delivery needs; NULL (logged) when
 * it is not an event. */
static json_t *event_parse(const char *event_json, enum notify_event_type *ty)
{
    json_error_t jerr;
    json_t *o = json_loads(event_json, 0, &jerr);
    const char *id = jstr(o, "id"), *event = jstr(o, "event"), *cert = jstr(o, "certificate");

    if (!json_is_object(o) || id == NULL || event == NULL || cert == NULL || !notify_id_ok(id) ||
        notify_event_type_parse(event, ty) < 0) {
        log_error(LOG_DEPLOY, "webhook: not an event: %s",
                  o == NULL ? jerr.text : "missing or bad id, event or certificate");
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Queues one delivery of the event o (text event_json) to t: persisted
 * first unless transient (or without an outbox directory), then sent. */
static struct delivery *delivery_queue(struct notify *n, const struct target *t, json_t *o,
                                       const char *event_json, bool transient, const char *key)
{
    struct delivery *d = xcalloc(1, sizeof(*d));
    int64_t now = wall_ms();

    if (notify_id_new(d->id) < 0) {
        delivery_free(d);
        return NULL;
    }
    d->target = xstrdup(t->name);
    d->solver = t->solver;
    d->transient = transient || n->dir == NULL;
    d->key = key != NULL ? xstrdup(key) : NULL;
    d->event = xstrdup(jstr(o, "event"));
    d->event_id = xstrdup(jstr(o, "id"));
    d->body_len = strlen(event_json);
    d->body = xmemdup(event_json, d->body_len + 1);
    d->created_ms = now;
    d->next_ms = now;
    d->state = DL_WAITING;
    list_append(n, d);
    if (!d->transient) {
        /* persisted before the first attempt: sending starts in job_done */
        d->state = DL_WRITING;
        if (job_start(n, d, JOB_WRITE) < 0)
            d->state = DL_WAITING;
    }
    return d;
}

int notify_emit(struct notify *n, const char *event_json)
{
    enum notify_event_type ty;
    int count = 0;

    if (n->closing)
        return -ECANCELED;
    json_t *o = event_parse(event_json, &ty);
    if (o == NULL)
        return -EINVAL;
    for (size_t i = 0; i < n->n_targets; i++) {
        struct target *t = &n->targets[i];
        if (t->solver || !target_wants(t, ty))
            continue;
        if (delivery_queue(n, t, o, event_json, false, NULL) != NULL)
            count++;
    }
    if (count > 0)
        log_info(LOG_DEPLOY, "event %s cert=%s id=%s: %d webhook deliveries queued",
                 jstr(o, "event"), jstr(o, "certificate"), jstr(o, "id"), count);
    else
        log_debug(LOG_DEPLOY, "event %s cert=%s id=%s: no webhook subscribed", jstr(o, "event"),
                  jstr(o, "certificate"), jstr(o, "id"));
    json_decref(o);
    pump(n);
    return count;
}

int notify_emit_solver(struct notify *n, const char *solver, const char *event_json, bool persist,
                       const char *key)
{
    enum notify_event_type ty;

    if (n->closing)
        return -ECANCELED;
    const struct target *t = target_find(n, solver, true);
    if (t == NULL) {
        log_error(LOG_DEPLOY, "dns callback solver=%s: not configured", solver);
        return -ENOENT;
    }
    json_t *o = event_parse(event_json, &ty);
    if (o == NULL)
        return -EINVAL;
    struct delivery *d = delivery_queue(n, t, o, event_json, !persist, key);
    if (d != NULL)
        log_info(LOG_DEPLOY, "event %s cert=%s id=%s: queued for dns callback solver=%s%s",
                 d->event, jstr(o, "certificate"), d->event_id, solver,
                 d->transient ? " (in memory)" : "");
    json_decref(o);
    pump(n);
    return d != NULL ? 1 : ERR_CRYPTO;
}

/* The undelivered in-memory delivery to solver tagged key, or NULL. */
static struct delivery *solver_find(const struct notify *n, const char *solver, const char *key,
                                    const struct delivery *from)
{
    for (struct delivery *d = from != NULL ? from->next : n->head; d != NULL; d = d->next) {
        if (d->solver && d->transient && d->key != NULL && strcmp(d->target, solver) == 0 &&
            strcmp(d->key, key) == 0)
            return d;
    }
    return NULL;
}

size_t notify_solver_cancel(struct notify *n, const char *solver, const char *key)
{
    size_t count = 0;

    for (struct delivery *d = solver_find(n, solver, key, NULL), *next; d != NULL; d = next) {
        next = solver_find(n, solver, key, d);
        if (d->req != NULL) {
            http_req_cancel(d->req); /* silent */
            d->req = NULL;
            n->inflight--;
        }
        log_debug(LOG_DEPLOY, "dns callback solver=%s delivery=%s event=%s: no longer needed",
                  solver, d->id, d->event);
        list_drop(n, d);
        count++;
    }
    if (count > 0 && !n->closing)
        pump(n);
    return count;
}

bool notify_solver_pending(const struct notify *n, const char *solver, const char *key,
                           unsigned *attempts, const char **last_error)
{
    const struct delivery *d = solver_find(n, solver, key, NULL);

    if (d == NULL)
        return false;
    if (attempts != NULL)
        *attempts = d->attempts;
    if (last_error != NULL)
        *last_error = d->last_error;
    return true;
}

static void maybe_free(struct notify *n)
{
    if (n->open_handles > 0 || n->jobs > 0)
        return;
    notify_close_cb cb = n->close_cb;
    void *arg = n->close_arg;
    notify_free(n);
    if (cb != NULL)
        cb(arg);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct notify *n = h->data;

    n->open_handles--;
    maybe_free(n);
}

void notify_close(struct notify *n, notify_close_cb cb, void *arg)
{
    if (n == NULL || n->closing)
        return;
    n->closing = true;
    n->close_cb = cb;
    n->close_arg = arg;
    for (struct delivery *d = n->head; d != NULL; d = d->next) {
        if (d->req != NULL) {
            http_req_cancel(d->req); /* silent: on_response never runs */
            d->req = NULL;
            n->inflight--;
        }
    }
    n->drain_cb = NULL;
    uv_close((uv_handle_t *)&n->timer, on_timer_closed);
    uv_close((uv_handle_t *)&n->drain_timer, on_timer_closed);
}

int notify_drain(struct notify *n, uint64_t timeout_ms, notify_drain_cb cb, void *arg)
{
    if (n->closing)
        return -ECANCELED;
    if (n->drain_cb != NULL)
        return -EBUSY;
    n->drain_cb = cb;
    n->drain_arg = arg;
    n->drain_deadline = uv_now(n->loop) + timeout_ms;
    uv_timer_start(&n->drain_timer, on_drain_timer, 0, 0);
    return 0;
}

void notify_stats_get(const struct notify *n, struct notify_stats *out)
{
    *out = n->stats;
    out->pending = 0;
    for (const struct delivery *d = n->head; d != NULL; d = d->next) {
        if (d->state != DL_REMOVING && d->state != DL_BURYING)
            out->pending++;
    }
    out->inflight = n->inflight;
}
