/*
 * A measurement of the machine, not of ft_utils: how long one CPU takes to get a cache
 * line that another CPU has just written. Every hand-off between threads (a queue's
 * item, a lock, a reference count) pays this at least once, so benchmarks print it next
 * to their figures: on a virtual machine it can change several-fold from one minute to
 * the next (the host moves the virtual CPUs between cores), and a run's threaded figures
 * follow it.
 *
 * Two threads pass a counter back and forth on a line of its own; each waits for the
 * other's increment and answers with its own. The time per increment is the one-way
 * transfer (plus a few nanoseconds of loop).
 */
#define _GNU_SOURCE
#include "ftu.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

/* Polls before a waiting side offers its CPU (and looks at the clock): where both threads
 * share one CPU, the other side runs only when this one yields. Many, so that the
 * scheduler sees two busy threads and gives them a CPU each. */
#define POLLS_BEFORE_YIELD 100000

struct ping_pong {
    _Alignas(64) _Atomic int64_t counter;
    _Alignas(64) int64_t hops;  /* read-only while the threads run */
    int64_t deadline_ns;
    _Atomic int stop;           /* set by the first side past the deadline */
};

/* Whether to give up: the other side did, or the budget is spent (then tells it). */
static int stopping(struct ping_pong *game) {
    if (atomic_load_explicit(&game->stop, memory_order_relaxed)) return 1;
    if (ftu_monotonic_ns() <= game->deadline_ns) return 0;
    atomic_store_explicit(&game->stop, 1, memory_order_relaxed);
    return 1;
}

/* Plays the side that answers even (first = 0) or odd (first = 1) values; returns the
 * last value it wrote. The even side notes when the odd one is up and running (its first
 * answer): timing starts there. The clock is read every 1024 hops and every
 * POLLS_BEFORE_YIELD polls of a wait. */
static int64_t play(struct ping_pong *game, int64_t first, int64_t *started_ns) {
    int64_t last = 0;
    for (int64_t mine = first; mine < game->hops; mine += 2) {
        for (unsigned polls = 1; atomic_load_explicit(&game->counter, memory_order_acquire) != mine; polls++) {
            if (polls % POLLS_BEFORE_YIELD == 0) {
                if (stopping(game)) return last;
                sched_yield();
            }
        }
        if (mine == 2 && started_ns != NULL) *started_ns = ftu_monotonic_ns();
        if (mine % 1024 < 2 && stopping(game)) return last;
        atomic_store_explicit(&game->counter, mine + 1, memory_order_release);
        last = mine + 1;
    }
    return last;
}

static void *answerer(void *arg) {
    play(arg, 1, NULL);
    return NULL;
}

int64_t ftu_probe_line_transfer_ns(int64_t hops, int64_t budget_ns) {
    if (hops < 4 || budget_ns <= 0) return -1;
    struct ping_pong game = {.hops = hops, .deadline_ns = ftu_monotonic_ns() + budget_ns};
    atomic_init(&game.counter, 0);
    atomic_init(&game.stop, 0);
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) return -1;
#if defined(__linux__)
    /* The answerer on another CPU than this thread's: a new thread often starts on its
     * creator's CPU, and two threads taking turns on one CPU would time thread switches. */
    cpu_set_t allowed;
    int here = sched_getcpu();
    if (here >= 0 && sched_getaffinity(0, sizeof allowed, &allowed) == 0) {
        for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
            if (cpu != here && CPU_ISSET(cpu, &allowed)) {
                cpu_set_t there;
                CPU_ZERO(&there);
                CPU_SET(cpu, &there);
                pthread_attr_setaffinity_np(&attr, sizeof there, &there);
                break;
            }
        }
    }
#endif
    pthread_t thread;
    int created = pthread_create(&thread, &attr, answerer, &game);
    pthread_attr_destroy(&attr);
    if (created != 0) return -1;
    int64_t started = 0;
    int64_t last = play(&game, 0, &started);
    int64_t elapsed = ftu_monotonic_ns() - started;
    atomic_store_explicit(&game.stop, 1, memory_order_relaxed); /* ends the answerer's last wait */
    pthread_join(thread, NULL);
    /* from the answerer's first answer (2) to this side's last (`last`) */
    return started > 0 && last > 2 ? elapsed / (last - 2) : -1;
}
