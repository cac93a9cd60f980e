/*
 * Internal to the core (not part of the ABI): sleeping on a 32-bit word until another
 * thread changes it, the way a futex does, and a small lock for short critical sections.
 */
#ifndef FTU_WAIT_H
#define FTU_WAIT_H

#include <stdatomic.h>
#include <stdint.h>

/* Sleeps while *word == expected, until woken, the deadline passes or a signal arrives.
 * Returns FTU_OK (woken, or the word had already changed; callers re-check their
 * condition either way), FTU_TIMEOUT or FTU_INTERRUPTED. */
int ftu_word_wait(_Atomic uint32_t *word, uint32_t expected, int64_t deadline_ns);
/* Wakes up to count sleepers on word (count < 0: all). */
void ftu_word_wake(_Atomic uint32_t *word, int count);

/* Spins (about `spins` pause instructions, polling at growing intervals, then `yields`
 * sched_yield calls) until ready(arg) is
 * true or the budget is spent; returns that truth. Waiters do this before sleeping. */
int ftu_spin_until(int (*ready)(void *arg), void *arg, int spins, int yields);

/* A lock for a few instructions: test-and-test-and-set, spinning then yielding. It is
 * never held across a wait or a call out of the core. */
typedef struct {
    _Atomic int locked;
} ftu_spinlock;

void ftu_spinlock_lock_slow(ftu_spinlock *lock);

static inline void ftu_spinlock_lock(ftu_spinlock *lock) {
    int expected = 0;
    if (!atomic_compare_exchange_strong_explicit(&lock->locked, &expected, 1, memory_order_acquire,
                                                 memory_order_relaxed))
        ftu_spinlock_lock_slow(lock);
}

static inline void ftu_spinlock_unlock(ftu_spinlock *lock) {
    atomic_store_explicit(&lock->locked, 0, memory_order_release);
}

#endif /* FTU_WAIT_H */
