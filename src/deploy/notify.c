/* Events as data: the JSON an event becomes, its random id, the webhook
 * signature, the retry schedule and the expiry-alert rule. All pure (apart
 * from the random bytes); the delivery machine that persists and sends
 * events lives in outbox.c. */
#include "deploy/deploy.h"
#include "util/err.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const event_names[NOTIFY_EV__MAX] = {
    [NOTIFY_EV_ISSUED] = "issued",
    [NOTIFY_EV_RENEWED] = "renewed",
    [NOTIFY_EV_FAILED] = "failed",
    [NOTIFY_EV_EXPIRING] = "expiring",
    [NOTIFY_EV_DEPLOY_FAILED] = "deploy_failed",
    [NOTIFY_EV_DNS_RECORD_REQUIRED] = "dns_record_required",
    [NOTIFY_EV_DNS_RECORD_REMOVABLE] = "dns_record_removable",
    [NOTIFY_EV_PERSIST_EXPIRING] = "persist_expiring",
    [NOTIFY_EV_FLEET_CONFLICT] = "fleet_conflict",
};

/* The config's subscription bits are 1 << type. */
_Static_assert(CFG_EVENT_ISSUED == 1u << NOTIFY_EV_ISSUED, "event bits");
_Static_assert(CFG_EVENT_RENEWED == 1u << NOTIFY_EV_RENEWED, "event bits");
_Static_assert(CFG_EVENT_FAILED == 1u << NOTIFY_EV_FAILED, "event bits");
_Static_assert(CFG_EVENT_EXPIRING == 1u << NOTIFY_EV_EXPIRING, "event bits");
_Static_assert(CFG_EVENT_DEPLOY_FAILED == 1u << NOTIFY_EV_DEPLOY_FAILED, "event bits");
_Static_assert(CFG_EVENT_DNS_RECORD_REQUIRED == 1u << NOTIFY_EV_DNS_RECORD_REQUIRED, "event bits");
_Static_assert(CFG_EVENT_DNS_RECORD_REMOVABLE == 1u << NOTIFY_EV_DNS_RECORD_REMOVABLE,
               "event bits");
_Static_assert(CFG_EVENT_PERSIST_EXPIRING == 1u << NOTIFY_EV_PERSIST_EXPIRING, "event bits");
_Static_assert(CFG_EVENT_FLEET_CONFLICT == 1u << NOTIFY_EV_FLEET_CONFLICT, "event bits");
_Static_assert(CFG_EVENT_ALL == (1u << NOTIFY_EV__MAX) - 1, "event bits");
_Static_assert(CFG_EVENT_ALL == (1u << NOTIFY_EV__MAX) - 1, "every event has a bit");

const char *notify_event_name(enum notify_event_type t)
{
    if ((unsigned)t >= NOTIFY_EV__MAX)
        return NULL;
    return event_names[t];
}

int notify_event_type_parse(const char *s, enum notify_event_type *out)
{
    for (unsigned i = 0; s != NULL && i < NOTIFY_EV__MAX; i++) {
        if (strcmp(s, event_names[i]) == 0) {
            *out = (enum notify_event_type)i;
            return 0;
        }
    }
    return -EINVAL;
}

static void hex_encode(const unsigned char *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 0xf];
    }
    out[2 * n] = '\0';
}

int notify_id_new(char out[NOTIFY_ID_LEN + 1])
{
    unsigned char rnd[NOTIFY_ID_LEN / 2];

    if (RAND_bytes(rnd, (int)sizeof(rnd)) != 1) {
        unsigned long e = ERR_get_error();
        char msg[256];

        ERR_error_string_n(e, msg, sizeof(msg));
        ERR_clear_error();
        log_error(LOG_DEPLOY, "event id: RAND_bytes: %s", msg);
        return ERR_CRYPTO;
    }
    hex_encode(rnd, sizeof(rnd), out);
    return 0;
}

bool notify_id_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* RFC 3339 in UTC with a Z, whole seconds. */
static void rfc3339(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, 32, "1970-01-01T00:00:00Z");
}

static int set_str(json_t *o, const char *key, const char *val)
{
    /* json_string refuses invalid UTF-8: such text is not ours to send */
    json_t *v = json_string(val);

    if (v == NULL)
        return -EINVAL;
    json_object_set_new(o, key, v);
    return 0;
}

/* type, detail and identifier into o, each when not NULL. */
static int set_problem(json_t *o, const char *type, const char *detail, const char *identifier)
{
    if ((type != NULL && set_str(o, "type", type) < 0) ||
        (detail != NULL && set_str(o, "detail", detail) < 0) ||
        (identifier != NULL && set_str(o, "identifier", identifier) < 0))
        return -EINVAL;
    return 0;
}

int notify_event_build(const struct notify_event *e, char **out)
{
    const char *name = notify_event_name(e->type);
    char id[NOTIFY_ID_LEN + 1];
    char when[32];
    json_t *o = NULL;
    int rc;

    if (name == NULL) {
        log_error(LOG_DEPLOY, "event: unknown type %d", (int)e->type);
        return -EINVAL;
    }
    if (e->certificate == NULL || e->certificate[0] == '\0') {
        log_error(LOG_DEPLOY, "event %s: no certificate name", name);
        return -EINVAL;
    }
    bool dns =
        e->type == NOTIFY_EV_DNS_RECORD_REQUIRED || e->type == NOTIFY_EV_DNS_RECORD_REMOVABLE;
    if (dns && (e->record_name == NULL || e->record_value == NULL)) {
        log_error(LOG_DEPLOY, "event %s cert=%s: no record", name, e->certificate);
        return -EINVAL;
    }
    if (e->id != NULL) {
        if (!notify_id_ok(e->id)) {
            log_error(LOG_DEPLOY, "event %s cert=%s: bad id", name, e->certificate);
            return -EINVAL;
        }
    } else {
        rc = notify_id_new(id);
        if (rc < 0)
            return rc;
    }

    o = json_object();
    rc = -EINVAL;
    if (set_str(o, "id", e->id != NULL ? e->id : id) < 0 || set_str(o, "event", name) < 0 ||
        set_str(o, "certificate", e->certificate) < 0)
        goto bad;
    json_t *domains = json_array();
    json_object_set_new(o, "domains", domains);
    for (size_t i = 0; i < e->n_domains; i++) {
        json_t *d = json_string(e->domains[i]);
        if (d == NULL)
            goto bad;
        json_array_append_new(domains, d);
    }
    rfc3339(e->time, when);
    set_str(o, "time", when);
    if (e->not_after != 0) {
        rfc3339(e->not_after, when);
        set_str(o, "not_after", when);
    }
    if (e->persist_until != 0) {
        rfc3339(e->persist_until, when);
        set_str(o, "persist_until", when);
    }
    if (e->error_type != NULL || e->error_detail != NULL || e->error_identifier != NULL ||
        e->n_subproblems > 0) {
        json_t *err = json_object();
        json_object_set_new(o, "error", err);
        if (set_problem(err, e->error_type, e->error_detail, e->error_identifier) < 0)
            goto bad;
        if (e->n_subproblems > 0) {
            json_t *subs = json_array();
            json_object_set_new(err, "subproblems", subs);
            for (size_t i = 0; i < e->n_subproblems; i++) {
                const struct notify_subproblem *sp = &e->subproblems[i];
                json_t *so = json_object();
                json_array_append_new(subs, so);
                if (set_problem(so, sp->type, sp->detail, sp->identifier) < 0)
                    goto bad;
            }
        }
    }
    if (dns) {
        json_t *rec = json_object();
        json_object_set_new(o, "record", rec);
        if (set_str(rec, "name", e->record_name) < 0 || set_str(rec, "value", e->record_value) < 0)
            goto bad;
    }
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text == NULL)
        abort(); /* only allocation fails here (STYLE §3) */
    *out = xstrdup(text);
    free(text);
    rc = 0;
    goto out;
bad:
    log_error(LOG_DEPLOY, "event %s cert=%s: text is not valid UTF-8", name, e->certificate);
out:
    json_decref(o);
    return rc;
}

/* ---- events for people -------------------------------------------------- */

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "";
}

static const char *event_phrase(const char *ev)
{
    static const struct {
        const char *ev, *phrase;
    } phrases[] = {
        {"issued", "issued"},
        {"renewed", "renewed"},
        {"failed", "could not be obtained"},
        {"expiring", "expires soon"},
        {"deploy_failed", "was obtained but not deployed"},
        {"dns_record_required", "needs a DNS record"},
        {"dns_record_removable", "no longer needs its DNS record"},
        {"persist_expiring", "has dns-persist-01 records about to expire"},
        {"fleet_conflict", "is declared differently by another instance"},
    };
    for (size_t i = 0; i < sizeof(phrases) / sizeof(phrases[0]); i++)
        if (strcmp(ev, phrases[i].ev) == 0)
            return phrases[i].phrase;
    return ev;
}

static json_t *event_load(const char *event_json)
{
    json_t *o = event_json != NULL ? json_loads(event_json, 0, NULL) : NULL;

    if (o != NULL && (!json_is_object(o) || *jstr(o, "event") == '\0')) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

/* Header-safe: control characters (a CR or LF would start a new header)
 * become spaces. */
static void one_line(char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < ' ' || *s == 0x7f)
            *s = ' ';
}

char *notify_event_subject(const char *event_json)
{
    json_t *o = event_load(event_json);

    if (o == NULL)
        return NULL;
    char *s = xasprintf("certloop: %s %s", jstr(o, "certificate"), event_phrase(jstr(o, "event")));
    one_line(s);
    json_decref(o);
    return s;
}

static void append(char **s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void append(char **s, const char *fmt, ...)
{
    va_list ap;
    char *add;

    va_start(ap, fmt);
    if (vasprintf(&add, fmt, ap) < 0)
        abort();
    va_end(ap);
    char *t = xasprintf("%s%s", *s, add);
    free(add);
    free(*s);
    *s = t;
}

char *notify_event_text(const char *event_json)
{
    json_t *o = event_load(event_json);

    if (o == NULL)
        return NULL;
    const char *ev = jstr(o, "event");
    char *s = xasprintf("Certificate %s %s.\n", jstr(o, "certificate"), event_phrase(ev));
    json_t *doms = json_object_get(o, "domains");
    if (json_array_size(doms) > 0) {
        append(&s, "Names:");
        for (size_t i = 0; i < json_array_size(doms); i++)
            append(&s, "%s %s", i > 0 ? "," : "", json_string_value(json_array_get(doms, i)));
        append(&s, "\n");
    }
    if (*jstr(o, "not_after") != '\0')
        append(&s, "Valid until: %s\n", jstr(o, "not_after"));
    if (*jstr(o, "persist_until") != '\0')
        append(&s, "The CA accepts its dns-persist-01 records until: %s\n",
               jstr(o, "persist_until"));
    json_t *err = json_object_get(o, "error");
    if (json_is_object(err)) {
        append(&s, "Error: %s\n", *jstr(err, "detail") != '\0' ? jstr(err, "detail") : "-");
        if (*jstr(err, "type") != '\0')
            append(&s, "Problem type: %s\n", jstr(err, "type"));
        if (*jstr(err, "identifier") != '\0')
            append(&s, "Identifier: %s\n", jstr(err, "identifier"));
        json_t *subs = json_object_get(err, "subproblems");
        for (size_t i = 0; i < json_array_size(subs); i++) {
            json_t *sp = json_array_get(subs, i);
            append(&s, "  %s: %s (%s)\n", jstr(sp, "identifier"), jstr(sp, "detail"),
                   jstr(sp, "type"));
        }
    }
    json_t *rec = json_object_get(o, "record");
    if (json_is_object(rec))
        append(&s, "DNS record: %s TXT \"%s\"\n", jstr(rec, "name"), jstr(rec, "value"));
    append(&s, "\nEvent %s (%s), id %s\n", ev, jstr(o, "time"), jstr(o, "id"));
    json_decref(o);
    return s;
}

char *notify_slack_body(const char *event_json)
{
    char *subject = notify_event_subject(event_json);
    char *text = notify_event_text(event_json);
    char *out = NULL;

    if (subject != NULL && text != NULL) {
        json_t *o = json_object();
        char *t = xasprintf("*%s*\n%s", subject, text);
        json_object_set_new(o, "text", json_string(t));
        char *d = json_dumps(o, JSON_COMPACT);
        if (d == NULL)
            abort();
        out = xstrdup(d);
        free(d);
        free(t);
        json_decref(o);
    }
    free(subject);
    free(text);
    return out;
}

char *notify_email_message(const char *event_json, const char *from, const char *const *to,
                           size_t n_to, const char *delivery_id, int64_t now)
{
    char *subject = notify_event_subject(event_json);
    char *text = notify_event_text(event_json);
    json_t *o = event_load(event_json);
    char date[64];
    time_t tt = (time_t)now;
    struct tm tm;
    char *msg = NULL;

    if (subject == NULL || text == NULL || o == NULL)
        goto out;
    /* RFC 5322 §3.3 date-time, in UTC */
    if (gmtime_r(&tt, &tm) == NULL ||
        strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm) == 0)
        snprintf(date, sizeof(date), "Thu, 01 Jan 1970 00:00:00 +0000");
    msg = xasprintf("From: %s\r\nTo: ", from);
    for (size_t i = 0; i < n_to; i++)
        append(&msg, "%s%s", i > 0 ? ", " : "", to[i]);
    append(&msg,
           "\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@certloop>\r\n"
           "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
           "Content-Transfer-Encoding: 8bit\r\nX-Certloop-Event: %s\r\n"
           "X-Certloop-Delivery: %s\r\n\r\n",
           subject, date, delivery_id, jstr(o, "event"), delivery_id);
    for (char *line = text, *nl; *line != '\0'; line = nl + 1) {
        nl = strchr(line, '\n');
        if (nl == NULL) {
            append(&msg, "%s\r\n", line);
            break;
        }
        append(&msg, "%.*s\r\n", (int)(nl - line), line);
    }
out:
    json_decref(o);
    free(subject);
    free(text);
    return msg;
}

void notify_signature(const void *key, size_t key_len, const void *body, size_t body_len,
                      char out[NOTIFY_SIG_LEN + 1])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    /* HMAC() wants a non-NULL key even when it is empty */
    static const unsigned char empty = 0;

    if (HMAC(EVP_sha256(), key_len > 0 ? key : &empty, (int)key_len, body, body_len, mac,
             &mac_len) == NULL ||
        mac_len != 32)
        abort(); /* SHA-256 HMAC cannot fail short of allocation */
    memcpy(out, "sha256=", 7);
    hex_encode(mac, mac_len, out + 7);
}

bool notify_expiring_due(int64_t now, int64_t not_after, int64_t warn_window_s, int64_t last_sent,
                         int64_t *next_check)
{
    int64_t window = warn_window_s > 0 ? warn_window_s : NOTIFY_EXPIRING_WINDOW_S;
    int64_t start = not_after - window;
    int64_t next;
    bool due;

    if (now < start) {
        due = false;
        next = start;
    } else if (last_sent <= 0 || now - last_sent >= NOTIFY_EXPIRING_REPEAT_S) {
        due = true;
        next = now + NOTIFY_EXPIRING_REPEAT_S;
    } else {
        due = false;
        next = last_sent + NOTIFY_EXPIRING_REPEAT_S;
    }
    if (next_check != NULL)
        *next_check = next;
    return due;
}

#define NOTIFY_BASE_DELAY_MS 10000
#define NOTIFY_MAX_DELAY_MS 3600000

int64_t notify_backoff_ms(const struct notify_opts *o, unsigned attempts, uint32_t rnd)
{
    int64_t base = o != NULL && o->base_delay_ms > 0 ? o->base_delay_ms : NOTIFY_BASE_DELAY_MS;
    int64_t cap = o != NULL && o->max_delay_ms > 0 ? o->max_delay_ms : NOTIFY_MAX_DELAY_MS;
    int64_t d = base;

    if (cap < base)
        cap = base;
    for (unsigned i = 1; i < attempts && d < cap; i++)
        d *= 2;
    if (d > cap)
        d = cap;
    /* jitter in [d/2, d]: receivers that came back do not get every
     * delivery at the same instant */
    int64_t half = d / 2;
    return d - half + (int64_t)(rnd % (uint64_t)(half + 1));
}
