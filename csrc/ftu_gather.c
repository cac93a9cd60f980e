/*
 * The gatherer: words inserted under integer keys by any thread, taken by key.
 *
 * An open-addressing hash table (linear probing, tombstones) under one short lock; the
 * lock is never held while waiting. A take that finds its key missing sleeps on
 * `signal`. To spare inserters a wake-up system call per word, the waiter announces the
 * key it waits for in `wanted`; an insert wakes only for that key. When two waiters
 * ever overlap, `wanted` becomes ANY for good and every insert with a waiter wakes.
 *
 * Waiting apart from taking (ftu_gather_wait): the waiter reads the key it waits for from
 * a cell that other threads may advance (threads sharing one pass over the keys); whoever
 * advances it calls ftu_gather_notify, which wakes every waiter to re-read its cell.
 */
#include "ftu.h"
#include "ftu_fork.h"
#include "ftu_memory.h"
#include "ftu_wait.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define NONE (-1)
#define ANY (-2)
#define EMPTY_SLOT (-1) /* keys are >= 0 */
#define TOMBSTONE (-2)

struct entry {
    int64_t key; /* EMPTY_SLOT, TOMBSTONE or a key */
    uint64_t word;
};

struct ftu_gather {
    ftu_spinlock lock;
    struct entry *table;
    int64_t capacity; /* a power of two */
    int64_t used;     /* keys present */
    int64_t filled;   /* keys present + tombstones */
    _Atomic int failed;
    _Atomic int64_t size;
    _Atomic int64_t wanted;
    _Atomic uint32_t signal;
    _Atomic uint32_t waiting;
    int64_t drain_from; /* where ftu_gather_drain looks first (under the lock) */
    struct ftu_fork_node fork_node; /* on the list of live objects (see ftu_fork.h) */
};

#define CELL(cell) ((_Atomic int64_t *)(cell))

static struct entry *table_new(int64_t capacity) {
    struct entry *table = ftu_malloc((size_t)capacity * sizeof(struct entry));
    if (table != NULL) {
        for (int64_t i = 0; i < capacity; i++) table[i].key = EMPTY_SLOT;
    }
    return table;
}

/* ---- fork (see ftu_fork.h) ------------------------------------------------------------ */

static ftu_gather *gather_of_node(struct ftu_fork_node *node) {
    return (ftu_gather *)((char *)node - offsetof(ftu_gather, fork_node));
}

static void gather_lock_for_fork(struct ftu_fork_node *node) { ftu_spinlock_lock(&gather_of_node(node)->lock); }

static void gather_unlock_parent(struct ftu_fork_node *node) { ftu_spinlock_unlock(&gather_of_node(node)->lock); }

/* In the child no thread waits: the key a parent's waiter announced would make every
 * later waiter announce ANY, and its count a needless wake-up call per insert. */
static void gather_unlock_child(struct ftu_fork_node *node) {
    ftu_gather *g = gather_of_node(node);
    atomic_store(&g->waiting, 0);
    atomic_store(&g->wanted, NONE);
    gather_unlock_parent(node);
}

static const struct ftu_fork_ops gather_fork_ops = {gather_lock_for_fork, gather_unlock_parent, gather_unlock_child};

ftu_gather *ftu_gather_new(void) {
    ftu_gather *g = ftu_calloc(1, sizeof(ftu_gather));
    if (g == NULL) return NULL;
    g->capacity = 64;
    g->table = table_new(g->capacity);
    if (g->table == NULL) {
        free(g);
        return NULL;
    }
    atomic_init(&g->wanted, NONE);
    ftu_fork_track(&g->fork_node, &gather_fork_ops);
    return g;
}

void ftu_gather_free(ftu_gather *g) {
    if (g == NULL) return;
    ftu_fork_forget(&g->fork_node);
    free(g->table);
    free(g);
}

static inline uint64_t mix(int64_t key) { return (uint64_t)key * UINT64_C(0x9E3779B97F4A7C15); }

/* Index of key's entry, or -1. Under the lock. */
static int64_t find(ftu_gather *g, int64_t key) {
    int64_t mask = g->capacity - 1;
    for (int64_t i = (int64_t)(mix(key) >> 32) & mask;; i = (i + 1) & mask) {
        if (g->table[i].key == key) return i;
        if (g->table[i].key == EMPTY_SLOT) return -1;
    }
}

/* Rebuilds the table with room to grow, dropping tombstones. Under the lock. */
static int grow(ftu_gather *g) {
    int64_t capacity = g->capacity;
    while (g->used * 2 >= capacity) capacity *= 2;
    struct entry *table = table_new(capacity), *old = g->table;
    if (table == NULL) return FTU_NO_MEMORY;
    for (int64_t i = 0; i < g->capacity; i++) {
        if (old[i].key < 0) continue;
        int64_t j = (int64_t)(mix(old[i].key) >> 32) & (capacity - 1);
        while (table[j].key != EMPTY_SLOT) j = (j + 1) & (capacity - 1);
        table[j] = old[i];
    }
    free(old);
    g->table = table;
    g->capacity = capacity;
    g->filled = g->used;
    return FTU_OK;
}

int ftu_gather_insert(ftu_gather *g, int64_t key, uint64_t word) {
    if (key < 0) return FTU_DUPLICATE; /* not a valid key; callers check first */
    ftu_spinlock_lock(&g->lock);
    int result = FTU_OK;
    if (find(g, key) >= 0) {
        result = FTU_DUPLICATE;
    } else if ((g->filled + 1) * 4 > g->capacity * 3 && (result = grow(g)) != FTU_OK) {
        /* out of memory: nothing changed */
    } else {
        int64_t mask = g->capacity - 1, i = (int64_t)(mix(key) >> 32) & mask;
        while (g->table[i].key >= 0) i = (i + 1) & mask; /* first empty or tombstone */
        if (g->table[i].key == EMPTY_SLOT) g->filled++;
        g->table[i].key = key;
        g->table[i].word = word;
        g->used++;
        atomic_fetch_add(&g->size, 1);
    }
    ftu_spinlock_unlock(&g->lock);
    if (result == FTU_OK && atomic_load(&g->waiting) > 0) {
        int64_t wanted = atomic_load(&g->wanted);
        if (wanted == key || wanted == ANY) {
            atomic_fetch_add(&g->signal, 1);
            ftu_word_wake(&g->signal, -1);
        }
    }
    return result;
}

/* 1 and *word set if key is there (removed if clear), 0 if not. */
/* Under the lock: removes the key in slot i. */
static void remove_slot(ftu_gather *g, int64_t i) {
    g->table[i].key = TOMBSTONE;
    g->used--;
    atomic_fetch_sub(&g->size, 1);
}

static int try_take(ftu_gather *g, int64_t key, int clear, uint64_t *word) {
    ftu_spinlock_lock(&g->lock);
    int64_t i = find(g, key);
    if (i >= 0) {
        *word = g->table[i].word;
        if (clear) remove_slot(g, i);
    }
    ftu_spinlock_unlock(&g->lock);
    return i >= 0;
}

static int present(ftu_gather *g, int64_t key) {
    ftu_spinlock_lock(&g->lock);
    int found = find(g, key) >= 0;
    ftu_spinlock_unlock(&g->lock);
    return found;
}

/* Sleeps once until key may be present, the gatherer failed, or (cell not NULL) *cell no
 * longer holds key: FTU_OK (re-check), FTU_TIMEOUT or FTU_INTERRUPTED. */
static int sleep_for_key(ftu_gather *g, const int64_t *cell, int64_t key, int64_t deadline_ns) {
    if (key < 0) return FTU_OK; /* nothing to wait for */
    int64_t none = NONE;
    if (!atomic_compare_exchange_strong(&g->wanted, &none, key)) atomic_store(&g->wanted, ANY);
    uint32_t seen = atomic_load(&g->signal);
    atomic_fetch_add(&g->waiting, 1);
    /* Re-checked after announcing: an insert, a failure or a moved cell from now on
     * bumps `signal` (all sequentially consistent), so the wait below cannot miss it. */
    int result = FTU_OK;
    if (!present(g, key) && !atomic_load(&g->failed) && (cell == NULL || atomic_load(CELL(cell)) == key))
        result = ftu_word_wait(&g->signal, seen, deadline_ns);
    atomic_fetch_sub(&g->waiting, 1);
    int64_t mine = key;
    atomic_compare_exchange_strong(&g->wanted, &mine, NONE);
    return result;
}

int ftu_gather_wait(ftu_gather *g, const int64_t *key_cell, int64_t max_key, int64_t deadline_ns) {
    for (;;) {
        if (atomic_load(&g->failed)) return FTU_FAILED;
        int64_t key = atomic_load(CELL(key_cell));
        /* Past max_key: the pass is over, however the cell got there (another thread may
         * have taken the last key between this thread's take and its wait). */
        if (key < 0 || key > max_key || present(g, key)) return FTU_OK;
        if (deadline_ns == FTU_NO_WAIT) return FTU_TIMEOUT;
        int result = sleep_for_key(g, key_cell, key, deadline_ns);
        if (atomic_load(&g->failed)) return FTU_FAILED;
        if (atomic_load(CELL(key_cell)) != key || present(g, key)) return FTU_OK;
        if (result != FTU_OK) return result;
    }
}

int ftu_gather_advance(ftu_gather *g, int64_t *key_cell, int64_t key, uint64_t word, int clear) {
    if (atomic_load(&g->failed)) return FTU_FAILED;
    int taken = 0;
    ftu_spinlock_lock(&g->lock);
    if (atomic_load(CELL(key_cell)) == key) {
        int64_t i = find(g, key);
        if (i >= 0 && g->table[i].word == word) {
            if (clear) remove_slot(g, i);
            atomic_store(CELL(key_cell), key + 1);
            taken = 1;
        }
    }
    ftu_spinlock_unlock(&g->lock);
    if (!taken) return atomic_load(&g->failed) ? FTU_FAILED : FTU_TIMEOUT;
    ftu_gather_notify(g); /* threads sharing the pass re-read the cell */
    return FTU_OK;
}

void ftu_gather_notify(ftu_gather *g) {
    if (atomic_load(&g->waiting) > 0) {
        atomic_fetch_add(&g->signal, 1);
        ftu_word_wake(&g->signal, -1);
    }
}

int ftu_gather_take(ftu_gather *g, int64_t key, int clear, uint64_t *word, int64_t deadline_ns) {
    for (;;) {
        if (atomic_load(&g->failed)) return FTU_FAILED;
        if (try_take(g, key, clear, word)) return FTU_OK;
        if (deadline_ns == FTU_NO_WAIT) return FTU_TIMEOUT;
        int result = sleep_for_key(g, NULL, key, deadline_ns);
        if (result != FTU_OK) {
            if (!atomic_load(&g->failed) && try_take(g, key, clear, word)) return FTU_OK;
            return atomic_load(&g->failed) ? FTU_FAILED : result;
        }
    }
}

void ftu_gather_fail(ftu_gather *g) {
    atomic_store(&g->failed, 1);
    atomic_fetch_add(&g->signal, 1);
    ftu_word_wake(&g->signal, -1);
}

int ftu_gather_failed(ftu_gather *g) { return atomic_load(&g->failed); }

int64_t ftu_gather_size(ftu_gather *g) { return atomic_load(&g->size); }

/* Looks from drain_from on, then from the start up to it (an insert may have filled a
 * slot before it), so that draining n entries one by one costs O(capacity + n), not
 * O(capacity * n). */
int ftu_gather_drain(ftu_gather *g, int64_t *key, uint64_t *word) {
    int result = FTU_TIMEOUT;
    ftu_spinlock_lock(&g->lock);
    if (g->drain_from >= g->capacity) g->drain_from = 0; /* the table may have been rebuilt */
    for (int64_t n = 0; n < g->capacity; n++) {
        int64_t i = (g->drain_from + n) & (g->capacity - 1);
        if (g->table[i].key >= 0) {
            *key = g->table[i].key;
            *word = g->table[i].word;
            remove_slot(g, i);
            g->drain_from = i + 1;
            result = FTU_OK;
            break;
        }
    }
    ftu_spinlock_unlock(&g->lock);
    return result;
}

int ftu_gather_visit(ftu_gather *g, int (*visit)(uint64_t word, void *arg), void *arg) {
    int result = 0;
    ftu_spinlock_lock(&g->lock);
    for (int64_t i = 0; result == 0 && i < g->capacity; i++) {
        if (g->table[i].key >= 0) result = visit(g->table[i].word, arg);
    }
    ftu_spinlock_unlock(&g->lock);
    return result;
}
