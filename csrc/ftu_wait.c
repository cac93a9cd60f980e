/*
 * Waiting: a futex on Linux; elsewhere a small parking lot of mutex + condition pairs
 * hashed by address (no signal interruption there: a wait ends at wake or deadline).
 */
#define _GNU_SOURCE
#include "ftu.h"
#include "ftu_fork.h"
#include "ftu_wait.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <time.h>

int64_t ftu_monotonic_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

int ftu_word_wait(_Atomic uint32_t *word, uint32_t expected, int64_t deadline_ns) {
    struct timespec deadline, *timeout = NULL;
    if (deadline_ns == FTU_NO_WAIT) return FTU_TIMEOUT;
    if (deadline_ns > 0) {
        if (ftu_monotonic_ns() >= deadline_ns) return FTU_TIMEOUT;
        deadline.tv_sec = deadline_ns / 1000000000;
        deadline.tv_nsec = deadline_ns % 1000000000;
        timeout = &deadline;
    }
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline. */
    long rc = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_BITSET_PRIVATE, expected, timeout, NULL,
                      FUTEX_BITSET_MATCH_ANY);
    if (rc == 0) return FTU_OK;
    switch (errno) {
    case ETIMEDOUT:
        return FTU_TIMEOUT;
    case EINTR:
        return FTU_INTERRUPTED;
    default: /* EAGAIN: the word had already changed */
        return FTU_OK;
    }
}

void ftu_word_wake(_Atomic uint32_t *word, int count) {
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, count < 0 ? INT_MAX : count, NULL, NULL, 0);
}

/* A futex is a word of the waiter's own memory: nothing of the kernel's to set right. */
void ftu_wait_before_fork(void) {}
void ftu_wait_after_fork_parent(void) {}
void ftu_wait_after_fork_child(void) {}

#else /* portable fallback */
#include <pthread.h>

#define BUCKETS 64

static struct bucket {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
} buckets[BUCKETS];
static pthread_once_t buckets_once = PTHREAD_ONCE_INIT;

static void buckets_init(void) {
    for (int i = 0; i < BUCKETS; i++) {
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_mutex_init(&buckets[i].mutex, NULL);
        pthread_cond_init(&buckets[i].cond, &attr);
        pthread_condattr_destroy(&attr);
    }
}

static struct bucket *bucket_of(void *address) {
    pthread_once(&buckets_once, buckets_init);
    return &buckets[((uintptr_t)address >> 3) % BUCKETS];
}

int ftu_word_wait(_Atomic uint32_t *word, uint32_t expected, int64_t deadline_ns) {
    if (deadline_ns == FTU_NO_WAIT || (deadline_ns > 0 && ftu_monotonic_ns() >= deadline_ns)) return FTU_TIMEOUT;
    struct bucket *b = bucket_of(word);
    int result = FTU_OK;
    pthread_mutex_lock(&b->mutex);
    if (atomic_load(word) == expected) {
        if (deadline_ns < 0) {
            pthread_cond_wait(&b->cond, &b->mutex);
        } else {
            struct timespec deadline = {deadline_ns / 1000000000, deadline_ns % 1000000000};
            if (pthread_cond_timedwait(&b->cond, &b->mutex, &deadline) == ETIMEDOUT) result = FTU_TIMEOUT;
        }
    }
    pthread_mutex_unlock(&b->mutex);
    return result;
}

void ftu_word_wake(_Atomic uint32_t *word, int count) {
    (void)count; /* buckets are shared: wake everyone on this one, they re-check */
    struct bucket *b = bucket_of(word);
    pthread_mutex_lock(&b->mutex);
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->mutex);
}

/* A bucket's mutex may be held by a waker when another thread forks: all are taken
 * before fork(). In the child the buckets start afresh (their condition variables may
 * count waiters that the child does not have). */
void ftu_wait_before_fork(void) {
    pthread_once(&buckets_once, buckets_init);
    for (int i = 0; i < BUCKETS; i++) pthread_mutex_lock(&buckets[i].mutex);
}

void ftu_wait_after_fork_parent(void) {
    for (int i = BUCKETS - 1; i >= 0; i--) pthread_mutex_unlock(&buckets[i].mutex);
}

void ftu_wait_after_fork_child(void) { buckets_init(); }
#endif

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Longest run of pause instructions between two polls of a spin (a pause takes 10-40 ns
 * on current x86 CPUs). */
#define SPIN_GAP_MAX 64

int ftu_spin_until(int (*ready)(void *arg), void *arg, int spins, int yields) {
    /* Poll at growing intervals. A poll reads lines the awaited thread is writing and
     * takes them away from its CPU, so back-to-back polls would slow down the very
     * thread being waited for: a producer would pay a cache miss on every push. */
    int gap = 1;
    for (int spent = 0; spent < spins; spent += gap) {
        if (ready(arg)) return 1;
        for (int i = 0; i < gap; i++) cpu_relax();
        if (gap < SPIN_GAP_MAX) {
            gap *= 2;
        } else {
            /* Past the first microseconds, offer the CPU between polls: with more
             * threads than CPUs, the thread being waited for may be one waiting for
             * this CPU (where nothing else is runnable, the yield returns at once).
             * Lock-free 2+2 threads on 2 CPUs, medians of 164 interleaved rounds:
             * 14.57 -> 15.38 M items/s, and 3.23 -> 5.23 when moving a cache line
             * between the CPUs is slow; 2 threads unchanged. */
            sched_yield();
        }
    }
    for (int i = 0; i < yields; i++) {
        if (ready(arg)) return 1;
        sched_yield();
    }
    return ready(arg);
}

#define SPINLOCK_POLLS 10

void ftu_spinlock_lock_slow(ftu_spinlock *lock) {
    for (unsigned spins = 0;; spins++) {
        if (atomic_load_explicit(&lock->locked, memory_order_relaxed) == 0) {
            int expected = 0;
            if (atomic_compare_exchange_weak_explicit(&lock->locked, &expected, 1, memory_order_acquire,
                                                      memory_order_relaxed))
                return;
        }
        /* Only a few polls before yielding: the locks are held for a handful of
         * instructions, so a holder that does not let go by then is most likely
         * preempted, and each poll takes the lock's line away from the holder's CPU,
         * which makes its unlock (and its next lock) wait for the line to come back.
         * (With 100 polls, 2 producers and 2 consumers moved 6-11% fewer items per
         * second, medians of interleaved runs of the three queue kinds.) */
        if (spins < SPINLOCK_POLLS) {
            cpu_relax();
        } else {
            sched_yield(); /* the holder may have been preempted */
        }
    }
}
