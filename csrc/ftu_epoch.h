/*
 * Epoch-based reclamation for the core's lock-free readers (internal to the core).
 *
 * A reader pins itself (ftu_epoch_enter) before it reads shared pointers and unpins
 * (ftu_epoch_leave) once it holds none of them any more. A writer that unlinks something
 * readers may still be looking at retires it with the stamp ftu_epoch_stamp() gives, and
 * frees it only once ftu_epoch_safe() says no reader can still reach it. The rules are
 * those of crossbeam's epochs: what was retired at epoch E is safe once the global epoch
 * is E + 2, and the global epoch moves on only when every pinned thread has seen the
 * current one. One shortcut on top: what was retired before a scan that found no other
 * thread pinned is safe at once (a thread that pins after the scan sees the unlink: the
 * scan and the pin are both ordered by a sequentially consistent fence). That is what
 * makes a single thread, or threads that take turns, release at once.
 *
 * Each thread gets a record the first time it pins; the records form a list that only
 * grows, and a record is handed to another thread once its own has exited. Pins nest.
 */
#ifndef FTU_EPOCH_H
#define FTU_EPOCH_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ftu_epoch_rec {
    _Alignas(64) _Atomic uint64_t epoch; /* the epoch pinned at, 0 when not pinned */
    uint64_t depth;                       /* nesting of the pins (its thread only) */
    _Atomic int in_use;                   /* a live thread owns it */
    struct ftu_epoch_rec *next;           /* the list of records; set before it is published */
} ftu_epoch_rec;

extern _Atomic uint64_t ftu_epoch_global;

/* The sequentially consistent fence the pins and the scans order themselves by. TSan does
 * not model fences (GCC refuses them under -fsanitize=thread), so there it is a
 * sequentially consistent read-modify-write of the global epoch, which TSan does model
 * and which orders the same way (at the price of a shared line: tests only). */
#if defined(__SANITIZE_THREAD__)
#define FTU_EPOCH_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FTU_EPOCH_TSAN 1
#endif
#endif
#ifdef FTU_EPOCH_TSAN
#define FTU_EPOCH_FENCE() ((void)atomic_fetch_add(&ftu_epoch_global, 0))
#endif
#ifndef FTU_EPOCH_FENCE
#define FTU_EPOCH_FENCE() atomic_thread_fence(memory_order_seq_cst)
#endif
extern _Atomic int64_t ftu_epoch_live; /* threads with a record */

#if defined(__GNUC__) && !defined(__APPLE__)
#define FTU_TLS __thread __attribute__((tls_model("initial-exec")))
#else
#define FTU_TLS _Thread_local
#endif
extern FTU_TLS ftu_epoch_rec *ftu_epoch_mine;

/* The calling thread's record, made on first use: NULL if that allocation failed. */
ftu_epoch_rec *ftu_epoch_attach(void);

/* Pins the calling thread: NULL (pinned nothing) only if its record could not be made. */
static inline ftu_epoch_rec *ftu_epoch_enter(void) {
    ftu_epoch_rec *rec = ftu_epoch_mine;
    if (rec == NULL && (rec = ftu_epoch_attach()) == NULL) return NULL;
    if (rec->depth++ == 0) {
        uint64_t epoch = atomic_load_explicit(&ftu_epoch_global, memory_order_relaxed);
#if defined(__x86_64__) && !defined(FTU_EPOCH_TSAN)
        /* xchg: the store and a full barrier in one instruction (cheaper than mov + mfence) */
        (void)atomic_exchange_explicit(&rec->epoch, epoch, memory_order_seq_cst);
#else
        atomic_store_explicit(&rec->epoch, epoch, memory_order_relaxed);
        FTU_EPOCH_FENCE();
#endif
    }
    return rec;
}

static inline void ftu_epoch_leave(ftu_epoch_rec *rec) {
    if (--rec->depth == 0) atomic_store_explicit(&rec->epoch, 0, memory_order_release);
}

/* The stamp of what the calling thread has just unlinked (call after the unlink). */
static inline uint64_t ftu_epoch_stamp(void) {
    FTU_EPOCH_FENCE();
    return atomic_load_explicit(&ftu_epoch_global, memory_order_relaxed);
}

/* What a scan found: the global epoch after it, and whether another thread was pinned. */
typedef struct ftu_epoch_view {
    uint64_t global;
    int others_pinned;
} ftu_epoch_view;

/* Looks at every record (moving the global epoch on when all pinned threads have seen
 * it). With no other live thread, answers without looking. */
ftu_epoch_view ftu_epoch_scan(void);

/* Whether no thread but the caller (if it has a record) can be pinned: a scan would not look. */
static inline int ftu_epoch_alone(void) {
    return atomic_load_explicit(&ftu_epoch_live, memory_order_relaxed) <= (ftu_epoch_mine != NULL);
}

/* Whether something retired with `stamp` before the scan that gave `view` may be freed.
 * The calling thread itself must hold no pointer to it. */
static inline int ftu_epoch_safe(ftu_epoch_view view, uint64_t stamp) {
    return !view.others_pinned || view.global >= stamp + 2;
}

/* In a child after fork(): the other threads are gone, and so are their pins. */
void ftu_epoch_after_fork_child(void);

#endif /* FTU_EPOCH_H */
