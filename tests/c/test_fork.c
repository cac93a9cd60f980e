/*
 * The core's objects in the child of a fork() (csrc/ftu_fork.c).
 *
 * fork() copies only the calling thread: a lock another thread held at that moment would
 * stay held in the child, and a count of waiting or watching threads would count threads
 * that are not there. Three tests:
 *  - threads push, pop (with waits), insert and take without pause while the main thread
 *    forks again and again: each child uses every object (a lock left held hangs it; an
 *    alarm then kills it, which the parent reports);
 *  - a consumer held between its two reads of the head slot (a watcher, see ftu_queue.c)
 *    at the fork: the child's queue must still free the segments it empties;
 *  - threads asleep in every wait at the fork: the child's waits and wake-ups work.
 *
 * Prints "N passed, N failed" and exits non-zero on any failure.
 */
#define _POSIX_C_SOURCE 200809L
#include "ftu.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define MS INT64_C(1000000)
#define FORKS 300

/* ThreadSanitizer refuses to start threads in the child of a multi-threaded process:
 * there the children skip the checks that need a thread of their own (a wait woken). */
#if defined(__SANITIZE_THREAD__)
#define CHILD_THREADS 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CHILD_THREADS 0
#endif
#endif
#ifndef CHILD_THREADS
#define CHILD_THREADS 1
#endif
/* Nor do the children of a fork taken while threads hammer the objects run under it: GCC
 * 12's TSan runtime can deadlock there on its own lock (a child's free() spins for ever in
 * __tsan::DenseSlabAlloc::Drain on a slab lock another thread held at the fork; seen in 16
 * children of 60 runs, all with that stack). The plain and ASan builds run that test. */
#define FORK_WHILE_HAMMERING CHILD_THREADS
#define CHILD_ALARM_S 20

static void sleep_ms(int ms) {
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* In the child: a failed expectation ends it with status 1. */
#define EXPECT(cond, ...)                                              \
    do {                                                               \
        if (!(cond)) {                                                 \
            fprintf(stderr, "child FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                              \
            fputc('\n', stderr);                                       \
            _exit(1);                                                  \
        }                                                              \
    } while (0)

/* Waits for the child; returns a description of its failure, or NULL. */
static const char *child_outcome(pid_t pid, char *buffer, size_t size) {
    int status;
    if (waitpid(pid, &status, 0) != pid) return "waitpid failed";
    if (WIFSIGNALED(status)) {
        snprintf(buffer, size, "the child was killed by signal %d%s", WTERMSIG(status),
                 WTERMSIG(status) == SIGALRM ? " (its alarm: it hung)" : "");
        return buffer;
    }
    if (WEXITSTATUS(status) != 0) {
        snprintf(buffer, size, "the child exited with %d", WEXITSTATUS(status));
        return buffer;
    }
    return NULL;
}

/* ---- what every child does with a queue and a gatherer ------------------------------- */

struct pop_arg {
    ftu_queue *q;
    uint64_t word;
    int status;
};

static void *pop_forever(void *arg) {
    struct pop_arg *p = arg;
    p->status = ftu_queue_pop(p->q, &p->word, FTU_WAIT_FOREVER);
    return NULL;
}

/* Drains q, then: FIFO through a few segments, a timed pop on empty, a pop asleep in the
 * child woken by a push in the child. */
static void child_uses_queue(ftu_queue *q) {
    uint64_t w;
    while (ftu_queue_pop(q, &w, FTU_NO_WAIT) == FTU_OK) {
    }
    EXPECT(ftu_queue_size(q) == 0, "size after draining: %" PRId64, ftu_queue_size(q));
    uint64_t chunk = ftu_queue_capacity(q) > 0 ? (uint64_t)ftu_queue_capacity(q) : 3000; /* in, then out */
    for (uint64_t first = 1; first <= 3000; first += chunk) {
        for (uint64_t i = first; i < first + chunk; i++) EXPECT(ftu_queue_push(q, i, FTU_NO_WAIT) == FTU_OK, "push %" PRIu64, i);
        for (uint64_t i = first; i < first + chunk; i++)
            EXPECT(ftu_queue_pop(q, &w, FTU_NO_WAIT) == FTU_OK && w == i, "pop %" PRIu64, i);
    }
    EXPECT(ftu_queue_pop(q, &w, ftu_monotonic_ns() + MS) == FTU_TIMEOUT, "timed pop on empty");
    if (!CHILD_THREADS) return;
    struct pop_arg p = {q, 0, -1};
    pthread_t t;
    pthread_create(&t, NULL, pop_forever, &p);
    sleep_ms(5);
    EXPECT(ftu_queue_push(q, 42, FTU_NO_WAIT) == FTU_OK, "push to wake");
    pthread_join(t, NULL); /* the alarm ends a child whose pop is never woken */
    EXPECT(p.status == FTU_OK && p.word == 42, "woken pop: %d %" PRIu64, p.status, p.word);
}

struct take_arg {
    ftu_gather *g;
    int64_t key;
    uint64_t word;
    int status;
};

static void *take_forever(void *arg) {
    struct take_arg *t = arg;
    t->status = ftu_gather_take(t->g, t->key, 1, &t->word, FTU_WAIT_FOREVER);
    return NULL;
}

/* Keys from `base` on are the child's: inserts (growing the table), takes, a take asleep
 * in the child woken by an insert in the child. */
static void child_uses_gatherer(ftu_gather *g, int64_t base) {
    uint64_t w;
    for (int64_t k = base; k < base + 300; k++) EXPECT(ftu_gather_insert(g, k, (uint64_t)k) == FTU_OK, "insert");
    for (int64_t k = base; k < base + 300; k++)
        EXPECT(ftu_gather_take(g, k, 1, &w, FTU_NO_WAIT) == FTU_OK && w == (uint64_t)k, "take %" PRId64, k);
    if (!CHILD_THREADS) return;
    struct take_arg t = {g, base + 1000, 0, -1};
    pthread_t thread;
    pthread_create(&thread, NULL, take_forever, &t);
    sleep_ms(5);
    EXPECT(ftu_gather_insert(g, base + 1000, 7) == FTU_OK, "insert to wake");
    pthread_join(thread, NULL);
    EXPECT(t.status == FTU_OK && t.word == 7, "woken take: %d", t.status);
}

/* ---- forks while threads hammer -------------------------------------------------------- */

struct hammered {
    ftu_queue *q, *spin, *bounded;
    ftu_gather *g;
    _Atomic int stop;
    _Atomic int64_t next_key;
};

static void *hammer_push(void *arg) {
    struct hammered *h = arg;
    for (uint64_t i = 1; !atomic_load(&h->stop); i++) {
        ftu_queue_push(h->q, i, FTU_NO_WAIT);
        ftu_queue_push(h->spin, i, FTU_NO_WAIT);
        ftu_queue_push(h->bounded, i, ftu_monotonic_ns() + MS / 10);
        if (ftu_queue_size(h->q) > 5000) sleep_ms(1);
    }
    return NULL;
}

static void *hammer_pop(void *arg) {
    struct hammered *h = arg;
    uint64_t w;
    while (!atomic_load(&h->stop)) {
        ftu_queue_pop(h->q, &w, ftu_monotonic_ns() + MS / 10);
        ftu_queue_pop(h->spin, &w, ftu_monotonic_ns() + MS / 10);
        ftu_queue_pop(h->bounded, &w, ftu_monotonic_ns() + MS / 10);
    }
    return NULL;
}

static void *hammer_gather(void *arg) {
    struct hammered *h = arg;
    uint64_t w;
    while (!atomic_load(&h->stop)) {
        int64_t k = atomic_fetch_add(&h->next_key, 1);
        ftu_gather_insert(h->g, k, (uint64_t)k);
        ftu_gather_take(h->g, k, 1, &w, FTU_NO_WAIT);
        ftu_gather_take(h->g, k + 1, 0, &w, ftu_monotonic_ns() + MS / 10);
    }
    return NULL;
}

static void test_fork_while_threads_hammer(void) {
    if (!FORK_WHILE_HAMMERING) {
        printf("skipped under ThreadSanitizer: forks while threads hammer (see FORK_WHILE_HAMMERING)\n");
        return;
    }
    struct hammered h = {ftu_queue_new(0, 0), ftu_queue_new(0, FTU_QUEUE_SPIN), ftu_queue_new(16, FTU_QUEUE_TASKS),
                         ftu_gather_new(), 0, 0};
    void *(*bodies[])(void *) = {hammer_push, hammer_push, hammer_pop, hammer_pop, hammer_gather, hammer_gather};
    enum { THREADS = sizeof bodies / sizeof bodies[0] };
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&threads[i], NULL, bodies[i], &h);
    sleep_ms(20);
    int ok = 0;
    char why[128];
    const char *failure = NULL;
    for (int i = 0; i < FORKS && failure == NULL; i++) {
        sleep_ms(rand() % 3);
        pid_t pid = fork();
        if (pid == 0) {
            alarm(CHILD_ALARM_S);
            child_uses_queue(h.q);
            child_uses_queue(h.spin);
            child_uses_queue(h.bounded);
            child_uses_gatherer(h.g, INT64_C(1) << 40);
            _exit(0);
        }
        failure = pid < 0 ? "fork failed" : child_outcome(pid, why, sizeof why);
        if (failure == NULL) ok++;
    }
    CHECK(failure == NULL, "fork %d of %d: %s", ok, FORKS, failure);
    atomic_store(&h.stop, 1);
    for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);
    ftu_queue_free(h.q);
    ftu_queue_free(h.spin);
    ftu_queue_free(h.bounded);
    ftu_gather_free(h.g);
}

/* ---- a watcher at the fork ------------------------------------------------------------- */

extern void (*ftu_test_watch_hook)(void);
extern _Atomic long ftu_test_queue_segments;

static pid_t parent_pid;
static _Atomic int watcher_held, release_watcher;

/* Holds the parent's watching consumer until released; does nothing in the child. */
static void hold_watcher_in_parent(void) {
    if (getpid() != parent_pid) return;
    atomic_store(&watcher_held, 1);
    while (!atomic_load(&release_watcher)) sleep_ms(1);
}

static void test_fork_while_a_consumer_watches(void) {
    ftu_queue *q = ftu_queue_new(0, FTU_QUEUE_SPIN);
    parent_pid = getpid();
    ftu_test_watch_hook = hold_watcher_in_parent;
    struct pop_arg p = {q, 0, -1};
    pthread_t t;
    pthread_create(&t, NULL, pop_forever, &p);
    while (!atomic_load(&watcher_held)) sleep_ms(1);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(CHILD_ALARM_S);
        /* 100 segments in, then out: the emptied ones must be freed (or kept for reuse,
         * a few), which takes the epoch moving on, which a watcher counted in the parent
         * would stop for ever. */
        long before = atomic_load(&ftu_test_queue_segments);
        uint64_t w;
        for (uint64_t i = 1; i <= 100 * 1022; i++) EXPECT(ftu_queue_push(q, i, FTU_NO_WAIT) == FTU_OK, "push");
        long most = atomic_load(&ftu_test_queue_segments);
        for (uint64_t i = 1; i <= 100 * 1022; i++) EXPECT(ftu_queue_pop(q, &w, FTU_NO_WAIT) == FTU_OK && w == i, "pop");
        /* a few waits with timeouts: watchers that come and go, letting reclamation on */
        for (int i = 0; i < 4; i++) EXPECT(ftu_queue_pop(q, &w, ftu_monotonic_ns() + MS) == FTU_TIMEOUT, "timed pop");
        long after = atomic_load(&ftu_test_queue_segments);
        EXPECT(most - before >= 99, "the pushes took %ld segments", most - before);
        EXPECT(after - before <= 4, "segments still held after emptying the queue: %ld of %ld", after - before,
               most - before);
        _exit(0);
    }
    char why[128];
    const char *failure = pid < 0 ? "fork failed" : child_outcome(pid, why, sizeof why);
    CHECK(failure == NULL, "a watcher at the fork: %s", failure);
    atomic_store(&release_watcher, 1);
    ftu_queue_push(q, 1, FTU_NO_WAIT);
    pthread_join(t, NULL);
    ftu_test_watch_hook = NULL;
    CHECK(p.status == FTU_OK && p.word == 1, "the parent's watcher got its word");
    ftu_queue_free(q);
}

/* ---- threads asleep in every wait at the fork ------------------------------------------ */

static void *push_forever(void *arg) {
    struct pop_arg *p = arg;
    p->status = ftu_queue_push(p->q, p->word, FTU_WAIT_FOREVER);
    return NULL;
}

static void *join_forever(void *arg) {
    struct pop_arg *p = arg;
    p->status = ftu_queue_join(p->q, FTU_WAIT_FOREVER);
    return NULL;
}

static void test_fork_while_threads_wait(void) {
    ftu_queue *empty = ftu_queue_new(0, 0), *spin = ftu_queue_new(0, FTU_QUEUE_SPIN);
    ftu_queue *full = ftu_queue_new(1, FTU_QUEUE_TASKS);
    ftu_gather *g = ftu_gather_new();
    ftu_queue_push(full, 5, FTU_NO_WAIT); /* full, and one unfinished task */
    struct pop_arg args[] = {{empty, 0, -1}, {empty, 0, -1}, {spin, 0, -1}, {full, 6, -1}, {full, 0, -1}};
    void *(*bodies[])(void *) = {pop_forever, pop_forever, pop_forever, push_forever, join_forever};
    struct take_arg takes[] = {{g, 0, 0, -1}, {g, 3, 0, -1}};
    pthread_t threads[5], takers[2];
    for (int i = 0; i < 5; i++) pthread_create(&threads[i], NULL, bodies[i], &args[i]);
    for (int i = 0; i < 2; i++) pthread_create(&takers[i], NULL, take_forever, &takes[i]);
    sleep_ms(50); /* asleep by now */
    pid_t pid = fork();
    if (pid == 0) {
        alarm(CHILD_ALARM_S);
        child_uses_queue(empty);
        child_uses_queue(spin);
        uint64_t w;
        EXPECT(ftu_queue_push(full, 7, FTU_NO_WAIT) == FTU_TIMEOUT, "the full queue is full");
        EXPECT(ftu_queue_pop(full, &w, FTU_NO_WAIT) == FTU_OK && w == 5, "the full queue's word");
        EXPECT(ftu_queue_push(full, 7, FTU_NO_WAIT) == FTU_OK, "room after a pop");
        EXPECT(ftu_queue_pop(full, &w, FTU_NO_WAIT) == FTU_OK && w == 7, "and out");
        EXPECT(ftu_queue_task_done(full) == FTU_OK && ftu_queue_task_done(full) == FTU_OK, "task_done");
        EXPECT(ftu_queue_join(full, FTU_NO_WAIT) == FTU_OK, "join with no task unfinished");
        child_uses_queue(full); /* a bounded queue: at most 1 in; its own checks */
        child_uses_gatherer(g, 10);
        _exit(0);
    }
    char why[128];
    const char *failure = pid < 0 ? "fork failed" : child_outcome(pid, why, sizeof why);
    CHECK(failure == NULL, "threads asleep at the fork: %s", failure);
    ftu_queue_shutdown(empty, 1);
    ftu_queue_shutdown(spin, 1);
    uint64_t w;
    ftu_queue_pop(full, &w, FTU_NO_WAIT); /* lets the push in */
    ftu_queue_pop(full, &w, FTU_WAIT_FOREVER);
    ftu_queue_task_done(full);
    ftu_queue_task_done(full);
    ftu_gather_insert(g, 0, 0);
    ftu_gather_insert(g, 3, 3);
    for (int i = 0; i < 5; i++) pthread_join(threads[i], NULL);
    for (int i = 0; i < 2; i++) pthread_join(takers[i], NULL);
    CHECK(args[3].status == FTU_OK && args[4].status == FTU_OK, "the parent's push and join ended");
    CHECK(takes[0].status == FTU_OK && takes[1].status == FTU_OK, "the parent's takes ended");
    ftu_queue_free(empty);
    ftu_queue_free(spin);
    ftu_queue_free(full);
    ftu_gather_free(g);
}

int main(void) {
    srand((unsigned)time(NULL));
    test_fork_while_threads_wait();
    test_fork_while_a_consumer_watches();
    test_fork_while_threads_hammer();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
