/* The deadline heap: a binary min-heap of entry pointers ordered by
 * (deadline, insertion number), each entry remembering its slot so cancel and
 * reschedule are O(log n), and one uv_timer_t armed for the root. It owns
 * only the timing; what a deadline means (renew, re-poll ARI, retry) is the
 * callback's business. */
#include "reactor/timerheap.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "util/xalloc.h"

/* 40 bytes on LP64: with the heap slot and malloc's header, about 56 bytes
 * per pending timer. */
struct timerheap_entry {
    int64_t when;
    timerheap_cb cb;
    void *arg;
    struct timerheap *h; /* borrowed: the heap this entry is in */
    uint32_t seq;        /* insertion number: FIFO among equal deadlines */
    uint32_t idx;        /* slot in h->v */
};

struct timerheap {
    uv_loop_t *loop;  /* borrowed, or NULL */
    uv_timer_t timer; /* embedded when loop != NULL; timer.data = self */
    timerheap_clock_cb clock;
    void *clock_arg;
    struct timerheap_entry **v; /* owned array of owned entries */
    size_t n, cap;
    uint32_t next_seq;
    int64_t max_sleep;
    bool running; /* inside run_due */
    bool closed;
    bool free_after_run; /* closed (no loop) from inside run_due */
    timerheap_close_cb close_cb;
    void *close_arg;
};

int64_t timerheap_clock_realtime(void *unused)
{
    struct timespec ts;

    (void)unused;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* seq numbers wrap; compare them as a window (fine while fewer than 2^31
 * entries were added during an entry's life). */
static bool seq_before(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) < 0;
}

static bool less(const struct timerheap_entry *a, const struct timerheap_entry *b)
{
    if (a->when != b->when)
        return a->when < b->when;
    return seq_before(a->seq, b->seq);
}

static void place(struct timerheap *h, size_t i, struct timerheap_entry *e)
{
    h->v[i] = e;
    e->idx = (uint32_t)i;
}

static void sift_up(struct timerheap *h, size_t i)
{
    struct timerheap_entry *e = h->v[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!less(e, h->v[parent]))
            break;
        place(h, i, h->v[parent]);
        i = parent;
    }
    place(h, i, e);
}

static void sift_down(struct timerheap *h, size_t i)
{
    struct timerheap_entry *e = h->v[i];

    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && less(h->v[c + 1], h->v[c]))
            c++;
        if (!less(h->v[c], e))
            break;
        place(h, i, h->v[c]);
        i = c;
    }
    place(h, i, e);
}

/* Takes the entry out of the heap (it stays allocated). */
static void detach(struct timerheap *h, struct timerheap_entry *e)
{
    size_t i = e->idx;
    struct timerheap_entry *last;

    assert(i < h->n && h->v[i] == e);
    h->n--;
    if (i == h->n)
        return;
    last = h->v[h->n];
    place(h, i, last);
    if (i > 0 && less(last, h->v[(i - 1) / 2]))
        sift_up(h, i);
    else
        sift_down(h, i);
}

static void on_timer(uv_timer_t *t);

/* Points the uv timer at the root (or at max_sleep, or stops it). */
static void arm(struct timerheap *h)
{
    int64_t delay;

    if (h->loop == NULL || h->closed || h->running)
        return;
    if (h->n == 0) {
        if (h->max_sleep > 0)
            uv_timer_start(&h->timer, on_timer, (uint64_t)h->max_sleep, 0);
        else
            uv_timer_stop(&h->timer);
        return;
    }
    delay = h->v[0]->when - h->clock(h->clock_arg);
    if (delay < 0)
        delay = 0;
    if (h->max_sleep > 0 && delay > h->max_sleep)
        delay = h->max_sleep;
    uv_timer_start(&h->timer, on_timer, (uint64_t)delay, 0);
}

static void on_timer(uv_timer_t *t)
{
    struct timerheap *h = t->data;

    timerheap_run_due(h);
    arm(h);
}

int timerheap_open(uv_loop_t *loop, timerheap_clock_cb clock, void *clock_arg,
                   struct timerheap **out)
{
    struct timerheap *h = xcalloc(1, sizeof(*h));
    int rc;

    h->loop = loop;
    h->clock = clock != NULL ? clock : timerheap_clock_realtime;
    h->clock_arg = clock_arg;
    if (loop != NULL) {
        rc = uv_timer_init(loop, &h->timer);
        if (rc < 0) {
            free(h);
            return rc;
        }
        h->timer.data = h;
    }
    *out = h;
    return 0;
}

void timerheap_add(struct timerheap *h, int64_t when_ms, timerheap_cb cb, void *arg,
                   struct timerheap_entry **out)
{
    struct timerheap_entry *e = xmalloc(sizeof(*e));

    assert(!h->closed && cb != NULL);
    assert(h->n < UINT32_MAX);
    if (h->n == h->cap) {
        h->cap = h->cap == 0 ? 16 : h->cap * 2;
        h->v = xrealloc(h->v, h->cap * sizeof(*h->v));
    }
    e->when = when_ms;
    e->cb = cb;
    e->arg = arg;
    e->h = h;
    e->seq = h->next_seq++;
    h->n++;
    place(h, h->n - 1, e);
    sift_up(h, h->n - 1);
    if (e->idx == 0)
        arm(h);
    if (out != NULL)
        *out = e;
}

void timerheap_cancel(struct timerheap_entry *e)
{
    struct timerheap *h;
    bool was_root;

    if (e == NULL)
        return;
    h = e->h;
    was_root = e->idx == 0;
    detach(h, e);
    free(e);
    if (was_root)
        arm(h);
}

void timerheap_reschedule(struct timerheap_entry *e, int64_t when_ms)
{
    struct timerheap *h = e->h;
    bool was_root = e->idx == 0;

    e->when = when_ms;
    if (e->idx > 0 && less(e, h->v[(e->idx - 1) / 2]))
        sift_up(h, e->idx);
    else
        sift_down(h, e->idx);
    if (was_root || e->idx == 0)
        arm(h);
}

int64_t timerheap_entry_when(const struct timerheap_entry *e)
{
    return e->when;
}

size_t timerheap_count(const struct timerheap *h)
{
    return h->n;
}

int timerheap_next(const struct timerheap *h, int64_t *when_ms)
{
    if (h->n == 0)
        return -ENOENT;
    *when_ms = h->v[0]->when;
    return 0;
}

static void heap_free(struct timerheap *h)
{
    timerheap_close_cb cb = h->close_cb;
    void *arg = h->close_arg;

    free(h->v);
    free(h);
    if (cb != NULL)
        cb(arg);
}

size_t timerheap_run_due(struct timerheap *h)
{
    uint32_t limit = h->next_seq;
    int64_t now = h->clock(h->clock_arg);
    size_t fired = 0;

    if (h->closed)
        return 0;
    h->running = true;
    while (h->n > 0 && !h->closed) {
        struct timerheap_entry *e = h->v[0];
        if (e->when > now || !seq_before(e->seq, limit))
            break;
        timerheap_cb cb = e->cb;
        void *arg = e->arg;
        detach(h, e);
        free(e);
        fired++;
        cb(arg);
    }
    h->running = false;
    if (h->free_after_run)
        heap_free(h);
    return fired;
}

void timerheap_set_max_sleep(struct timerheap *h, int64_t max_ms)
{
    h->max_sleep = max_ms > 0 ? max_ms : 0;
    arm(h);
}

static void timer_closed(uv_handle_t *handle)
{
    heap_free(handle->data);
}

void timerheap_close(struct timerheap *h, timerheap_close_cb cb, void *arg)
{
    assert(!h->closed);
    h->closed = true;
    h->close_cb = cb;
    h->close_arg = arg;
    for (size_t i = 0; i < h->n; i++)
        free(h->v[i]);
    h->n = 0;
    if (h->loop != NULL)
        uv_close((uv_handle_t *)&h->timer, timer_closed);
    else if (h->running)
        h->free_after_run = true;
    else
        heap_free(h);
}
