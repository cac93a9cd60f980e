/*
 * A concurrent hash table of words (see ftu.h, "map").
 *
 * Layout. Every entry is a node {mixed hash, key word, value word, next}; a table is an
 * array of 2**bits chains, and a hash's chain is the top `bits` bits of the mixed hash
 * (the hash times an odd constant: a bijection that spreads small integers over the top
 * bits). Writers lock a stripe: the top `sbits` bits of the mixed hash, so a stripe owns
 * a fixed, contiguous run of chains whatever the table's size, and writers of different
 * stripes never touch the same chain. A stripe also keeps its count of entries, its
 * version (bumped by every insert and remove, so that an insert-if-absent can tell that
 * nothing was added since its caller looked), its limbo: what it unlinked and may not
 * free yet, and a few spare nodes, reclaimed, for its next inserts.
 *
 * Readers lock nothing: they pin an epoch (ftu_epoch.h), load the table and walk the
 * chain. Writers change a chain with release stores, so a reader sees a node whole; a
 * node unlinked, a value replaced, a table replaced go to the limbo with their epoch
 * stamp and are freed (words: handed back to the caller to release) once no reader can
 * reach them.
 *
 * Growth and shrinking take every stripe lock (in order; a writer holds one stripe lock
 * at a time, never waiting for another while it does), build a new table of copied
 * nodes, publish it and retire the old one whole. Readers already in the old table see it
 * as it was when it was replaced, which is the map's state at that moment: no write goes
 * to a table once it is replaced.
 *
 * Iteration (ftu_map_scan) walks in the order of the mixed hash, which does not depend
 * on the table's size: a cursor is a mixed hash, so growth and shrinking between two
 * calls neither repeat nor skip an entry that stays in the map.
 */
#define _GNU_SOURCE /* clock_gettime (CLOCK_MONOTONIC_COARSE), getpid */
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "ftu.h"
#include "ftu_epoch.h"
#include "ftu_map_impl.h"
#include "ftu_memory.h"

#define RECLAIM_BATCH 16 /* limbo items a stripe gathers before it scans (a scan reads every thread's
                          * record, and may move the global epoch every reader then re-reads) */
#define MAX_BITS 58
#define QUIET_NS 5000000 /* 5 ms: no other thread seen reading for that long: scan at every write */
/* Reclaimed nodes a stripe keeps for its next inserts (a remove then an insert, the churn
 * of a cache, costs no free() and malloc()). None when the tests free early on purpose
 * (FTU_TEST_NO_RECLAIM): ASan must see those frees. */
#ifdef FTU_TEST_NO_RECLAIM
#define SPARE_MAX 0
#else
#define SPARE_MAX 8
#endif

#ifdef FTU_TEST_HOOKS
/* C tests only: called by a lookup between loading a node and reading it, to hold the
 * reader there (tests/c/test_map.c); FTU_TEST_NO_RECLAIM frees at once instead of
 * waiting for readers, to show that the tests catch it. */
void (*ftu_test_map_hook)(void);
#define MAP_HOOK()                                               \
    do {                                                         \
        if (ftu_test_map_hook != NULL) ftu_test_map_hook();      \
    } while (0)
#else
#define MAP_HOOK() ((void)0)
#endif

static inline uint64_t stripe_index(const ftu_map *m, uint64_t mixed) {
    return m->sbits == 0 ? 0 : mixed >> (64 - m->sbits);
}
static inline ftu_map_stripe *stripe_of(ftu_map *m, uint64_t mixed) { return &m->stripes[stripe_index(m, mixed)]; }
static inline uint64_t nstripes(const ftu_map *m) { return UINT64_C(1) << m->sbits; }

static ftu_map_table *table_new(int bits) {
    ftu_map_table *t = ftu_calloc(1, sizeof(ftu_map_table) + (sizeof(ftu_map_node *) << bits));
    if (t == NULL) return NULL;
    t->bits = bits;
    t->size = UINT64_C(1) << bits;
    return t;
}

/* Frees a table and the nodes in its chains (not the words: they live on elsewhere). */
static void table_free(ftu_map_table *t) {
    for (uint64_t i = 0; i < t->size; i++) {
        ftu_map_node *n = atomic_load_explicit(&t->chains[i], memory_order_relaxed);
        while (n != NULL) {
            ftu_map_node *next = atomic_load_explicit(&n->next, memory_order_relaxed);
            free(n);
            n = next;
        }
    }
    free(t);
}

/* ---- locks and fork ---------------------------------------------------------------- */

static void lock_all(ftu_map *m) {
    for (uint64_t i = 0; i < nstripes(m); i++) ftu_spinlock_lock(&m->stripes[i].lock);
}
static void unlock_all(ftu_map *m) {
    for (uint64_t i = nstripes(m); i-- > 0;) ftu_spinlock_unlock(&m->stripes[i].lock);
}
static ftu_map *map_of_node(struct ftu_fork_node *node) {
    return (ftu_map *)((char *)node - offsetof(ftu_map, fork));
}
static void map_lock_for_fork(struct ftu_fork_node *node) { lock_all(map_of_node(node)); }
static void map_unlock_after_fork(struct ftu_fork_node *node) { unlock_all(map_of_node(node)); }
static const struct ftu_fork_ops map_fork_ops = {map_lock_for_fork, map_unlock_after_fork, map_unlock_after_fork};

/* ---- limbo --------------------------------------------------------------------------- */

/* Room for `more` limbo items: 0 if it cannot be made (nothing changed). Under the lock. */
static int limbo_reserve(ftu_map_stripe *s, int64_t more) {
    if (s->limbo_len + more <= s->limbo_cap) return 1;
    int64_t cap = s->limbo_cap ? s->limbo_cap * 2 : 8;
    while (cap < s->limbo_len + more) cap *= 2;
    ftu_map_limbo_item *grown =
        ftu_allocation_fails() ? NULL : realloc(s->limbo, (size_t)cap * sizeof(ftu_map_limbo_item));
    if (grown == NULL) return 0;
    s->limbo = grown;
    s->limbo_cap = cap;
    return 1;
}

/* Adds to the reserved room. Under the lock. */
static void limbo_add(ftu_map_stripe *s, uint64_t item, int kind, uint64_t stamp) {
    s->limbo[s->limbo_len++] = (ftu_map_limbo_item){item, stamp, kind};
}

/* A node no reader can reach any more: kept as a spare, or freed. Under the lock. */
static void spare_or_free(ftu_map_stripe *s, ftu_map_node *n) {
    if (s->spare_count >= SPARE_MAX) {
        free(n);
        return;
    }
    atomic_store_explicit(&n->next, s->spare, memory_order_relaxed);
    s->spare = n;
    s->spare_count++;
}

/* A node for an insert: a spare, else a new one (NULL if out of memory). Under the lock. */
static ftu_map_node *node_new(ftu_map_stripe *s) {
    ftu_map_node *n = s->spare;
    if (n == NULL) return ftu_malloc(sizeof *n);
    s->spare = atomic_load_explicit(&n->next, memory_order_relaxed);
    s->spare_count--;
    return n;
}

static void spares_free(ftu_map_stripe *s) {
    while (s->spare != NULL) {
        ftu_map_node *n = s->spare;
        s->spare = atomic_load_explicit(&n->next, memory_order_relaxed);
        free(n);
    }
    s->spare_count = 0;
}

/* Frees what is safe to free and hands the safe words to `out` (as many as it holds).
 * Under the lock; the calling thread holds no pointer into the map. */
/* A clock that costs a few nanoseconds (a tick of a millisecond or a few is enough). */
static uint64_t coarse_ns(void) {
    struct timespec now;
#ifdef CLOCK_MONOTONIC_COARSE
    clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
#else
    clock_gettime(CLOCK_MONOTONIC, &now);
#endif
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

static void limbo_reclaim(ftu_map_stripe *s, ftu_map_release *out, int force) {
    if (s->limbo_len == 0) return;
    ftu_epoch_view view = {0, 0};
    if (!force) {
        view = ftu_epoch_scan();
#ifdef FTU_TEST_NO_RECLAIM
        view.others_pinned = 0;
#endif
    }
    if (!force && view.others_pinned) s->pinned_seen_at = coarse_ns();
    int64_t kept = 0;
    for (int64_t i = 0; i < s->limbo_len; i++) {
        ftu_map_limbo_item it = s->limbo[i];
        int safe = force || ftu_epoch_safe(view, it.stamp);
        if (safe && it.kind == FTU_LIMBO_WORD) {
            if (out == NULL || out->count >= FTU_MAP_RELEASE_MAX) {
                safe = 0;
            } else {
                out->words[out->count++] = it.item;
            }
        } else if (safe && it.kind == FTU_LIMBO_NODE) {
            spare_or_free(s, (ftu_map_node *)(uintptr_t)it.item);
        } else if (safe) {
            table_free((ftu_map_table *)(uintptr_t)it.item);
        }
        if (!safe) s->limbo[kept++] = it;
    }
    s->limbo_len = kept;
}

/* After a write: reclaims when the stripe has gathered a few items (a scan reads every
 * thread's record), at once when no other thread can be reading, and also at once while
 * the other threads are quiet: when no scan of the stripe found another thread pinned
 * for a while (QUIET_NS), the next one likely finds none either, at little cost (the
 * record of a thread that does not read is not being written, so reading it takes no
 * line from another CPU). So a value replaced or removed goes at once, as in a dict,
 * while the other threads do not read the map; under concurrent reads, a few writes
 * later (a busy reader is seen pinned often enough to keep its stripe in batches, and a
 * scan at every write would take its record's line at every write). With
 * FTU_MAP_RELEASE_AT_ONCE the limbo holds no words, only memory (nodes, tables): it is
 * reclaimed in batches whatever the other threads do. Under the lock. */
static void maybe_reclaim(const ftu_map *m, ftu_map_stripe *s, ftu_map_release *out) {
    if (s->limbo_len >= RECLAIM_BATCH ||
        (s->limbo_len > 0 && !(m->flags & FTU_MAP_RELEASE_AT_ONCE) &&
         (ftu_epoch_alone() || coarse_ns() - s->pinned_seen_at > QUIET_NS)))
        limbo_reclaim(s, out, 0);
}

/* ---- life ---------------------------------------------------------------------------- */

static int bits_for(int64_t entries) {
    int bits = 0;
    while (bits < MAX_BITS && (INT64_C(1) << bits) < entries) bits++;
    return bits;
}

uint64_t ftu_map_seed;
static pthread_once_t seed_once = PTHREAD_ONCE_INIT;

/* A seed no other process is likely to share: the time, the process id and addresses
 * (randomised by the loader), stirred by splitmix64's finaliser. */
static void make_seed(void) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t x = (uint64_t)now.tv_nsec ^ ((uint64_t)now.tv_sec << 30) ^ ((uint64_t)getpid() << 42) ^
                 (uint64_t)(uintptr_t)&now ^ ((uint64_t)(uintptr_t)&ftu_map_seed << 7);
    x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
    ftu_map_seed = x ^ (x >> 31);
}

ftu_map *ftu_map_new(int64_t size_hint, int64_t concurrency, int flags) {
    pthread_once(&seed_once, make_seed); /* before any map exists: never changes after */
    if (concurrency < 1) concurrency = 1;
    if (concurrency > 4096) concurrency = 4096;
    int sbits = bits_for(concurrency * 4);
    int min_bits = sbits < 3 ? 3 : sbits;
    int bits = bits_for(size_hint > 0 ? size_hint : 0);
    if (bits < min_bits) bits = min_bits;
    ftu_map *m = ftu_calloc(1, sizeof *m);
    if (m == NULL) return NULL;
    m->sbits = sbits;
    m->min_bits = min_bits;
    m->flags = flags;
    m->stripes = ftu_aligned_alloc(64, sizeof(ftu_map_stripe) << sbits);
    ftu_map_table *t = table_new(bits);
    if (m->stripes == NULL || t == NULL) {
        free(m->stripes);
        free(t);
        free(m);
        return NULL;
    }
    memset(m->stripes, 0, sizeof(ftu_map_stripe) << sbits);
    atomic_init(&m->table, t);
    ftu_fork_track(&m->fork, &map_fork_ops);
    return m;
}

void ftu_map_free(ftu_map *m) {
    if (m == NULL) return;
    ftu_fork_forget(&m->fork);
    for (uint64_t i = 0; i < nstripes(m); i++) {
        limbo_reclaim(&m->stripes[i], NULL, 1); /* frees nodes and tables; words are forgotten */
        spares_free(&m->stripes[i]);
        free(m->stripes[i].limbo);
    }
    table_free(ftu_map_load_table(m));
    free(m->stripes);
    free(m);
}

/* ---- resizing ------------------------------------------------------------------------ */

static int64_t total_count(ftu_map *m) {
    int64_t total = 0;
    for (uint64_t i = 0; i < nstripes(m); i++)
        total += atomic_load_explicit(&m->stripes[i].count, memory_order_relaxed);
    return total;
}

/* Moves the map to a table of 2**bits chains if `still` holds under every lock. Called
 * holding no lock. A failed allocation leaves the map as it was (resizing is never
 * needed for correctness, only for speed and memory). */
static void resize(ftu_map *m, int grow) {
    lock_all(m);
    ftu_map_table *old = ftu_map_load_table(m);
    int64_t total = total_count(m);
    int bits = bits_for(total * 2);
    if (bits < m->min_bits) bits = m->min_bits;
    if (grow ? (uint64_t)total <= old->size / 2 || bits <= old->bits
             : old->bits <= m->min_bits || (uint64_t)total >= old->size / 8 || bits >= old->bits) {
        unlock_all(m);
        return;
    }
    ftu_map_table *t = table_new(bits);
    if (t == NULL || !limbo_reserve(&m->stripes[0], 1)) goto failed;
    for (uint64_t i = 0; i < old->size; i++) {
        for (ftu_map_node *n = atomic_load_explicit(&old->chains[i], memory_order_relaxed); n != NULL;
             n = atomic_load_explicit(&n->next, memory_order_relaxed)) {
            ftu_map_node *copy = ftu_malloc(sizeof *copy);
            if (copy == NULL) goto failed;
            copy->mixed = n->mixed;
            atomic_init(&copy->key, atomic_load_explicit(&n->key, memory_order_relaxed));
            atomic_init(&copy->value, atomic_load_explicit(&n->value, memory_order_relaxed));
            _Atomic(ftu_map_node *) *chain = ftu_map_chain_of(t, n->mixed);
            atomic_init(&copy->next, atomic_load_explicit(chain, memory_order_relaxed));
            atomic_init(chain, copy);
        }
    }
    atomic_store_explicit(&m->table, t, memory_order_release);
    limbo_add(&m->stripes[0], (uint64_t)(uintptr_t)old, FTU_LIMBO_TABLE, ftu_epoch_stamp());
    unlock_all(m);
    return;
failed:
    if (t != NULL) table_free(t);
    unlock_all(m);
}

/* ---- reading ------------------------------------------------------------------------- */

int64_t ftu_map_lookup(ftu_map *m, uint64_t hash, uint64_t *keys, uint64_t *values, int64_t cap,
                       uint64_t *version) {
    ftu_epoch_rec *rec = ftu_epoch_enter();
    if (rec == NULL) return -1;
    uint64_t mixed = ftu_map_mix(hash);
    /* the stripe's line is written by every insert and remove: read it only when asked */
    if (version != NULL) *version = atomic_load_explicit(&stripe_of(m, mixed)->version, memory_order_acquire);
    int64_t found = 0;
    for (ftu_map_node *n = ftu_map_first(m, mixed); n != NULL; n = ftu_map_load_next(n)) {
        MAP_HOOK();
        if (n->mixed != mixed) continue;
        if (found < cap) {
            keys[found] = atomic_load_explicit(&n->key, memory_order_acquire);
            values[found] = atomic_load_explicit(&n->value, memory_order_acquire);
        }
        found++;
    }
    ftu_epoch_leave(rec);
    return found;
}

int64_t ftu_map_size(ftu_map *m) { return total_count(m); }

uint64_t ftu_map_cursor_of(uint64_t hash) { return ftu_map_mix(hash); }

int ftu_map_enter(void) { return ftu_epoch_enter() == NULL ? FTU_NO_MEMORY : FTU_OK; }
void ftu_map_leave(void) { ftu_epoch_leave(ftu_epoch_mine); }

int64_t ftu_map_scan(ftu_map *m, uint64_t *cursor, int *done, uint64_t *hashes, uint64_t *keys, uint64_t *values,
                     int64_t cap) {
    if (*done) return 0;
    ftu_epoch_rec *rec = ftu_epoch_enter();
    if (rec == NULL) return -1;
    ftu_map_table *t = ftu_map_load_table(m);
    uint64_t from = *cursor;
    int64_t count = 0;
    for (;;) {
        /* The smallest mixed hash at or after `from` in from's chain, then its group, taken
         * in one walk: writers may add to or take from the chain between two walks, so the
         * group is not counted first (a count taken in one walk and used in another lost
         * entries that stayed in the map when writers of the same hash came and went). */
        uint64_t chain = from >> (64 - t->bits);
        int any = 0;
        uint64_t least = 0;
        for (ftu_map_node *n = atomic_load_explicit(&t->chains[chain], memory_order_acquire); n != NULL;
             n = ftu_map_load_next(n)) {
            if (n->mixed < from) continue;
            if (!any || n->mixed < least) least = n->mixed;
            any = 1;
        }
        if (any) {
            MAP_HOOK(); /* C tests: writers may change the chain between the two walks */
            int64_t start = count, group = 0;
            for (ftu_map_node *n = atomic_load_explicit(&t->chains[chain], memory_order_acquire); n != NULL;
                 n = ftu_map_load_next(n)) {
                if (n->mixed != least) continue;
                if (start + group < cap) {
                    hashes[start + group] = ftu_map_unmix(least);
                    keys[start + group] = atomic_load_explicit(&n->key, memory_order_acquire);
                    values[start + group] = atomic_load_explicit(&n->value, memory_order_acquire);
                }
                group++;
            }
            if (start + group > cap) { /* the group does not fit: none of it, the cursor stays */
                if (start == 0) count = -group - 1; /* no room for one group: ask for more */
                break;
            }
            count = start + group;
            if (least == UINT64_MAX) {
                *done = 1;
                break;
            }
            from = least + 1;
        } else {
            if (chain + 1 == t->size) {
                *done = 1;
                break;
            }
            from = (chain + 1) << (64 - t->bits);
        }
        if (count == cap) break;
    }
    if (count >= 0) *cursor = from;
    ftu_epoch_leave(rec);
    return count < -1 ? count + 1 : count;
}

int ftu_map_visit(ftu_map *m, int (*visit)(uint64_t word, void *arg), void *arg) {
    ftu_map_table *t = ftu_map_load_table(m);
    for (uint64_t i = 0; i < t->size; i++) {
        for (ftu_map_node *n = atomic_load_explicit(&t->chains[i], memory_order_acquire); n != NULL;
             n = ftu_map_load_next(n)) {
            int r = visit(atomic_load_explicit(&n->key, memory_order_relaxed), arg);
            if (r == 0) r = visit(atomic_load_explicit(&n->value, memory_order_relaxed), arg);
            if (r != 0) return r;
        }
    }
    for (uint64_t i = 0; i < nstripes(m); i++) {
        ftu_map_stripe *s = &m->stripes[i];
        for (int64_t j = 0; j < s->limbo_len; j++) {
            if (s->limbo[j].kind != FTU_LIMBO_WORD) continue;
            int r = visit(s->limbo[j].item, arg);
            if (r != 0) return r;
        }
    }
    return 0;
}

/* ---- writing ------------------------------------------------------------------------- */

static inline void release_init(ftu_map_release *out) {
    if (out != NULL) out->count = 0;
}

/* A word the map no longer holds: waits in the limbo, or (FTU_MAP_RELEASE_AT_ONCE) goes to
 * `out` at once (if there is one). Under the lock, with limbo room reserved. */
static void drop_word(ftu_map *m, ftu_map_stripe *s, uint64_t w, uint64_t stamp, ftu_map_release *out) {
    /* No other thread has ever pinned (the stamp's fence orders the unlink before this
     * look): none can hold w, and a thread that comes later finds it unlinked. */
    if (!(m->flags & FTU_MAP_RELEASE_AT_ONCE) && out != NULL && out->count < FTU_MAP_RELEASE_MAX &&
        ftu_epoch_alone()) {
        out->words[out->count++] = w;
    } else if (!(m->flags & FTU_MAP_RELEASE_AT_ONCE)) {
        limbo_add(s, w, FTU_LIMBO_WORD, stamp);
    } else if (out != NULL) {
        out->words[out->count++] = w;
    }
}

/* The link that points at the node of `key` in its chain (with key FTU_MAP_ANY_KEY: at the
 * node of the hash that holds value `expected`), or NULL. Under the lock. */
static _Atomic(ftu_map_node *) *find_link(ftu_map_table *t, uint64_t mixed, uint64_t key, uint64_t expected) {
    _Atomic(ftu_map_node *) *link = ftu_map_chain_of(t, mixed);
    for (ftu_map_node *n; (n = atomic_load_explicit(link, memory_order_relaxed)) != NULL; link = &n->next) {
        if (n->mixed != mixed) continue;
        if (key == FTU_MAP_ANY_KEY ? atomic_load_explicit(&n->value, memory_order_relaxed) == expected
                                   : atomic_load_explicit(&n->key, memory_order_relaxed) == key)
            return link;
    }
    return NULL;
}

int ftu_map_insert(ftu_map *m, uint64_t hash, uint64_t key, uint64_t value, uint64_t version,
                   ftu_map_release *out) {
    release_init(out);
    uint64_t mixed = ftu_map_mix(hash);
    ftu_map_stripe *s = stripe_of(m, mixed);
    ftu_spinlock_lock(&s->lock);
    if (atomic_load_explicit(&s->version, memory_order_relaxed) != version) {
        maybe_reclaim(m, s, out);
        ftu_spinlock_unlock(&s->lock);
        return FTU_RETRY;
    }
    ftu_map_node *node = node_new(s);
    if (node == NULL) {
        ftu_spinlock_unlock(&s->lock);
        return FTU_NO_MEMORY;
    }
    node->mixed = mixed;
    atomic_init(&node->key, key);
    atomic_init(&node->value, value);
    ftu_map_table *t = ftu_map_load_table(m);
    _Atomic(ftu_map_node *) *chain = ftu_map_chain_of(t, mixed);
    atomic_init(&node->next, atomic_load_explicit(chain, memory_order_relaxed));
    atomic_store_explicit(chain, node, memory_order_release);
    atomic_store_explicit(&s->version, version + 1, memory_order_release);
    int64_t count = atomic_load_explicit(&s->count, memory_order_relaxed) + 1;
    atomic_store_explicit(&s->count, count, memory_order_relaxed);
    maybe_reclaim(m, s, out);
    uint64_t size = t->size; /* t may be freed once the lock is let go */
    int grow = (uint64_t)count > (size >> m->sbits) && t->bits < MAX_BITS; /* a stripe past its share */
    ftu_spinlock_unlock(&s->lock);
    if (grow && (uint64_t)total_count(m) > size / 2) resize(m, 1);
    return FTU_OK;
}

/* ftu_map_put, or with may_replace 0 ftu_map_add (an entry of key word `key` is FTU_RETRY). */
static int put(ftu_map *m, uint64_t hash, uint64_t key, uint64_t value, int may_replace, int *added,
               ftu_map_release *out) {
    release_init(out);
    *added = 0;
    uint64_t mixed = ftu_map_mix(hash);
    ftu_map_stripe *s = stripe_of(m, mixed);
    int status = FTU_OK;
    int grow = 0;
    uint64_t size = 0;
    ftu_spinlock_lock(&s->lock);
    ftu_map_table *t = ftu_map_load_table(m);
    _Atomic(ftu_map_node *) *chain = ftu_map_chain_of(t, mixed);
    ftu_map_node *same = NULL;
    int others = 0;
    for (ftu_map_node *n = atomic_load_explicit(chain, memory_order_relaxed); n != NULL;
         n = atomic_load_explicit(&n->next, memory_order_relaxed)) {
        if (n->mixed != mixed) continue;
        if (atomic_load_explicit(&n->key, memory_order_relaxed) == key) same = n;
        else others = 1;
    }
    if (same != NULL && !may_replace) {
        status = FTU_RETRY;
    } else if (same != NULL) { /* the very key: replace its value */
        if (!limbo_reserve(s, 1)) {
            status = FTU_NO_MEMORY;
        } else {
            uint64_t current = atomic_load_explicit(&same->value, memory_order_relaxed);
            atomic_store_explicit(&same->value, value, memory_order_release);
            drop_word(m, s, current, ftu_epoch_stamp(), out);
        }
    } else if (others) { /* keys of the same hash: equality is the caller's to decide */
        status = FTU_RETRY;
    } else {
        /* No key of this hash: add it. The node is allocated under the lock: a malloc
         * costs less than letting go of the lock and taking it again to look once more. */
        ftu_map_node *node = node_new(s);
        if (node == NULL) {
            status = FTU_NO_MEMORY;
        } else {
            node->mixed = mixed;
            atomic_init(&node->key, key);
            atomic_init(&node->value, value);
            atomic_init(&node->next, atomic_load_explicit(chain, memory_order_relaxed));
            atomic_store_explicit(chain, node, memory_order_release);
            atomic_store_explicit(&s->version, atomic_load_explicit(&s->version, memory_order_relaxed) + 1,
                                  memory_order_release);
            int64_t count = atomic_load_explicit(&s->count, memory_order_relaxed) + 1;
            atomic_store_explicit(&s->count, count, memory_order_relaxed);
            size = t->size;
            grow = (uint64_t)count > (size >> m->sbits) && t->bits < MAX_BITS;
            *added = 1;
        }
    }
    maybe_reclaim(m, s, out);
    ftu_spinlock_unlock(&s->lock);
    if (grow && (uint64_t)total_count(m) > size / 2) resize(m, 1);
    return status;
}

int ftu_map_put(ftu_map *m, uint64_t hash, uint64_t key, uint64_t value, int *added, ftu_map_release *out) {
    return put(m, hash, key, value, 1, added, out);
}

int ftu_map_add(ftu_map *m, uint64_t hash, uint64_t key, uint64_t value, ftu_map_release *out) {
    int added;
    return put(m, hash, key, value, 0, &added, out);
}

/* The entry a replace or a remove changes, under the stripe's lock: FTU_OK with its link
 * (limbo room for `room` items reserved), or FTU_RETRY (no entry has key word `key`),
 * FTU_MISMATCH (check: it holds another value than expected) or FTU_NO_MEMORY. *previous:
 * the value it holds (unless FTU_RETRY). */
static int locked_entry(ftu_map_stripe *s, ftu_map_table *t, uint64_t mixed, uint64_t key, int check, uint64_t expected,
                        int64_t room, uint64_t *previous, _Atomic(ftu_map_node *) **link) {
    if (key == FTU_MAP_ANY_KEY && !check) return FTU_RETRY; /* names no entry */
    *link = find_link(t, mixed, key, expected);
    if (*link == NULL) return FTU_RETRY;
    ftu_map_node *n = atomic_load_explicit(*link, memory_order_relaxed);
    *previous = atomic_load_explicit(&n->value, memory_order_relaxed);
    if (check && *previous != expected) return FTU_MISMATCH;
    return limbo_reserve(s, room) ? FTU_OK : FTU_NO_MEMORY;
}

int ftu_map_replace(ftu_map *m, uint64_t hash, uint64_t key, uint64_t value, int check, uint64_t expected,
                    uint64_t *previous, ftu_map_release *out) {
    release_init(out);
    uint64_t mixed = ftu_map_mix(hash);
    ftu_map_stripe *s = stripe_of(m, mixed);
    _Atomic(ftu_map_node *) *link;
    ftu_spinlock_lock(&s->lock);
    int status = locked_entry(s, ftu_map_load_table(m), mixed, key, check, expected, 1, previous, &link);
    if (status == FTU_OK) {
        ftu_map_node *n = atomic_load_explicit(link, memory_order_relaxed);
        atomic_store_explicit(&n->value, value, memory_order_release);
        drop_word(m, s, *previous, ftu_epoch_stamp(), out);
    }
    maybe_reclaim(m, s, out);
    ftu_spinlock_unlock(&s->lock);
    return status;
}

int ftu_map_remove(ftu_map *m, uint64_t hash, uint64_t key, int check, uint64_t expected, uint64_t *previous,
                   ftu_map_release *out) {
    release_init(out);
    uint64_t mixed = ftu_map_mix(hash);
    ftu_map_stripe *s = stripe_of(m, mixed);
    int shrink = 0;
    _Atomic(ftu_map_node *) *link;
    ftu_spinlock_lock(&s->lock);
    ftu_map_table *t = ftu_map_load_table(m);
    uint64_t size = t->size; /* t may be freed once the lock is let go */
    int status = locked_entry(s, t, mixed, key, check, expected, 3, previous, &link);
    if (status == FTU_OK) {
        ftu_map_node *n = atomic_load_explicit(link, memory_order_relaxed);
        atomic_store_explicit(link, atomic_load_explicit(&n->next, memory_order_relaxed), memory_order_release);
        atomic_store_explicit(&s->version, atomic_load_explicit(&s->version, memory_order_relaxed) + 1,
                              memory_order_release);
        int64_t count = atomic_load_explicit(&s->count, memory_order_relaxed) - 1;
        atomic_store_explicit(&s->count, count, memory_order_relaxed);
        uint64_t stamp = ftu_epoch_stamp();
        limbo_add(s, (uint64_t)(uintptr_t)n, FTU_LIMBO_NODE, stamp);
        drop_word(m, s, atomic_load_explicit(&n->key, memory_order_relaxed), stamp, out); /* not `key`: ANY_KEY */
        drop_word(m, s, *previous, stamp, out);
        shrink = t->bits > m->min_bits && (uint64_t)count < (t->size >> m->sbits) / 8;
    }
    maybe_reclaim(m, s, out);
    ftu_spinlock_unlock(&s->lock);
    if (shrink && (uint64_t)total_count(m) < size / 8) resize(m, 0);
    return status;
}

int ftu_map_reclaim(ftu_map *m, ftu_map_release *out) {
    release_init(out);
    int pending = 0;
    for (uint64_t i = 0; i < nstripes(m) && !(pending && out != NULL && out->count == FTU_MAP_RELEASE_MAX); i++) {
        ftu_map_stripe *s = &m->stripes[i];
        ftu_spinlock_lock(&s->lock);
        limbo_reclaim(s, out, 0);
        for (int64_t j = 0; j < s->limbo_len && !pending; j++) pending = s->limbo[j].kind == FTU_LIMBO_WORD;
        ftu_spinlock_unlock(&s->lock);
    }
    return pending;
}

int64_t ftu_map_drain(ftu_map *m, uint64_t *words, int64_t cap) {
    int64_t count = 0;
    ftu_map_table *t = ftu_map_load_table(m);
    for (uint64_t i = 0; i < t->size && count + 2 <= cap; i++) {
        ftu_map_node *n;
        while (count + 2 <= cap && (n = atomic_load_explicit(&t->chains[i], memory_order_relaxed)) != NULL) {
            atomic_store_explicit(&t->chains[i], atomic_load_explicit(&n->next, memory_order_relaxed),
                                  memory_order_relaxed);
            words[count++] = atomic_load_explicit(&n->key, memory_order_relaxed);
            words[count++] = atomic_load_explicit(&n->value, memory_order_relaxed);
            ftu_map_stripe *s = stripe_of(m, n->mixed);
            atomic_store_explicit(&s->count, atomic_load_explicit(&s->count, memory_order_relaxed) - 1,
                                  memory_order_relaxed);
            atomic_store_explicit(&s->version, atomic_load_explicit(&s->version, memory_order_relaxed) + 1,
                                  memory_order_relaxed);
            free(n);
        }
    }
    for (uint64_t i = 0; i < nstripes(m) && count < cap; i++) {
        ftu_map_stripe *s = &m->stripes[i];
        int64_t kept = 0;
        for (int64_t j = 0; j < s->limbo_len; j++) {
            ftu_map_limbo_item it = s->limbo[j];
            if (it.kind == FTU_LIMBO_WORD) {
                if (count < cap) {
                    words[count++] = it.item;
                    continue;
                }
            } else {
                if (it.kind == FTU_LIMBO_NODE) free((void *)(uintptr_t)it.item);
                else table_free((ftu_map_table *)(uintptr_t)it.item);
                continue;
            }
            s->limbo[kept++] = it;
        }
        s->limbo_len = kept;
    }
    return count;
}
