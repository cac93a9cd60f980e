/*
 * The multi-producer multi-consumer FIFO of words.
 *
 * Layout: a linked list of fixed-size segments. Producers append under the tail lock,
 * consumers remove under the head lock, so a producer and a consumer never wait for
 * each other; each lock is held for a handful of instructions.
 *
 * Publishing: a producer writes its word into a slot (zero until then), then counts it in
 * `pushed`; consumers count the words they take in `claimed`, and the words available are
 * the difference. A pop checks that the head word is published (its slot is not zero, or
 * `pushed` says so: a zero word is known by the count only), takes it and counts it, all
 * under the head lock (one atomic read-modify-write per pop: the lock). The head word a
 * consumer takes has always been written, and a pop that gives up (timeout, signal) has
 * taken nothing: no placeholder is left behind and nothing is skipped or reordered.
 * Looking at the slot first matters when consumers keep up with producers: a consumer
 * waiting for the next word then watches that word's slot, a line the producer writes
 * anyway, instead of `pushed`, which would leave the producer's line to be fetched back
 * on every push (on machines where moving a line between CPUs is slow, 2 threads moved
 * 2-3.5x more items per second).
 * With a capacity (or task tracking), `space` counts free places the same way for
 * producers.
 *
 * Sleeping: a waiter announces itself in its waitset's `waiting` count, re-checks, and
 * sleeps on the `signal` word; whoever makes progress possible bumps it and wakes. All
 * of these accesses are sequentially consistent, which is what makes the announce /
 * re-check / bump handshake free of lost wake-ups.
 *
 * Shutdown: the state changes under the tail lock, where every push checks it, so a push
 * is either in the queue before the shutdown or fails with FTU_SHUTDOWN.
 */
#include "ftu.h"
#include "ftu_fork.h"
#include "ftu_memory.h"
#include "ftu_wait.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define SEGMENT_SLOTS 1022 /* with the link and the epoch: 8 KiB per segment */
#define UNBOUNDED (INT64_MAX / 4)
#define SPIN_SHORT 0   /* default mode: no pause loop, only the yields (as CPython locks) */
#define SPIN_LONG 4000 /* tens of microseconds */
#define YIELDS 10
#define PREFETCH_AHEAD 4 /* FTU_QUEUE_PREFETCH: how many words ahead */

struct segment {
    struct segment *next;
    uint64_t retired_epoch; /* in `retired`: the epoch it was retired in (see reclaim) */
    _Atomic uint64_t slot[SEGMENT_SLOTS]; /* zero until written (once per use) */
};

/* Threads sleeping until a counter turns positive. `pending` is set by the one who
 * wakes a sleeper and cleared by the sleeper once it runs: until then further pushes
 * need not wake anyone (the woken thread passes the wake-up on if it finds more than
 * it takes), which spares a producer a system call per word while a consumer is
 * getting back on a CPU. */
struct waitset {
    _Atomic uint32_t signal; /* the futex word: bumped to wake */
    _Atomic uint32_t waiting;
    _Atomic uint32_t pending;
};

struct ftu_queue {
    /* consumers */
    _Alignas(64) ftu_spinlock head_lock;
    struct segment *head;      /* head, head_index, pushed_seen: under head_lock */
    int64_t head_index;
    int64_t pushed_seen;       /* a recent value of `pushed`, so that consumers read the
                                  producers' line once per batch, not per word */
    _Atomic int64_t claimed;   /* words taken by pops (and drains); written under
                                  head_lock, read by anyone */
    _Atomic(_Atomic uint64_t *) head_slot; /* &head->slot[head_index]: what waiting
                                              consumers watch (see watch_begin) */
    struct segment *retired;   /* emptied segments kept from free() while a watcher may
                                  read them (see reclaim); newest first; under head_lock */
    /* producers */
    _Alignas(64) ftu_spinlock tail_lock;
    struct segment *tail;
    int64_t tail_index;
    _Atomic int64_t pushed; /* words published; written under tail_lock only */
    /* consumers wait here for words (producers read `waiting` on every push) */
    _Alignas(64) struct waitset consumers;
    /* free places (when counted); producers wait in `producers` */
    _Alignas(64) _Atomic int64_t space;
    _Atomic int64_t capacity;
    struct waitset producers;
    /* unfinished tasks (FTU_QUEUE_TASKS); join waits in `joiners` */
    _Alignas(64) _Atomic int64_t unfinished;
    struct waitset joiners;
    /* read by every push and pop, written almost never: a line of its own, so that
     * reading it does not pull the producers' or the consumers' line across cores */
    _Alignas(64) _Atomic int state;
    int flags;
    int count_space;
    _Atomic int spinning;    /* FTU_QUEUE_SPIN, changeable (ftu_queue_set_spin) */
    _Atomic int spin_budget; /* FTU_QUEUE_SPIN: pause instructions before yielding */
    _Atomic(struct segment *) spare; /* one emptied segment kept for reuse */
    /* consumers watching head_slot outside the head lock, counted by the epoch they
     * started in, and whether `retired` holds segments (see reclaim; written once per
     * wait, so on a line of their own) */
    _Alignas(64) _Atomic uint64_t epoch;
    _Atomic int64_t watchers[2]; /* [e & 1]: watchers that started in epoch e */
    _Atomic int has_retired;
    struct ftu_fork_node fork_node; /* on the list of live objects (see ftu_fork.h) */
};

#ifdef FTU_TEST_HOOKS
/* C tests only: segments allocated and not yet freed, by every queue. */
_Atomic long ftu_test_queue_segments;
#define COUNT_SEGMENTS(n) atomic_fetch_add(&ftu_test_queue_segments, (n))
#else
#define COUNT_SEGMENTS(n) ((void)0)
#endif

/* An emptied segment a watcher may still read is never freed until no watcher can (see
 * reclaim), but it may be reused at once: a watcher then reads a slot that is not the
 * head's, and at worst makes one needless attempt to take. Reusing retired segments
 * before allocating keeps the queue's memory within what it has held at once, even while
 * a watcher is preempted for long and reclamation has to wait for it. */
static struct segment *retired_take(ftu_queue *q) {
    if (!atomic_load(&q->has_retired)) return NULL;
    ftu_spinlock_lock(&q->head_lock); /* lock order: tail_lock, then head_lock */
    struct segment *seg = q->retired;
    if (seg != NULL) q->retired = seg->next;
    if (q->retired == NULL) atomic_store(&q->has_retired, 0);
    ftu_spinlock_unlock(&q->head_lock);
    return seg;
}

static struct segment *segment_get(ftu_queue *q) {
    struct segment *seg = atomic_exchange(&q->spare, NULL);
    if (seg == NULL) seg = retired_take(q);
    if (seg == NULL) {
        seg = ftu_malloc(sizeof(struct segment));
        if (seg == NULL) return NULL;
        COUNT_SEGMENTS(1);
    }
    seg->next = NULL;
    /* Atomic stores: a consumer that watched this segment's slots when it was the head
     * may still be reading one (see watch_begin). */
    for (int i = 0; i < SEGMENT_SLOTS; i++) atomic_store_explicit(&seg->slot[i], 0, memory_order_relaxed);
    return seg;
}

static void segment_free(struct segment *seg) {
    free(seg);
    COUNT_SEGMENTS(-1);
}

static void free_segments(struct segment *seg) {
    while (seg != NULL) {
        struct segment *next = seg->next;
        segment_free(seg);
        seg = next;
    }
}

/* Reclamation of emptied segments, by epochs. A consumer that watches the head slot
 * outside the head lock (see watch_begin) counts itself in watchers[e & 1], e being the
 * epoch when it starts, before it reads head_slot; a segment emptied (and head_slot moved
 * past it) is retired with the epoch read after that move. The epoch goes from e to e + 1
 * only when watchers[(e + 1) & 1] is zero: every watcher that started in epoch e - 1 (or
 * earlier, with the same parity) has left. So once the epoch is r + 2, every watcher that
 * started in epoch r or before has left, and the others read head_slot after the segment
 * was retired: a segment retired in epoch r can be freed. A watcher only watches for the
 * spinning part of a wait (microseconds), so the epoch moves on almost at once; the old
 * scheme waited for a moment with no watcher at all, which with several consumers cycling
 * through waits hardly ever came (35,041 segments, 300 MiB, were seen held back).
 * Under head_lock. */
static void reclaim(ftu_queue *q) {
    while (q->retired != NULL) {
        uint64_t e = atomic_load(&q->epoch);
        /* free the oldest ones first: the list is newest first */
        struct segment **link = &q->retired;
        while (*link != NULL && (*link)->retired_epoch + 2 > e) link = &(*link)->next;
        free_segments(*link);
        *link = NULL;
        if (q->retired == NULL || atomic_load(&q->watchers[(e + 1) & 1]) != 0) break;
        atomic_compare_exchange_strong(&q->epoch, &e, e + 1); /* only under head_lock: succeeds */
    }
    atomic_store(&q->has_retired, q->retired != NULL);
}

/* Keeps an emptied segment for reuse; the one it displaces is retired, to be reused or
 * freed when no watcher can be reading it (see reclaim). Under head_lock. */
static void segment_put(ftu_queue *q, struct segment *seg) {
    struct segment *old = atomic_exchange(&q->spare, seg);
    if (old != NULL) {
        old->retired_epoch = atomic_load(&q->epoch);
        old->next = q->retired;
        q->retired = old;
    }
    reclaim(q);
}

/* Consumers waiting for a word watch the head slot, outside the head lock: its line is
 * the one the producer of the next word writes anyway, where watching `pushed` would take
 * the producers' own line from them on every push. A watcher counts itself in the
 * watchers of the current epoch first, and then reads head_slot; the consumer that moves
 * the head to a new segment stores head_slot before it retires the old one (all
 * sequentially consistent), and a retired segment is freed only when every watcher that
 * might have read head_slot before that store has left (see reclaim). Emptied segments
 * may be reused meanwhile (their slots are zeroed with atomic stores): a watcher then
 * sees a word that is not the head's, and only makes one needless attempt to take. A
 * zero word is not seen this way: the wait for it ends when the spinning does (see
 * wait_for), by the count. Returns the epoch to give watch_end. */
static uint64_t watch_begin(ftu_queue *q) {
    for (;;) {
        uint64_t e = atomic_load(&q->epoch);
        atomic_fetch_add(&q->watchers[e & 1], 1);
        if (atomic_load(&q->epoch) == e) return e;
        atomic_fetch_sub(&q->watchers[e & 1], 1); /* the epoch moved on: count in the new one */
    }
}

#ifdef FTU_TEST_HOOKS
/* C tests only: called between a watcher's two reads, to hold it there (see
 * tests/c/test_queue.c, test_watchers_and_freed_segments). */
void (*ftu_test_watch_hook)(void);
#endif

static int head_published(ftu_queue *q) {
    _Atomic uint64_t *slot = atomic_load(&q->head_slot);
#ifdef FTU_TEST_HOOKS
    if (ftu_test_watch_hook != NULL) ftu_test_watch_hook();
#endif
    return atomic_load_explicit(slot, memory_order_relaxed) != 0;
}

/* The watcher leaves; if segments wait to be freed, it lets reclamation move on (a
 * queue that stops emptying segments would otherwise keep them until the next one). */
static void watch_end(ftu_queue *q, uint64_t e) {
    atomic_fetch_sub(&q->watchers[e & 1], 1);
    if (atomic_load(&q->has_retired)) {
        ftu_spinlock_lock(&q->head_lock);
        reclaim(q);
        ftu_spinlock_unlock(&q->head_lock);
    }
}

/* ---- fork (see ftu_fork.h) ------------------------------------------------------------ */

static ftu_queue *queue_of_node(struct ftu_fork_node *node) {
    return (ftu_queue *)((char *)node - offsetof(ftu_queue, fork_node));
}

static void queue_lock_for_fork(struct ftu_fork_node *node) {
    ftu_queue *q = queue_of_node(node);
    ftu_spinlock_lock(&q->tail_lock); /* lock order: tail_lock, then head_lock */
    ftu_spinlock_lock(&q->head_lock);
}

static void queue_unlock_parent(struct ftu_fork_node *node) {
    ftu_queue *q = queue_of_node(node);
    ftu_spinlock_unlock(&q->head_lock);
    ftu_spinlock_unlock(&q->tail_lock);
}

/* In the child no thread waits or watches: counts left by the parent's threads would
 * keep the epoch from moving on (emptied segments never freed) and cost every push a
 * needless wake-up call. Nor is any thread between claiming a free place and pushing,
 * or between popping and giving the place back: places such a thread held would be lost
 * to the child for ever, so the free places are counted again from the contents (exact:
 * both locks are held, no push or pop is half done). */
static void queue_unlock_child(struct ftu_fork_node *node) {
    ftu_queue *q = queue_of_node(node);
    if (q->count_space) {
        int64_t held = atomic_load(&q->pushed) - atomic_load(&q->claimed);
        atomic_store(&q->space, atomic_load(&q->capacity) - held);
    }
    struct waitset *sets[] = {&q->consumers, &q->producers, &q->joiners};
    for (int i = 0; i < 3; i++) {
        atomic_store(&sets[i]->waiting, 0);
        atomic_store(&sets[i]->pending, 0);
    }
    atomic_store(&q->watchers[0], 0);
    atomic_store(&q->watchers[1], 0);
    queue_unlock_parent(node);
}

static const struct ftu_fork_ops queue_fork_ops = {queue_lock_for_fork, queue_unlock_parent, queue_unlock_child};

ftu_queue *ftu_queue_new(int64_t capacity, int flags) {
    size_t size = (sizeof(ftu_queue) + 63) & ~(size_t)63;
    ftu_queue *q = ftu_aligned_alloc(64, size);
    if (q == NULL) return NULL;
    memset(q, 0, size);
    q->flags = flags;
    q->count_space = capacity > 0 || (flags & (FTU_QUEUE_TASKS | FTU_QUEUE_BOUNDABLE));
    atomic_init(&q->spinning, (flags & FTU_QUEUE_SPIN) != 0);
    atomic_init(&q->spin_budget, SPIN_LONG);
    if (capacity <= 0 || capacity > UNBOUNDED) capacity = UNBOUNDED;
    atomic_init(&q->capacity, capacity);
    atomic_init(&q->space, capacity);
    q->head = q->tail = segment_get(q);
    if (q->head == NULL) {
        free(q);
        return NULL;
    }
    atomic_init(&q->head_slot, &q->head->slot[0]);
    ftu_fork_track(&q->fork_node, &queue_fork_ops);
    return q;
}

void ftu_queue_free(ftu_queue *q) {
    if (q == NULL) return;
    ftu_fork_forget(&q->fork_node);
    free_segments(q->head);
    free_segments(q->retired);
    struct segment *spare = atomic_load(&q->spare);
    if (spare != NULL) segment_free(spare); /* its link is stale: not a list */
    free(q);
}

/* ---- claiming ------------------------------------------------------------------------ */

/* Decrements *counter if it is positive; returns whether it did. */
static int claim(_Atomic int64_t *counter) {
    /* Start with a guess instead of a load: a compare-and-swap takes the cache line for
     * writing at once, where a load would fetch it shared and then upgrade it. */
    int64_t n = 1;
    while (!atomic_compare_exchange_weak(counter, &n, n - 1)) {
        if (n <= 0) return 0;
    }
    return 1;
}

static int64_t items_available(ftu_queue *q) {
    int64_t claimed = atomic_load(&q->claimed);
    return atomic_load(&q->pushed) - claimed;
}

static int64_t space_available(ftu_queue *q) { return atomic_load(&q->space); }

typedef int64_t (*available_fn)(ftu_queue *q);

/* Wakes one sleeper of ws, unless a wake-up is already on its way. */
static void wake_one(struct waitset *ws) {
    if (atomic_load(&ws->waiting) > 0 && atomic_exchange(&ws->pending, 1) == 0) {
        atomic_fetch_add(&ws->signal, 1);
        ftu_word_wake(&ws->signal, 1);
    }
}

static void wake_all(struct waitset *ws) {
    if (atomic_load(&ws->waiting) > 0) {
        atomic_fetch_add(&ws->signal, 1);
        ftu_word_wake(&ws->signal, -1);
    }
}

struct ready_check {
    ftu_queue *q;
    available_fn available;
    int watch_head; /* consumers: watch the head slot (see watch_begin) */
};

static int counter_ready(void *arg) {
    struct ready_check *check = arg;
    int ready = check->watch_head ? head_published(check->q) : check->available(check->q) > 0;
    return ready || atomic_load_explicit(&check->q->state, memory_order_relaxed) != FTU_QUEUE_OPEN;
}

/* The wait before sleeping (see wait_for); returns whether it saw the wait end. */
static int spin(ftu_queue *q, struct ready_check *check) {
    if (!atomic_load_explicit(&q->spinning, memory_order_relaxed))
        return ftu_spin_until(counter_ready, check, SPIN_SHORT, YIELDS);
    /* Adaptive: a spin that ends in sleep halves the budget, one that succeeds doubles
     * it, so spinning stops where it only steals the CPU from producers (more threads
     * than cores) and resumes where it pays. */
    int budget = atomic_load_explicit(&q->spin_budget, memory_order_relaxed);
    if (ftu_spin_until(counter_ready, check, budget, YIELDS)) {
        if (budget < SPIN_LONG) atomic_store_explicit(&q->spin_budget, budget * 2 + 16, memory_order_relaxed);
        return 1;
    }
    atomic_store_explicit(&q->spin_budget, budget / 2, memory_order_relaxed);
    return 0;
}

/* Sleeps in ws until available(q) may be positive or the state changed: FTU_OK
 * (re-check), FTU_TIMEOUT or FTU_INTERRUPTED. */
static int wait_for(ftu_queue *q, available_fn available, struct waitset *ws, int64_t deadline_ns) {
    /* Wait a little before sleeping. When producers and consumers run at the same pace,
     * the next word is usually a moment away, and sleeping then being woken costs both
     * sides a system call (and, on a virtual machine, an interrupt between CPUs). The
     * default mode yields the CPU a few times first, as CPython's own locks do;
     * FTU_QUEUE_SPIN also spins on the CPU for tens of microseconds before that. */
    /* consumers watch the head slot, producers the free places */
    struct ready_check check = {q, available, available == items_available};
    uint64_t epoch = check.watch_head ? watch_begin(q) : 0;
    int ready = spin(q, &check);
    if (check.watch_head) watch_end(q, epoch);
    if (ready) return FTU_OK;
    uint32_t seen = atomic_load(&ws->signal);
    atomic_fetch_add(&ws->waiting, 1);
    /* A wake-up still marked pending may have gone to a thread that is gone: clear it
     * before the re-check, so that the next push wakes this thread. */
    atomic_store(&ws->pending, 0);
    int result = FTU_OK;
    if (available(q) <= 0 && atomic_load(&q->state) == FTU_QUEUE_OPEN)
        result = ftu_word_wait(&ws->signal, seen, deadline_ns);
    atomic_fetch_sub(&ws->waiting, 1);
    atomic_store(&ws->pending, 0); /* awake: the next push may wake someone else */
    return result;
}

/* After a wait: if more is available than this thread takes, wake the next sleeper
 * (the pusher may have skipped it while our wake-up was pending). Also what a waiter
 * that leaves empty-handed (timeout, signal) does, so no sleeper is left beside an
 * available word. */
static void pass_on(ftu_queue *q, available_fn available, struct waitset *ws) {
    if (available(q) > 0) wake_one(ws);
}

/* ---- push ------------------------------------------------------------------------------ */

static int claim_space(ftu_queue *q, int64_t deadline_ns) {
    int waited = 0;
    for (;;) {
        if (claim(&q->space)) {
            if (waited) pass_on(q, space_available, &q->producers);
            return FTU_OK;
        }
        if (atomic_load(&q->state) != FTU_QUEUE_OPEN) return FTU_SHUTDOWN;
        if (deadline_ns == FTU_NO_WAIT) return FTU_TIMEOUT;
        int result = wait_for(q, space_available, &q->producers, deadline_ns);
        waited = 1;
        if (result != FTU_OK) {
            int claimed = claim(&q->space); /* room may have appeared as the wait ended */
            pass_on(q, space_available, &q->producers);
            return claimed ? FTU_OK : result;
        }
    }
}

static void release_space(ftu_queue *q) {
    atomic_fetch_add(&q->space, 1);
    wake_one(&q->producers);
}

int ftu_queue_push(ftu_queue *q, uint64_t word, int64_t deadline_ns) {
    if (q->count_space) {
        if (atomic_load(&q->state) != FTU_QUEUE_OPEN) return FTU_SHUTDOWN; /* before waiting for room */
        int result = claim_space(q, deadline_ns);
        if (result != FTU_OK) return result;
    }
    int result = FTU_OK;
    ftu_spinlock_lock(&q->tail_lock);
    struct segment *tail = q->tail;
    int64_t index = q->tail_index;
    if (atomic_load(&q->state) != FTU_QUEUE_OPEN) {
        result = FTU_SHUTDOWN;
    } else if (index == SEGMENT_SLOTS - 1) {
        /* The last slot: link the next segment first, so a consumer that takes this
         * word always finds where the following ones go. */
        struct segment *next = segment_get(q);
        if (next == NULL) {
            result = FTU_NO_MEMORY;
        } else {
            tail->next = next;
            q->tail = next;
            q->tail_index = 0;
        }
    } else {
        q->tail_index = index + 1;
    }
    if (result == FTU_OK) {
        /* counted as a task before a consumer can take it (and call task_done) */
        if (q->flags & FTU_QUEUE_TASKS) atomic_fetch_add(&q->unfinished, 1);
        /* publishes the word to consumers watching the slot (release: see take) */
        atomic_store_explicit(&tail->slot[index], word, memory_order_release);
        /* and counts it (sequentially consistent: see wait_for) */
        atomic_store(&q->pushed, atomic_load_explicit(&q->pushed, memory_order_relaxed) + 1);
    }
    ftu_spinlock_unlock(&q->tail_lock);
    if (result != FTU_OK) {
        if (q->count_space) release_space(q);
        return result;
    }
    wake_one(&q->consumers);
    return FTU_OK;
}

/* ---- pop ------------------------------------------------------------------------------- */

/* Under head_lock: whether the head word is published, with `claimed` and `slot` the
 * head's count and slot. Published if `pushed` said so, or if the slot is written
 * (acquire pairs with the producer's release: what the word stands for, and the next
 * segment's link, are visible); else look at `pushed` again (acquire: the same for every
 * slot before). */
static int head_ready(ftu_queue *q, int64_t claimed, _Atomic uint64_t *slot) {
    if (claimed >= q->pushed_seen && atomic_load_explicit(slot, memory_order_acquire) == 0) {
        q->pushed_seen = atomic_load_explicit(&q->pushed, memory_order_acquire);
        if (claimed >= q->pushed_seen) return 0;
    }
    return 1;
}

/* Takes the head word into *word if one is published (and, with `expected`, only if it
 * is *expected); returns whether it did. With `next`, *next is then the word now at the
 * head if it is published, else 0 (read under the same lock). */
static int take(ftu_queue *q, uint64_t *word, const uint64_t *expected, uint64_t *next) {
    ftu_spinlock_lock(&q->head_lock);
    int64_t claimed = atomic_load_explicit(&q->claimed, memory_order_relaxed);
    _Atomic uint64_t *slot = &q->head->slot[q->head_index];
    if (!head_ready(q, claimed, slot) ||
        (expected != NULL && atomic_load_explicit(slot, memory_order_relaxed) != *expected)) {
        ftu_spinlock_unlock(&q->head_lock);
        return 0;
    }
    *word = atomic_load_explicit(slot, memory_order_relaxed);
    if ((q->flags & FTU_QUEUE_PREFETCH) && claimed + PREFETCH_AHEAD < q->pushed_seen &&
        q->head_index + PREFETCH_AHEAD < SEGMENT_SLOTS) {
        /* The word PREFETCH_AHEAD places behind is published (it is before pushed_seen):
         * start moving what it points to into this CPU's cache now, so the consumer that
         * takes it does not wait for the producer's CPU to give the line up. */
        uint64_t ahead = atomic_load_explicit(slot + PREFETCH_AHEAD, memory_order_relaxed);
        __builtin_prefetch((const void *)(uintptr_t)ahead, 1, 3);
    }
    if (q->head_index == SEGMENT_SLOTS - 1) {
        struct segment *emptied = q->head;
        q->head = emptied->next;
        q->head_index = 0;
        /* sequentially consistent: see watch_begin */
        atomic_store(&q->head_slot, &q->head->slot[0]);
        segment_put(q, emptied);
    } else {
        q->head_index++;
        atomic_store_explicit(&q->head_slot, slot + 1, memory_order_relaxed);
    }
    /* Release: readers of `claimed` only estimate (size, whether to sleep or wake, all
     * re-checked), so no stronger order is needed. */
    atomic_store_explicit(&q->claimed, claimed + 1, memory_order_release);
    if (next != NULL) {
        _Atomic uint64_t *head = &q->head->slot[q->head_index];
        *next = head_ready(q, claimed + 1, head) ? atomic_load_explicit(head, memory_order_relaxed) : 0;
    }
    ftu_spinlock_unlock(&q->head_lock);
    if (q->count_space) release_space(q);
    return 1;
}

int ftu_queue_wait_pop(ftu_queue *q, int64_t deadline_ns) {
    for (;;) {
        if (atomic_load(&q->state) != FTU_QUEUE_OPEN || items_available(q) > 0) return FTU_OK;
        if (deadline_ns == FTU_NO_WAIT) return FTU_TIMEOUT;
        int result = wait_for(q, items_available, &q->consumers, deadline_ns);
        if (result == FTU_OK) {
            /* This thread is about to take one word: if there are more, a push may have
             * skipped waking anyone while our wake-up was pending, so pass one on. */
            if (items_available(q) > 1) wake_one(&q->consumers);
            /* a watcher may have seen a slot of a reused segment (see watch_begin) */
            if (items_available(q) > 0 || atomic_load(&q->state) != FTU_QUEUE_OPEN) return FTU_OK;
            continue;
        }
        /* Leaving without a word (timeout, signal): no sleeper may be left beside one. */
        pass_on(q, items_available, &q->consumers);
        return result;
    }
}

int ftu_queue_pop(ftu_queue *q, uint64_t *word, int64_t deadline_ns) {
    for (;;) {
        int state = atomic_load(&q->state);
        if (state == FTU_QUEUE_SHUT_IMMEDIATE) return FTU_SHUTDOWN;
        if (take(q, word, NULL, NULL)) return FTU_OK;
        if (state != FTU_QUEUE_OPEN) return FTU_SHUTDOWN; /* shut and drained */
        if (deadline_ns == FTU_NO_WAIT) return FTU_TIMEOUT;
        int result = ftu_queue_wait_pop(q, deadline_ns);
        if (result != FTU_OK) {
            /* a word may have arrived as the wait ended */
            int taken = atomic_load(&q->state) != FTU_QUEUE_SHUT_IMMEDIATE && take(q, word, NULL, NULL);
            return taken ? FTU_OK : result;
        }
    }
}

int ftu_queue_peek(ftu_queue *q, uint64_t *word, void (*hold)(uint64_t word, void *arg), void *arg) {
    int state = atomic_load(&q->state);
    if (state == FTU_QUEUE_SHUT_IMMEDIATE) return FTU_SHUTDOWN;
    ftu_spinlock_lock(&q->head_lock);
    int64_t claimed = atomic_load_explicit(&q->claimed, memory_order_relaxed);
    _Atomic uint64_t *slot = &q->head->slot[q->head_index];
    int ready = head_ready(q, claimed, slot);
    if (ready) {
        *word = atomic_load_explicit(slot, memory_order_relaxed);
        if (hold != NULL) hold(*word, arg); /* before any consumer can take it */
    }
    ftu_spinlock_unlock(&q->head_lock);
    if (ready) return FTU_OK;
    return state == FTU_QUEUE_OPEN ? FTU_TIMEOUT : FTU_SHUTDOWN;
}

int ftu_queue_pop_if(ftu_queue *q, uint64_t expected) { return ftu_queue_pop_if_next(q, expected, NULL); }

int ftu_queue_pop_if_next(ftu_queue *q, uint64_t expected, uint64_t *next) {
    int state = atomic_load(&q->state);
    if (state == FTU_QUEUE_SHUT_IMMEDIATE) return FTU_SHUTDOWN;
    uint64_t word;
    if (take(q, &word, &expected, next)) return FTU_OK;
    return state == FTU_QUEUE_OPEN || ftu_queue_size(q) > 0 ? FTU_TIMEOUT : FTU_SHUTDOWN;
}

static void task_finished_by_drain(ftu_queue *q) {
    if (!(q->flags & FTU_QUEUE_TASKS)) return;
    if (claim(&q->unfinished) && atomic_load(&q->unfinished) == 0) wake_all(&q->joiners);
}

int ftu_queue_drain(ftu_queue *q, uint64_t *word) {
    if (!take(q, word, NULL, NULL)) return FTU_TIMEOUT;
    task_finished_by_drain(q);
    return FTU_OK;
}

/* ---- state ----------------------------------------------------------------------------- */

int64_t ftu_queue_size(ftu_queue *q) {
    /* `pushed` first, then `claimed`: takes counted after the first read only make the
     * estimate smaller, so it never exceeds what the queue held at that first read (nor a
     * bound: a push needs a free place). items_available reads them the other way round,
     * which is what its waiters need. */
    int64_t pushed = atomic_load(&q->pushed);
    int64_t available = pushed - atomic_load(&q->claimed);
    return available > 0 ? available : 0;
}

int64_t ftu_queue_capacity(ftu_queue *q) {
    int64_t capacity = atomic_load(&q->capacity);
    return capacity == UNBOUNDED ? 0 : capacity;
}

int ftu_queue_set_capacity(ftu_queue *q, int64_t capacity) {
    if (!q->count_space) return FTU_UNSUPPORTED; /* pushes do not count free places */
    if (capacity <= 0 || capacity > UNBOUNDED) capacity = UNBOUNDED;
    int64_t old = atomic_exchange(&q->capacity, capacity);
    if (old == capacity) return FTU_OK;
    atomic_fetch_add(&q->space, capacity - old);
    if (capacity > old) wake_all(&q->producers);
    return FTU_OK;
}

void ftu_queue_shutdown(ftu_queue *q, int immediate) {
    int wanted = immediate ? FTU_QUEUE_SHUT_IMMEDIATE : FTU_QUEUE_SHUT;
    ftu_spinlock_lock(&q->tail_lock);
    if (atomic_load(&q->state) < wanted) atomic_store(&q->state, wanted);
    ftu_spinlock_unlock(&q->tail_lock);
    /* Everyone re-checks: consumers and producers, waiting or about to wait. */
    atomic_fetch_add(&q->consumers.signal, 1);
    ftu_word_wake(&q->consumers.signal, -1);
    atomic_fetch_add(&q->producers.signal, 1);
    ftu_word_wake(&q->producers.signal, -1);
}

int ftu_queue_state(ftu_queue *q) { return atomic_load(&q->state); }

void ftu_queue_set_spin(ftu_queue *q, int spin) { atomic_store(&q->spinning, spin != 0); }

int ftu_queue_spins(ftu_queue *q) { return atomic_load(&q->spinning); }

/* ---- tasks ----------------------------------------------------------------------------- */

int64_t ftu_queue_unfinished(ftu_queue *q) { return atomic_load(&q->unfinished); }

int ftu_queue_task_done(ftu_queue *q) {
    int64_t n = atomic_load(&q->unfinished);
    do {
        if (n <= 0) return FTU_TOO_MANY;
    } while (!atomic_compare_exchange_weak(&q->unfinished, &n, n - 1));
    if (n == 1) wake_all(&q->joiners);
    return FTU_OK;
}

int ftu_queue_join(ftu_queue *q, int64_t deadline_ns) {
    for (;;) {
        if (atomic_load(&q->unfinished) == 0) return FTU_OK;
        if (deadline_ns == FTU_NO_WAIT) return FTU_TIMEOUT;
        uint32_t seen = atomic_load(&q->joiners.signal);
        atomic_fetch_add(&q->joiners.waiting, 1);
        int result = FTU_OK;
        if (atomic_load(&q->unfinished) != 0) result = ftu_word_wait(&q->joiners.signal, seen, deadline_ns);
        atomic_fetch_sub(&q->joiners.waiting, 1);
        if (result != FTU_OK) return atomic_load(&q->unfinished) == 0 ? FTU_OK : result;
    }
}

int ftu_queue_visit(ftu_queue *q, int (*visit)(uint64_t word, void *arg), void *arg) {
    int result = 0;
    ftu_spinlock_lock(&q->tail_lock);
    ftu_spinlock_lock(&q->head_lock);
    struct segment *seg = q->head;
    int64_t index = q->head_index;
    while (result == 0 && !(seg == q->tail && index == q->tail_index)) {
        result = visit(atomic_load_explicit(&seg->slot[index], memory_order_relaxed), arg);
        if (++index == SEGMENT_SLOTS) {
            seg = seg->next;
            index = 0;
        }
    }
    ftu_spinlock_unlock(&q->head_lock);
    ftu_spinlock_unlock(&q->tail_lock);
    return result;
}
