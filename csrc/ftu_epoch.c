/* Epoch-based reclamation: the thread records and the scan (see ftu_epoch.h). */
#include "ftu_epoch.h"

#include <pthread.h>
#include <stddef.h>

#include "ftu_fork.h"
#include "ftu_memory.h"

_Atomic uint64_t ftu_epoch_global = 1;
FTU_TLS ftu_epoch_rec *ftu_epoch_mine;

static _Atomic(ftu_epoch_rec *) records;  /* the list; records are never freed */
_Atomic int64_t ftu_epoch_live; /* records in use */
static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;
static int exit_key_made;

/* At a thread's exit: its record goes back to the pool. */
static void on_thread_exit(void *arg) {
    ftu_epoch_rec *rec = arg;
    rec->depth = 0;
    atomic_store_explicit(&rec->epoch, 0, memory_order_release);
    atomic_fetch_sub(&ftu_epoch_live, 1);
    atomic_store_explicit(&rec->in_use, 0, memory_order_release);
}

static void make_exit_key(void) { exit_key_made = pthread_key_create(&exit_key, on_thread_exit) == 0; }

ftu_epoch_rec *ftu_epoch_attach(void) {
    ftu_fork_install(); /* a child must forget the pins of the threads it did not inherit */
    pthread_once(&exit_key_once, make_exit_key);
    if (!exit_key_made) return NULL;
    ftu_epoch_rec *rec;
    for (rec = atomic_load_explicit(&records, memory_order_acquire); rec != NULL; rec = rec->next) {
        int free_one = 0;
        if (atomic_load_explicit(&rec->in_use, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong(&rec->in_use, &free_one, 1))
            break;
    }
    int made = rec == NULL;
    if (made) {
        rec = ftu_aligned_alloc(64, sizeof *rec);
        if (rec == NULL) return NULL;
        atomic_init(&rec->epoch, 0);
        rec->depth = 0;
        atomic_init(&rec->in_use, 1);
    }
    if (pthread_setspecific(exit_key, rec) != 0) {
        if (made) {
            free(rec);
        } else {
            atomic_store_explicit(&rec->in_use, 0, memory_order_release);
        }
        return NULL;
    }
    /* Counted before it is published and before its first pin: a writer that finds one
     * live thread (itself) may free at once, and this thread's reads then come later. */
    atomic_fetch_add(&ftu_epoch_live, 1);
    if (made) {
        ftu_epoch_rec *head = atomic_load_explicit(&records, memory_order_relaxed);
        do {
            rec->next = head;
        } while (!atomic_compare_exchange_weak_explicit(&records, &head, rec, memory_order_release,
                                                        memory_order_relaxed));
    }
    ftu_epoch_mine = rec;
    return rec;
}

ftu_epoch_view ftu_epoch_scan(void) {
    ftu_epoch_view view;
    FTU_EPOCH_FENCE();
    uint64_t global = atomic_load_explicit(&ftu_epoch_global, memory_order_relaxed);
    view.global = global;
    view.others_pinned = 0;
    if (atomic_load_explicit(&ftu_epoch_live, memory_order_relaxed) <= (ftu_epoch_mine != NULL)) return view;
    int all_seen = 1;
    for (ftu_epoch_rec *rec = atomic_load_explicit(&records, memory_order_acquire); rec != NULL; rec = rec->next) {
        uint64_t pinned = atomic_load_explicit(&rec->epoch, memory_order_acquire);
        if (pinned == 0) continue;
        if (rec != ftu_epoch_mine) view.others_pinned = 1;
        if (pinned != global) all_seen = 0;
    }
    /* On failure the compare-exchange leaves in `global` the epoch another thread moved
     * it to: that is the global epoch now, as good a view as ours. */
    if (all_seen && atomic_compare_exchange_strong(&ftu_epoch_global, &global, global + 1)) global++;
    view.global = global;
    return view;
}

void ftu_epoch_after_fork_child(void) {
    int64_t live = 0;
    for (ftu_epoch_rec *rec = atomic_load_explicit(&records, memory_order_acquire); rec != NULL; rec = rec->next) {
        if (rec == ftu_epoch_mine) {
            live = 1;
            continue;
        }
        rec->depth = 0;
        atomic_store_explicit(&rec->epoch, 0, memory_order_relaxed);
        atomic_store_explicit(&rec->in_use, 0, memory_order_relaxed);
    }
    atomic_store_explicit(&ftu_epoch_live, live, memory_order_relaxed);
}
