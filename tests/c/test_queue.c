/*
 * Unit tests of the core's queue (csrc/ftu_queue.c) and gatherer (csrc/ftu_gather.c),
 * in plain C with pthreads.
 *
 * Single-thread semantics (FIFO, capacity, timeouts, shutdown, tasks), then threads:
 * P producers x C consumers in both wait strategies, bounded and unbounded, with
 * consumers that keep timing out: every word must arrive exactly once and each
 * producer's words in order. The gatherer: 8 threads insert shuffled keys while one
 * thread takes them in key order.
 *
 * Prints "N passed, N failed" and exits non-zero on any failure.
 */
#define _POSIX_C_SOURCE 200809L
#include "ftu.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <time.h>

#include "check.h"

#define MS INT64_C(1000000)

static void sleep_ms(int ms) {
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* ---- single thread ------------------------------------------------------------------- */

static void test_fifo_and_size(int flags) {
    ftu_queue *q = ftu_queue_new(0, flags);
    uint64_t w = 0;
    CHECK(ftu_queue_pop(q, &w, FTU_NO_WAIT) == FTU_TIMEOUT, "pop on empty");
    for (uint64_t i = 0; i < 5000; i++) CHECK(ftu_queue_push(q, i, FTU_NO_WAIT) == FTU_OK, "push %" PRIu64, i);
    CHECK(ftu_queue_size(q) == 5000, "size %" PRId64, ftu_queue_size(q));
    int in_order = 1;
    for (uint64_t i = 0; i < 5000; i++) {
        if (ftu_queue_pop(q, &w, FTU_NO_WAIT) != FTU_OK || w != i) in_order = 0;
    }
    CHECK(in_order, "FIFO order across segments");
    CHECK(ftu_queue_size(q) == 0, "size after draining");
    int64_t start = ftu_monotonic_ns();
    CHECK(ftu_queue_pop(q, &w, start + 30 * MS) == FTU_TIMEOUT, "timed pop on empty");
    CHECK(ftu_monotonic_ns() - start >= 30 * MS, "timed pop waited its timeout");
    ftu_queue_free(q);
}

static void count_hold(uint64_t word, void *arg) {
    uint64_t *held = arg;
    held[0]++;
    held[1] = word;
}

/* peek reads the head without taking it (calling hold with it); pop_if takes the head
 * only if it is the word given, with what a pop does (free places, state). */
static void test_peek_and_pop_if(void) {
    ftu_queue *q = ftu_queue_new(2, FTU_QUEUE_TASKS);
    uint64_t w = 99, held[2] = {0, 0};
    CHECK(ftu_queue_peek(q, &w, count_hold, held) == FTU_TIMEOUT && held[0] == 0, "peek on empty");
    CHECK(ftu_queue_pop_if(q, 0) == FTU_TIMEOUT, "pop_if on empty");
    CHECK(ftu_queue_push(q, 1, FTU_NO_WAIT) == FTU_OK && ftu_queue_push(q, 2, FTU_NO_WAIT) == FTU_OK, "push");
    CHECK(ftu_queue_peek(q, &w, count_hold, held) == FTU_OK && w == 1, "peek gives the head");
    CHECK(held[0] == 1 && held[1] == 1, "hold called once, with the head");
    CHECK(ftu_queue_size(q) == 2, "peek took nothing");
    CHECK(ftu_queue_pop_if(q, 2) == FTU_TIMEOUT && ftu_queue_size(q) == 2, "pop_if of another word takes nothing");
    CHECK(ftu_queue_push(q, 3, FTU_NO_WAIT) == FTU_TIMEOUT, "full");
    CHECK(ftu_queue_pop_if(q, 1) == FTU_OK && ftu_queue_size(q) == 1, "pop_if of the head takes it");
    CHECK(ftu_queue_push(q, 3, FTU_NO_WAIT) == FTU_OK, "its place is free again");
    CHECK(ftu_queue_unfinished(q) == 3, "tasks counted as for pop");
    ftu_queue_shutdown(q, 0);
    CHECK(ftu_queue_peek(q, &w, NULL, NULL) == FTU_OK && w == 2, "shut down: what is left can still be peeked");
    CHECK(ftu_queue_pop_if(q, 2) == FTU_OK, "and taken");
    CHECK(ftu_queue_pop_if(q, 2) == FTU_TIMEOUT, "not twice");
    ftu_queue_shutdown(q, 1);
    CHECK(ftu_queue_peek(q, &w, NULL, NULL) == FTU_SHUTDOWN, "shut down immediately: peek fails");
    CHECK(ftu_queue_pop_if(q, 3) == FTU_SHUTDOWN, "and pop_if");
    CHECK(ftu_queue_drain(q, &w) == FTU_OK && w == 3, "the leftover is drained");
    CHECK(ftu_queue_peek(q, &w, NULL, NULL) == FTU_SHUTDOWN, "shut down and empty");
    ftu_queue_free(q);
    /* across segments */
    q = ftu_queue_new(0, 0);
    for (uint64_t i = 0; i < 3000; i++) ftu_queue_push(q, i, FTU_NO_WAIT);
    int in_order = 1;
    for (uint64_t i = 0; i < 3000; i++)
        if (ftu_queue_peek(q, &w, NULL, NULL) != FTU_OK || w != i || ftu_queue_pop_if(q, i) != FTU_OK) in_order = 0;
    CHECK(in_order && ftu_queue_size(q) == 0, "peek and pop_if in FIFO order across segments");
    /* pop_if_next: each take tells the next head, across segments too */
    for (uint64_t i = 1; i <= 3000; i++) ftu_queue_push(q, i, FTU_NO_WAIT);
    uint64_t next = 99, expected = 1;
    CHECK(ftu_queue_pop_if_next(q, 2, &next) == FTU_TIMEOUT && next == 99, "pop_if_next of another word: nothing");
    int chained = 1;
    while (expected != 0) {
        if (ftu_queue_pop_if_next(q, expected, &next) != FTU_OK || next != (expected < 3000 ? expected + 1 : 0))
            chained = 0;
        expected = next;
    }
    CHECK(chained && ftu_queue_size(q) == 0, "pop_if_next gives each next head, then 0");
    ftu_queue_shutdown(q, 0);
    CHECK(ftu_queue_peek(q, &w, NULL, NULL) == FTU_SHUTDOWN && ftu_queue_pop_if(q, 0) == FTU_SHUTDOWN,
          "shut down and empty");
    ftu_queue_free(q);
}

static void test_capacity(void) {
    ftu_queue *q = ftu_queue_new(3, 0);
    uint64_t w;
    for (int i = 0; i < 3; i++) CHECK(ftu_queue_push(q, (uint64_t)i, FTU_NO_WAIT) == FTU_OK, "push %d", i);
    CHECK(ftu_queue_push(q, 9, FTU_NO_WAIT) == FTU_TIMEOUT, "push on full");
    CHECK(ftu_queue_push(q, 9, ftu_monotonic_ns() + 10 * MS) == FTU_TIMEOUT, "timed push on full");
    CHECK(ftu_queue_capacity(q) == 3, "capacity");
    ftu_queue_set_capacity(q, 2); /* shrinking below the size: pushes wait */
    CHECK(ftu_queue_pop(q, &w, FTU_NO_WAIT) == FTU_OK && w == 0, "pop");
    CHECK(ftu_queue_push(q, 9, FTU_NO_WAIT) == FTU_TIMEOUT, "still full after shrinking");
    ftu_queue_set_capacity(q, 0);
    CHECK(ftu_queue_push(q, 3, FTU_NO_WAIT) == FTU_OK, "unbounded again");
    CHECK(ftu_queue_size(q) == 3, "size");
    ftu_queue_free(q);
}

/* Only a queue that counts free places can be bounded later: the others say so. */
static void test_set_capacity_needs_counting(void) {
    ftu_queue *q = ftu_queue_new(0, 0);
    CHECK(ftu_queue_set_capacity(q, 2) == FTU_UNSUPPORTED, "set_capacity on a queue that does not count");
    CHECK(ftu_queue_capacity(q) == 0, "capacity unchanged");
    for (int i = 0; i < 5; i++) CHECK(ftu_queue_push(q, 1, FTU_NO_WAIT) == FTU_OK, "still unbounded");
    ftu_queue_free(q);
    int flags[] = {FTU_QUEUE_BOUNDABLE, FTU_QUEUE_TASKS, FTU_QUEUE_BOUNDABLE | FTU_QUEUE_SPIN};
    for (int f = 0; f < 3; f++) {
        q = ftu_queue_new(0, flags[f]);
        CHECK(ftu_queue_push(q, 1, FTU_NO_WAIT) == FTU_OK, "push");
        CHECK(ftu_queue_set_capacity(q, 2) == FTU_OK, "flags %d: set_capacity", flags[f]);
        CHECK(ftu_queue_capacity(q) == 2, "flags %d: capacity reads 2", flags[f]);
        CHECK(ftu_queue_push(q, 2, FTU_NO_WAIT) == FTU_OK, "flags %d: second push", flags[f]);
        CHECK(ftu_queue_push(q, 3, FTU_NO_WAIT) == FTU_TIMEOUT, "flags %d: third push refused", flags[f]);
        CHECK(ftu_queue_set_capacity(q, INT64_MAX) == FTU_OK && ftu_queue_capacity(q) == 0,
              "flags %d: a huge capacity is unbounded", flags[f]);
        CHECK(ftu_queue_push(q, 3, FTU_NO_WAIT) == FTU_OK, "flags %d: unbounded again", flags[f]);
        ftu_queue_free(q);
    }
}

/* ftu_queue_wait_pop waits without taking. */
static void *push_42_later(void *arg) {
    sleep_ms(30);
    ftu_queue_push(arg, 42, FTU_NO_WAIT);
    return NULL;
}

static void test_wait_pop(int flags) {
    ftu_queue *q = ftu_queue_new(0, flags);
    uint64_t w = 0;
    int64_t start = ftu_monotonic_ns();
    CHECK(ftu_queue_wait_pop(q, FTU_NO_WAIT) == FTU_TIMEOUT, "nothing to wait for");
    CHECK(ftu_queue_wait_pop(q, start + 20 * MS) == FTU_TIMEOUT, "timed wait on empty");
    CHECK(ftu_monotonic_ns() - start >= 20 * MS, "waited its timeout");
    pthread_t thread;
    pthread_create(&thread, NULL, push_42_later, q);
    CHECK(ftu_queue_wait_pop(q, ftu_monotonic_ns() + 5000 * MS) == FTU_OK, "woken by a push");
    pthread_join(thread, NULL);
    CHECK(ftu_queue_size(q) == 1, "the wait took nothing");
    CHECK(ftu_queue_wait_pop(q, FTU_WAIT_FOREVER) == FTU_OK, "a word is there: no wait");
    CHECK(ftu_queue_pop(q, &w, FTU_NO_WAIT) == FTU_OK && w == 42, "then the pop takes it");
    /* the wait mode can change while the queue is in use */
    CHECK(ftu_queue_spins(q) == ((flags & FTU_QUEUE_SPIN) != 0), "spins as created");
    ftu_queue_set_spin(q, !(flags & FTU_QUEUE_SPIN));
    CHECK(ftu_queue_spins(q) == !(flags & FTU_QUEUE_SPIN), "spin mode switched");
    pthread_create(&thread, NULL, push_42_later, q);
    CHECK(ftu_queue_pop(q, &w, ftu_monotonic_ns() + 5000 * MS) == FTU_OK && w == 42, "a wait in the other mode");
    pthread_join(thread, NULL);
    ftu_queue_shutdown(q, 0);
    CHECK(ftu_queue_wait_pop(q, FTU_WAIT_FOREVER) == FTU_OK, "shut down: nothing to wait for");
    ftu_queue_free(q);
}

static void test_shutdown(void) {
    ftu_queue *q = ftu_queue_new(0, 0);
    uint64_t w;
    ftu_queue_push(q, 1, FTU_NO_WAIT);
    ftu_queue_push(q, 2, FTU_NO_WAIT);
    ftu_queue_shutdown(q, 0);
    CHECK(ftu_queue_state(q) == FTU_QUEUE_SHUT, "state");
    CHECK(ftu_queue_push(q, 3, FTU_NO_WAIT) == FTU_SHUTDOWN, "push after shutdown");
    CHECK(ftu_queue_pop(q, &w, FTU_WAIT_FOREVER) == FTU_OK && w == 1, "pop what is left");
    ftu_queue_shutdown(q, 1);
    CHECK(ftu_queue_pop(q, &w, FTU_WAIT_FOREVER) == FTU_SHUTDOWN, "immediate: pop fails at once");
    CHECK(ftu_queue_drain(q, &w) == FTU_OK && w == 2, "drain takes the leftover");
    CHECK(ftu_queue_drain(q, &w) == FTU_TIMEOUT, "drain on empty");
    ftu_queue_shutdown(q, 0);
    CHECK(ftu_queue_state(q) == FTU_QUEUE_SHUT_IMMEDIATE, "immediate stays immediate");
    ftu_queue_free(q);

    q = ftu_queue_new(0, 0);
    ftu_queue_shutdown(q, 0);
    CHECK(ftu_queue_pop(q, &w, FTU_WAIT_FOREVER) == FTU_SHUTDOWN, "shut and empty");
    ftu_queue_free(q);
}

static void test_tasks(void) {
    ftu_queue *q = ftu_queue_new(0, FTU_QUEUE_TASKS);
    uint64_t w;
    CHECK(ftu_queue_task_done(q) == FTU_TOO_MANY, "task_done with no task");
    CHECK(ftu_queue_join(q, FTU_NO_WAIT) == FTU_OK, "join with no task");
    ftu_queue_push(q, 1, FTU_NO_WAIT);
    ftu_queue_push(q, 2, FTU_NO_WAIT);
    CHECK(ftu_queue_unfinished(q) == 2, "unfinished");
    CHECK(ftu_queue_join(q, ftu_monotonic_ns() + 5 * MS) == FTU_TIMEOUT, "join waits");
    ftu_queue_pop(q, &w, FTU_NO_WAIT);
    CHECK(ftu_queue_task_done(q) == FTU_OK, "task_done");
    ftu_queue_shutdown(q, 1);
    CHECK(ftu_queue_drain(q, &w) == FTU_OK, "drain");
    CHECK(ftu_queue_unfinished(q) == 0, "immediate drain ends the drained tasks");
    CHECK(ftu_queue_join(q, FTU_NO_WAIT) == FTU_OK, "join returns");
    ftu_queue_free(q);
}

/* ---- threads ---------------------------------------------------------------------------- */

#define PRODUCERS 4
#define CONSUMERS 4
#define PER_PRODUCER 50000

struct mpmc {
    ftu_queue *q;
    int timeout_ms; /* consumers' per-pop timeout; 0 = wait forever */
    int tasks;      /* consumers call task_done after each pop */
    int split;      /* consumers wait with ftu_queue_wait_pop, then pop without waiting,
                       as the Python binding does */
    int task_errors;
    pthread_barrier_t start;
    unsigned char seen[PRODUCERS][PER_PRODUCER];
    int order_errors;
    long timeouts;
    pthread_mutex_t mutex;
};

struct worker {
    struct mpmc *t;
    int index;
};

static void *producer(void *arg) {
    struct worker *w = arg;
    pthread_barrier_wait(&w->t->start);
    for (uint64_t i = 0; i < PER_PRODUCER; i++) {
        uint64_t word = ((uint64_t)w->index << 32) | i;
        while (ftu_queue_push(w->t->q, word, FTU_WAIT_FOREVER) != FTU_OK) {
        }
    }
    return NULL;
}

/* A pop the way the Python binding does it: wait (detached, there) without taking,
 * then take without waiting (attached). */
static int pop_split(ftu_queue *q, uint64_t *word, int64_t deadline) {
    for (;;) {
        int result = ftu_queue_pop(q, word, FTU_NO_WAIT);
        if (result != FTU_TIMEOUT || deadline == FTU_NO_WAIT) return result;
        int waited = ftu_queue_wait_pop(q, deadline);
        if (waited != FTU_OK) {
            result = ftu_queue_pop(q, word, FTU_NO_WAIT); /* a word may have come as it ended */
            return result == FTU_TIMEOUT ? waited : result;
        }
    }
}

/* A pop the way pop_local does it: peek (nothing taken), prepare, then take the head
 * only if it is still the word peeked; another consumer may have been first: look again. */
static int peek_and_take(ftu_queue *q, uint64_t *word) {
    for (;;) {
        int result = ftu_queue_peek(q, word, NULL, NULL);
        if (result != FTU_OK) return result;
        result = ftu_queue_pop_if(q, *word);
        if (result != FTU_TIMEOUT) return result;
    }
}

static int pop_peeked(ftu_queue *q, uint64_t *word, int64_t deadline) {
    for (;;) {
        int result = peek_and_take(q, word);
        if (result != FTU_TIMEOUT || deadline == FTU_NO_WAIT) return result;
        int waited = ftu_queue_wait_pop(q, deadline);
        if (waited != FTU_OK) {
            result = peek_and_take(q, word); /* a word may have come as it ended */
            return result == FTU_TIMEOUT ? waited : result;
        }
    }
}

static void *consumer(void *arg) {
    struct worker *w = arg;
    struct mpmc *t = w->t;
    int64_t last[PRODUCERS];
    for (int p = 0; p < PRODUCERS; p++) last[p] = -1;
    int order_errors = 0;
    long timeouts = 0;
    pthread_barrier_wait(&t->start);
    for (;;) {
        uint64_t word;
        int64_t deadline = t->timeout_ms ? ftu_monotonic_ns() + t->timeout_ms * MS : FTU_WAIT_FOREVER;
        int result = t->split == 2   ? pop_peeked(t->q, &word, deadline)
                     : t->split ? pop_split(t->q, &word, deadline)
                                : ftu_queue_pop(t->q, &word, deadline);
        if (result == FTU_SHUTDOWN) break;
        if (result == FTU_TIMEOUT) {
            timeouts++;
            continue;
        }
        /* a word is a task as soon as a consumer can take it */
        if (t->tasks && ftu_queue_task_done(t->q) != FTU_OK) __atomic_fetch_add(&t->task_errors, 1, __ATOMIC_RELAXED);
        int p = (int)(word >> 32);
        int64_t i = (int64_t)(word & 0xffffffffu);
        if (i <= last[p]) order_errors++;
        last[p] = i;
        __atomic_fetch_add(&t->seen[p][i], 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_lock(&t->mutex);
    t->order_errors += order_errors;
    t->timeouts += timeouts;
    pthread_mutex_unlock(&t->mutex);
    return NULL;
}

static void test_mpmc(int64_t capacity, int flags, int timeout_ms, int split) {
    struct mpmc *t = calloc(1, sizeof(struct mpmc));
    t->q = ftu_queue_new(capacity, flags);
    t->timeout_ms = timeout_ms;
    t->split = split;
    t->tasks = (flags & FTU_QUEUE_TASKS) != 0;
    pthread_mutex_init(&t->mutex, NULL);
    pthread_barrier_init(&t->start, NULL, PRODUCERS + CONSUMERS);
    pthread_t producers[PRODUCERS], consumers[CONSUMERS];
    struct worker workers[PRODUCERS + CONSUMERS];
    for (int i = 0; i < PRODUCERS + CONSUMERS; i++) workers[i] = (struct worker){t, i < PRODUCERS ? i : i - PRODUCERS};
    for (int i = 0; i < CONSUMERS; i++) pthread_create(&consumers[i], NULL, consumer, &workers[PRODUCERS + i]);
    for (int i = 0; i < PRODUCERS; i++) pthread_create(&producers[i], NULL, producer, &workers[i]);
    for (int i = 0; i < PRODUCERS; i++) pthread_join(producers[i], NULL);
    ftu_queue_shutdown(t->q, 0); /* consumers drain what is left, then stop */
    for (int i = 0; i < CONSUMERS; i++) pthread_join(consumers[i], NULL);
    long lost = 0, duplicated = 0;
    for (int p = 0; p < PRODUCERS; p++) {
        for (int i = 0; i < PER_PRODUCER; i++) {
            lost += t->seen[p][i] == 0;
            duplicated += t->seen[p][i] > 1;
        }
    }
    CHECK(lost == 0 && duplicated == 0, "capacity %" PRId64 " flags %d timeout %d split %d: %ld lost, %ld duplicated",
          capacity, flags, timeout_ms, split, lost, duplicated);
    CHECK(t->order_errors == 0, "capacity %" PRId64 " flags %d: %d per-producer order errors", capacity, flags,
          t->order_errors);
    CHECK(ftu_queue_size(t->q) == 0, "size at the end");
    CHECK(t->task_errors == 0 && ftu_queue_unfinished(t->q) == 0, "flags %d: %d task_done refused, %" PRId64
          " unfinished at the end", flags, t->task_errors, ftu_queue_unfinished(t->q));
    ftu_queue_free(t->q);
    pthread_barrier_destroy(&t->start);
    free(t);
}

/* Zero words are published by the count only (consumers watch for non-zero slots): they
 * must still arrive, every one, with consumers waiting for them. */
#define ZERO_WORDS 30000

static void *push_zeros(void *arg) {
    for (int i = 0; i < ZERO_WORDS; i++) ftu_queue_push(arg, 0, FTU_WAIT_FOREVER);
    return NULL;
}

/* Pops until the queue is shut down and drained, counting zero and other words. */
struct counting_consumer {
    ftu_queue *q;
    long zeros, others;
};

static void *pop_and_count(void *arg) {
    struct counting_consumer *c = arg;
    uint64_t word;
    while (ftu_queue_pop(c->q, &word, FTU_WAIT_FOREVER) == FTU_OK) {
        if (word == 0)
            c->zeros++;
        else
            c->others++;
    }
    return NULL;
}

static void test_zero_words(int flags) {
    ftu_queue *q = ftu_queue_new(0, flags);
    struct counting_consumer c[2] = {{q, 0, 0}, {q, 0, 0}};
    pthread_t producers[2], consumers[2];
    for (int i = 0; i < 2; i++) pthread_create(&consumers[i], NULL, pop_and_count, &c[i]);
    for (int i = 0; i < 2; i++) pthread_create(&producers[i], NULL, push_zeros, q);
    for (int i = 0; i < 2; i++) pthread_join(producers[i], NULL);
    ftu_queue_shutdown(q, 0);
    for (int i = 0; i < 2; i++) pthread_join(consumers[i], NULL);
    CHECK(c[0].zeros + c[1].zeros == 2 * ZERO_WORDS && c[0].others + c[1].others == 0,
          "flags %d: %ld zero words popped of %d, %ld others", flags, c[0].zeros + c[1].zeros, 2 * ZERO_WORDS,
          c[0].others + c[1].others);
    ftu_queue_free(q);
}

/* A consumer waiting for a word reads the head slot's address, then the slot, outside
 * the head lock; emptied segments must not be freed while such a reader may still hold
 * an address in them. The hook holds watchers between their two reads for 2 ms now and
 * then, while the others take thousands of words (segments of 1023): under AddressSanitizer
 * a read of a freed segment is an error. */
extern void (*ftu_test_watch_hook)(void);
static _Atomic long watch_calls;

static void hold_watcher(void) {
    if (atomic_fetch_add(&watch_calls, 1) % 64 == 0) sleep_ms(2);
}

#define WATCHED_WORDS 400000

static void *push_counting(void *arg) {
    for (uint64_t i = 1; i <= WATCHED_WORDS; i++) {
        ftu_queue_push(arg, i, FTU_WAIT_FOREVER);
        if (i % 3000 == 0) { /* bursts of 3 segments: consumers drain, then wait */
            /* However slow the consumers (a loaded machine, a sanitizer), let them empty the
             * queue first (for at most 1 s), so that they do wait, and watch, every burst. */
            for (int waited = 0; ftu_queue_size(arg) > 0 && waited < 1000; waited++) sleep_ms(1);
            sleep_ms(1);
        }
    }
    return NULL;
}

static void test_watchers_and_freed_segments(int flags) {
    ftu_queue *q = ftu_queue_new(0, flags);
    struct counting_consumer c[4];
    pthread_t producer, consumers[4];
    atomic_store(&watch_calls, 0);
    ftu_test_watch_hook = hold_watcher;
    for (int i = 0; i < 4; i++) {
        c[i] = (struct counting_consumer){q, 0, 0};
        pthread_create(&consumers[i], NULL, pop_and_count, &c[i]);
    }
    pthread_create(&producer, NULL, push_counting, q);
    pthread_join(producer, NULL);
    ftu_queue_shutdown(q, 0);
    long taken = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(consumers[i], NULL);
        taken += c[i].others;
    }
    ftu_test_watch_hook = NULL;
    CHECK(taken == WATCHED_WORDS, "flags %d: %ld words taken of %d", flags, taken, WATCHED_WORDS);
    CHECK(atomic_load(&watch_calls) > 64, "the watchers were held (%ld watches)", (long)atomic_load(&watch_calls));
    ftu_queue_free(q);
}

/* Memory stays bounded by the contents: 8 consumers cycling through short waits (so
 * that some consumer is nearly always watching the head slot, and some are preempted
 * while watching: 2 CPUs, 11 threads) while one producer keeps fewer than 2000 words in
 * the queue. Emptied segments used to wait for a moment with no watcher at all before
 * being freed, and grew to tens of thousands (hundreds of MiB). */
extern _Atomic long ftu_test_queue_segments;

#define BOUNDED_WORDS 3000000
#define BOUNDED_CONSUMERS 8

struct bounded_test {
    ftu_queue *q;
    _Atomic int done;
    _Atomic long taken;
};

static void *pop_with_short_waits(void *arg) {
    struct bounded_test *t = arg;
    uint64_t word;
    long taken = 0;
    for (;;) {
        int result = ftu_queue_pop(t->q, &word, ftu_monotonic_ns() + MS / 5);
        if (result == FTU_SHUTDOWN) break;
        if (result == FTU_OK) taken++;
    }
    atomic_fetch_add(&t->taken, taken);
    return NULL;
}

static void *busy_loop(void *arg) {
    struct bounded_test *t = arg;
    volatile unsigned long spin = 0;
    while (!atomic_load(&t->done)) spin++;
    return NULL;
}

static void test_retired_segments_bounded(int flags) {
    struct bounded_test t = {ftu_queue_new(0, flags), 0, 0};
    long before = atomic_load(&ftu_test_queue_segments), most = 0;
    pthread_t consumers[BOUNDED_CONSUMERS], busy[2];
    for (int i = 0; i < BOUNDED_CONSUMERS; i++) pthread_create(&consumers[i], NULL, pop_with_short_waits, &t);
    for (int i = 0; i < 2; i++) pthread_create(&busy[i], NULL, busy_loop, &t);
    int64_t give_up = ftu_monotonic_ns() + 20000 * MS;
    uint64_t pushed = 0;
    while (pushed < BOUNDED_WORDS && ftu_monotonic_ns() < give_up) {
        if (ftu_queue_size(t.q) >= 2000) {
            sched_yield();
            continue;
        }
        for (int i = 0; i < 100; i++) ftu_queue_push(t.q, ++pushed, FTU_NO_WAIT);
        long now = atomic_load(&ftu_test_queue_segments) - before;
        if (now > most) most = now;
    }
    ftu_queue_shutdown(t.q, 0);
    atomic_store(&t.done, 1);
    for (int i = 0; i < BOUNDED_CONSUMERS; i++) pthread_join(consumers[i], NULL);
    for (int i = 0; i < 2; i++) pthread_join(busy[i], NULL);
    CHECK(atomic_load(&t.taken) == (long)pushed, "flags %d: %ld taken of %" PRIu64, flags, atomic_load(&t.taken),
          pushed);
    /* under 2000 words is 2 or 3 segments, plus the spare and a few retired */
    CHECK(most <= 16, "flags %d: up to %ld segments for under 2000 words (%" PRIu64 " pushed)", flags, most, pushed);
    ftu_queue_free(t.q);
}

struct waker {
    ftu_queue *q;
    int delay_ms;
    int immediate_shutdown; /* -1: push a word instead */
};

static void *wake_later(void *arg) {
    struct waker *w = arg;
    sleep_ms(w->delay_ms);
    if (w->immediate_shutdown < 0) {
        ftu_queue_push(w->q, 42, FTU_NO_WAIT);
    } else {
        ftu_queue_shutdown(w->q, w->immediate_shutdown);
    }
    return NULL;
}

static void test_blocked_pop_is_woken(int flags) {
    for (int mode = -1; mode <= 1; mode++) {
        ftu_queue *q = ftu_queue_new(0, flags);
        struct waker waker = {q, 30, mode};
        pthread_t thread;
        pthread_create(&thread, NULL, wake_later, &waker);
        uint64_t w = 0;
        int64_t start = ftu_monotonic_ns();
        int result = ftu_queue_pop(q, &w, start + 5000 * MS);
        int64_t waited = ftu_monotonic_ns() - start;
        pthread_join(thread, NULL);
        if (mode < 0) {
            CHECK(result == FTU_OK && w == 42, "woken by a push: %d", result);
        } else {
            CHECK(result == FTU_SHUTDOWN, "woken by shutdown(%d): %d", mode, result);
        }
        CHECK(waited < 2000 * MS, "woken in time (%" PRId64 " ms)", waited / MS);
        ftu_queue_free(q);
    }
}

static void *push_after_delay(void *arg) {
    ftu_queue *q = arg;
    sleep_ms(30);
    uint64_t w;
    ftu_queue_pop(q, &w, FTU_NO_WAIT); /* frees a place */
    return NULL;
}

static void test_blocked_push_is_woken(void) {
    ftu_queue *q = ftu_queue_new(1, 0);
    ftu_queue_push(q, 1, FTU_NO_WAIT);
    pthread_t thread;
    pthread_create(&thread, NULL, push_after_delay, q);
    CHECK(ftu_queue_push(q, 2, ftu_monotonic_ns() + 5000 * MS) == FTU_OK, "push woken by a pop");
    pthread_join(thread, NULL);
    uint64_t w;
    CHECK(ftu_queue_pop(q, &w, FTU_NO_WAIT) == FTU_OK && w == 2, "the pushed word");
    ftu_queue_free(q);
}

/* ---- gather ----------------------------------------------------------------------------- */

#define GATHER_THREADS 8
#define GATHER_KEYS 40000

struct gather_test {
    ftu_gather *g;
    pthread_barrier_t start;
};

struct gather_worker {
    struct gather_test *t;
    int index;
};

static void *inserter(void *arg) {
    struct gather_worker *w = arg;
    /* This thread's keys, in a scrambled order. */
    int count = 0;
    int64_t keys[GATHER_KEYS / GATHER_THREADS + 1];
    for (int64_t k = w->index; k < GATHER_KEYS; k += GATHER_THREADS) keys[count++] = k;
    unsigned seed = (unsigned)w->index * 7919u + 1;
    for (int i = count - 1; i > 0; i--) {
        seed = seed * 1103515245u + 12345u;
        int j = (int)(seed % (unsigned)(i + 1));
        int64_t tmp = keys[i];
        keys[i] = keys[j];
        keys[j] = tmp;
    }
    pthread_barrier_wait(&w->t->start);
    for (int i = 0; i < count; i++) ftu_gather_insert(w->t->g, keys[i], (uint64_t)keys[i] * 3);
    return NULL;
}

static void test_gather_threads(void) {
    struct gather_test t;
    t.g = ftu_gather_new();
    pthread_barrier_init(&t.start, NULL, GATHER_THREADS + 1);
    pthread_t threads[GATHER_THREADS];
    struct gather_worker workers[GATHER_THREADS];
    for (int i = 0; i < GATHER_THREADS; i++) {
        workers[i] = (struct gather_worker){&t, i};
        pthread_create(&threads[i], NULL, inserter, &workers[i]);
    }
    pthread_barrier_wait(&t.start);
    int wrong = 0;
    for (int64_t k = 0; k < GATHER_KEYS; k++) {
        uint64_t w;
        int result = ftu_gather_take(t.g, k, 1, &w, ftu_monotonic_ns() + 10000 * MS);
        if (result != FTU_OK || w != (uint64_t)k * 3) wrong++;
    }
    for (int i = 0; i < GATHER_THREADS; i++) pthread_join(threads[i], NULL);
    CHECK(wrong == 0, "gather: %d keys missing or wrong", wrong);
    CHECK(ftu_gather_size(t.g) == 0, "gather: empty at the end");
    ftu_gather_free(t.g);
    pthread_barrier_destroy(&t.start);
}

static void *fail_later(void *arg);

/* One pass over keys 0..max shared by several threads, the two ways the Python bindings
 * do it: the next key lives in a cell; a thread either takes it under a lock of its own
 * (so a non-clearing reader could take its own reference safely), moves the cell on and
 * notifies (native), or looks at it, then takes it and moves the cell in one step,
 * ftu_gather_advance (cffi: lock_free); a thread that finds the key missing waits on the
 * cell. Every key must go to exactly one thread, and every thread must stop at the end
 * (none left waiting for a key past max). */
#define PASS_THREADS 6
#define PASS_KEYS 20000

struct shared_pass {
    ftu_gather *g;
    _Atomic int stuck; /* waits that ran into their deadline */
    int64_t next_key; /* the cell */
    int64_t max_key;
    int clear;
    int lock_free;
    pthread_mutex_t lock;
    _Atomic int got[PASS_KEYS];
    _Atomic int finished;
};

static void *pass_reader(void *arg) {
    struct shared_pass *p = arg;
    for (;;) {
        if (p->lock_free) {
            int64_t key = ftu_i64_load(&p->next_key);
            if (key > p->max_key) break;
            uint64_t word;
            int status = ftu_gather_take(p->g, key, 0, &word, FTU_NO_WAIT);
            if (status == FTU_OK) status = ftu_gather_advance(p->g, &p->next_key, key, word, p->clear);
            if (status == FTU_OK) {
                if (word == (uint64_t)key * 3) atomic_fetch_add(&p->got[key], 1);
                continue;
            }
            if (status == FTU_FAILED) break;
            if (ftu_i64_load(&p->next_key) != key) continue; /* another thread took it */
            if (ftu_gather_wait(p->g, &p->next_key, p->max_key, ftu_monotonic_ns() + 3000 * MS) == FTU_TIMEOUT) {
                atomic_fetch_add(&p->stuck, 1);
                break;
            }
            continue;
        }
        pthread_mutex_lock(&p->lock);
        int64_t key = ftu_i64_load(&p->next_key);
        if (key > p->max_key) {
            pthread_mutex_unlock(&p->lock);
            break;
        }
        uint64_t word;
        int status = ftu_gather_take(p->g, key, p->clear, &word, FTU_NO_WAIT);
        if (status == FTU_OK) ftu_i64_store(&p->next_key, key + 1);
        pthread_mutex_unlock(&p->lock);
        if (status == FTU_OK) {
            ftu_gather_notify(p->g);
            if (word == (uint64_t)key * 3) atomic_fetch_add(&p->got[key], 1);
            continue;
        }
        if (status == FTU_FAILED) break;
        if (ftu_gather_wait(p->g, &p->next_key, p->max_key, ftu_monotonic_ns() + 3000 * MS) == FTU_TIMEOUT) {
            atomic_fetch_add(&p->stuck, 1);
            break;
        }
    }
    atomic_fetch_add(&p->finished, 1);
    return NULL;
}

static void *insert_shuffled(void *arg) {
    struct shared_pass *p = arg;
    unsigned seed = 12345;
    for (int64_t base = 0; base < PASS_KEYS; base += 100) { /* blocks of 100 keys, shuffled */
        int64_t keys[100];
        for (int i = 0; i < 100; i++) keys[i] = base + i;
        for (int i = 99; i > 0; i--) {
            seed = seed * 1103515245u + 12345u;
            int j = (int)(seed % (unsigned)(i + 1));
            int64_t tmp = keys[i];
            keys[i] = keys[j];
            keys[j] = tmp;
        }
        for (int i = 0; i < 100; i++) ftu_gather_insert(p->g, keys[i], (uint64_t)keys[i] * 3);
    }
    return NULL;
}

/* The last key taken while another thread is on its way to wait: that thread must not
 * wait for max_key + 1 (which no one inserts) once it reads the moved cell. */
static void test_gather_shared_pass_last_key(int lock_free) {
    int stuck = 0, wrong = 0;
    for (int round = 0; round < 3000 && stuck == 0; round++) {
        struct shared_pass *p = calloc(1, sizeof(struct shared_pass));
        p->g = ftu_gather_new();
        p->max_key = 0;
        p->clear = 1;
        p->lock_free = lock_free;
        pthread_mutex_init(&p->lock, NULL);
        pthread_t readers[PASS_THREADS];
        for (int i = 0; i < PASS_THREADS; i++) pthread_create(&readers[i], NULL, pass_reader, p);
        ftu_gather_insert(p->g, 0, 0);
        for (int i = 0; i < PASS_THREADS; i++) pthread_join(readers[i], NULL);
        stuck += atomic_load(&p->stuck);
        wrong += atomic_load(&p->got[0]) != 1;
        ftu_gather_free(p->g);
        pthread_mutex_destroy(&p->lock);
        free(p);
    }
    CHECK(stuck == 0, "shared pass (lock_free %d): %d readers waited past the last key", lock_free, stuck);
    CHECK(wrong == 0, "shared pass (lock_free %d): the one key not taken exactly once in %d rounds", lock_free, wrong);
}

static void test_gather_shared_pass(int clear, int inserted_first, int lock_free) {
    struct shared_pass *p = calloc(1, sizeof(struct shared_pass));
    p->g = ftu_gather_new();
    p->max_key = PASS_KEYS - 1;
    p->clear = clear;
    p->lock_free = lock_free;
    pthread_mutex_init(&p->lock, NULL);
    pthread_t inserter_thread, readers[PASS_THREADS];
    if (inserted_first) insert_shuffled(p);
    for (int i = 0; i < PASS_THREADS; i++) pthread_create(&readers[i], NULL, pass_reader, p);
    if (!inserted_first) pthread_create(&inserter_thread, NULL, insert_shuffled, p);
    if (!inserted_first) pthread_join(inserter_thread, NULL);
    for (int i = 0; i < PASS_THREADS; i++) pthread_join(readers[i], NULL);
    int wrong = 0;
    for (int k = 0; k < PASS_KEYS; k++) wrong += atomic_load(&p->got[k]) != 1;
    CHECK(wrong == 0, "shared pass (clear %d, inserted first %d, lock_free %d): %d keys not taken exactly once",
          clear, inserted_first, lock_free, wrong);
    CHECK(atomic_load(&p->finished) == PASS_THREADS, "every reader stopped at the end");
    CHECK(ftu_gather_size(p->g) == (clear ? 0 : PASS_KEYS), "size after the pass");
    ftu_gather_free(p->g);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* ftu_gather_advance alone: it takes only the key the cell holds, with the word looked
 * at, and moves the cell; anything else changes nothing. */
static void test_gather_advance(void) {
    for (int clear = 0; clear <= 1; clear++) {
        ftu_gather *g = ftu_gather_new();
        int64_t cell = 0;
        uint64_t word;
        ftu_gather_insert(g, 0, 100);
        ftu_gather_insert(g, 1, 101);
        CHECK(ftu_gather_advance(g, &cell, 0, 999, clear) == FTU_TIMEOUT && cell == 0, "advance: another word");
        CHECK(ftu_gather_advance(g, &cell, 1, 101, clear) == FTU_TIMEOUT && cell == 0, "advance: not the cell's key");
        CHECK(ftu_gather_advance(g, &cell, 0, 100, clear) == FTU_OK && cell == 1, "advance: moves the cell");
        CHECK(ftu_gather_size(g) == (clear ? 1 : 2), "advance: clears only if asked");
        CHECK((ftu_gather_take(g, 0, 0, &word, FTU_NO_WAIT) == FTU_OK) == !clear, "advance: key 0 kept iff not clear");
        CHECK(ftu_gather_advance(g, &cell, 0, 100, clear) == FTU_TIMEOUT && cell == 1, "advance: twice");
        CHECK(ftu_gather_advance(g, &cell, 2, 102, clear) == FTU_TIMEOUT && cell == 1, "advance: a key not there");
        ftu_gather_fail(g);
        CHECK(ftu_gather_advance(g, &cell, 1, 101, clear) == FTU_FAILED && cell == 1, "advance: failed gatherer");
        ftu_gather_free(g);
    }
}

/* ftu_gather_wait: wakes when the key arrives, when the cell moves, and on failure. */
struct cell_mover {
    ftu_gather *g;
    int64_t *cell;
    int insert; /* insert key 3 instead of moving the cell */
};

static void *move_cell_later(void *arg) {
    struct cell_mover *m = arg;
    sleep_ms(30);
    if (m->insert) {
        ftu_gather_insert(m->g, 3, 33);
    } else {
        ftu_i64_store(m->cell, 4);
        ftu_gather_notify(m->g);
    }
    return NULL;
}

static void test_gather_wait(void) {
    for (int insert = 0; insert <= 1; insert++) {
        ftu_gather *g = ftu_gather_new();
        int64_t cell = 3;
        CHECK(ftu_gather_wait(g, &cell, 10, FTU_NO_WAIT) == FTU_TIMEOUT, "key absent");
        CHECK(ftu_gather_wait(g, &cell, 2, FTU_WAIT_FOREVER) == FTU_OK, "key past max_key: no wait");
        struct cell_mover m = {g, &cell, insert};
        pthread_t thread;
        pthread_create(&thread, NULL, move_cell_later, &m);
        CHECK(ftu_gather_wait(g, &cell, 10, ftu_monotonic_ns() + 5000 * MS) == FTU_OK, "woken (insert %d)", insert);
        pthread_join(thread, NULL);
        CHECK(ftu_i64_load(&cell) == (insert ? 3 : 4), "the cell");
        CHECK(ftu_gather_size(g) == insert, "the wait took nothing");
        ftu_gather_free(g);
    }
    ftu_gather *g = ftu_gather_new();
    int64_t cell = 0;
    pthread_t thread;
    pthread_create(&thread, NULL, fail_later, g);
    CHECK(ftu_gather_wait(g, &cell, 10, ftu_monotonic_ns() + 5000 * MS) == FTU_FAILED, "fail wakes the waiter");
    pthread_join(thread, NULL);
    ftu_gather_free(g);
}

/* Draining n entries one call at a time is linear: 300,000 entries used to take about
 * 45 billion probe steps (minutes) when each call scanned from slot 0. */
static void test_gather_drain_all(void) {
    ftu_gather *g = ftu_gather_new();
    for (int64_t k = 0; k < 300000; k++) ftu_gather_insert(g, k, (uint64_t)k);
    int64_t key, start = ftu_monotonic_ns();
    uint64_t w;
    long drained = 0, right = 0;
    while (ftu_gather_drain(g, &key, &w) == FTU_OK) {
        drained++;
        right += (uint64_t)key == w;
        if (drained % 1000 == 0) ftu_gather_insert(g, 1000000 + drained, 1000000 + (uint64_t)drained); /* refills */
    }
    CHECK(drained == 300000 + 300 && right == drained, "drained %ld entries, %ld right", drained, right);
    CHECK(ftu_gather_size(g) == 0, "empty after draining");
    CHECK(ftu_monotonic_ns() - start < 10000 * MS, "draining took %" PRId64 " ms", (ftu_monotonic_ns() - start) / MS);
    ftu_gather_free(g);
}

static void *fail_later(void *arg) {
    sleep_ms(30);
    ftu_gather_fail(arg);
    return NULL;
}

static void test_gather_single(void) {
    ftu_gather *g = ftu_gather_new();
    uint64_t w;
    int64_t key;
    CHECK(ftu_gather_insert(g, 5, 50) == FTU_OK, "insert");
    CHECK(ftu_gather_insert(g, 5, 51) == FTU_DUPLICATE, "duplicate");
    CHECK(ftu_gather_take(g, 5, 0, &w, FTU_NO_WAIT) == FTU_OK && w == 50, "take without clear");
    CHECK(ftu_gather_take(g, 5, 1, &w, FTU_NO_WAIT) == FTU_OK && w == 50, "take with clear");
    CHECK(ftu_gather_take(g, 5, 1, &w, FTU_NO_WAIT) == FTU_TIMEOUT, "gone after clear");
    CHECK(ftu_gather_take(g, 6, 1, &w, ftu_monotonic_ns() + 10 * MS) == FTU_TIMEOUT, "timed take");
    for (int64_t k = 0; k < 1000; k++) ftu_gather_insert(g, k, (uint64_t)k);
    int drained = 0;
    while (ftu_gather_drain(g, &key, &w) == FTU_OK) drained += (uint64_t)key == w;
    CHECK(drained == 1000, "drain returns every entry once (%d)", drained);
    pthread_t thread;
    pthread_create(&thread, NULL, fail_later, g);
    CHECK(ftu_gather_take(g, 7, 1, &w, ftu_monotonic_ns() + 5000 * MS) == FTU_FAILED, "fail wakes the taker");
    pthread_join(thread, NULL);
    CHECK(ftu_gather_failed(g), "failed");
    ftu_gather_free(g);
}


/* ---- allocation failures ------------------------------------------------------------- */

/* Every allocation of create, push (growth) and insert (growth) failing in turn: the
 * call reports it (NULL or FTU_NO_MEMORY) and changes nothing; nothing leaks (ASan). */
static void test_allocation_failures(int flags) {
    int created_after = -1;
    for (int n = 0; n < 10 && created_after < 0; n++) {
        ftu_fail_allocations(n);
        ftu_queue *q = ftu_queue_new(0, flags);
        ftu_fail_allocations(-1);
        if (q != NULL) {
            created_after = n;
            ftu_queue_free(q);
        }
    }
    CHECK(created_after == 2, "a queue takes 2 allocations (%d)", created_after);
    ftu_queue *q = ftu_queue_new(0, flags);
    uint64_t pushed = 0, refused = 0, w;
    for (int round = 0; round < 3; round++) { /* each round fills a segment, then grows */
        ftu_fail_allocations(0);
        int status;
        while ((status = ftu_queue_push(q, pushed, FTU_NO_WAIT)) == FTU_OK) pushed++;
        CHECK(status == FTU_NO_MEMORY, "push that needs a segment: %d", status);
        refused++;
        CHECK(ftu_queue_size(q) == (int64_t)pushed, "size after a refused push");
        ftu_fail_allocations(-1);
        CHECK(ftu_queue_push(q, pushed, FTU_NO_WAIT) == FTU_OK, "push after the failure");
        pushed++;
    }
    int in_order = 1;
    for (uint64_t i = 0; i < pushed; i++) in_order &= ftu_queue_pop(q, &w, FTU_NO_WAIT) == FTU_OK && w == i;
    CHECK(in_order && ftu_queue_pop(q, &w, FTU_NO_WAIT) == FTU_TIMEOUT, "contents intact (%" PRIu64 ")", pushed);
    ftu_queue_free(q);

    ftu_fail_allocations(0);
    CHECK(ftu_gather_new() == NULL, "gatherer without memory");
    ftu_fail_allocations(1);
    CHECK(ftu_gather_new() == NULL, "gatherer without memory for its table");
    ftu_fail_allocations(-1);
    ftu_gather *g = ftu_gather_new();
    ftu_fail_allocations(0);
    int64_t inserted = 0, key;
    int status;
    while ((status = ftu_gather_insert(g, inserted, (uint64_t)inserted + 7)) == FTU_OK) inserted++;
    CHECK(status == FTU_NO_MEMORY && inserted > 0, "insert that needs to grow: %d after %" PRId64, status, inserted);
    CHECK(ftu_gather_size(g) == inserted, "gatherer size after a refused insert");
    ftu_fail_allocations(-1);
    CHECK(ftu_gather_insert(g, inserted, (uint64_t)inserted + 7) == FTU_OK, "insert after the failure");
    inserted++;
    int all = 1;
    for (int64_t k = 0; k < inserted; k++) all &= ftu_gather_take(g, k, 1, &w, FTU_NO_WAIT) == FTU_OK && w == (uint64_t)k + 7;
    CHECK(all && ftu_gather_drain(g, &key, &w) == FTU_TIMEOUT, "gatherer contents intact");
    ftu_gather_free(g);
}

int main(void) {
    test_fifo_and_size(0);
    test_fifo_and_size(FTU_QUEUE_SPIN);
    test_fifo_and_size(FTU_QUEUE_PREFETCH); /* words that are not addresses: only a hint */
    test_capacity();
    test_peek_and_pop_if();
    test_set_capacity_needs_counting();
    test_wait_pop(0);
    test_wait_pop(FTU_QUEUE_SPIN);
    test_shutdown();
    test_tasks();
    test_blocked_pop_is_woken(0);
    test_blocked_pop_is_woken(FTU_QUEUE_SPIN);
    test_blocked_push_is_woken();
    test_zero_words(0);
    test_zero_words(FTU_QUEUE_SPIN);
    test_watchers_and_freed_segments(0);
    test_watchers_and_freed_segments(FTU_QUEUE_SPIN);
    test_retired_segments_bounded(0);
    test_retired_segments_bounded(FTU_QUEUE_SPIN);
    int modes[] = {0, FTU_QUEUE_SPIN, FTU_QUEUE_PREFETCH | FTU_QUEUE_SPIN};
    for (int m = 0; m < 3; m++) {
        for (int split = 0; split <= 2; split++) {
            test_mpmc(0, modes[m], 0, split);
            test_mpmc(8, modes[m], 0, split);
            test_mpmc(0, modes[m] | FTU_QUEUE_TASKS, 1, split); /* consumers time out all the time */
            test_mpmc(4, modes[m], 1, split);
        }
    }
    test_allocation_failures(0);
    test_allocation_failures(FTU_QUEUE_TASKS | FTU_QUEUE_SPIN);
    test_gather_single();
    test_gather_threads();
    test_gather_wait();
    test_gather_drain_all();
    for (int lock_free = 0; lock_free <= 1; lock_free++) {
        test_gather_shared_pass_last_key(lock_free);
        for (int clear = 0; clear <= 1; clear++) {
            test_gather_shared_pass(clear, 0, lock_free);
            test_gather_shared_pass(clear, 1, lock_free);
        }
    }
    test_gather_advance();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
