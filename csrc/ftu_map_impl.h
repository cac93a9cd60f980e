/*
 * The layout of the concurrent hash table (ftu_map.c), and its read path for callers
 * compiled with the core (internal to the core and the native extension; not part of the
 * flat ABI in ftu.h, which the cffi module uses).
 *
 * The native extension walks a chain inline for its reads (no call into the core for a
 * lookup): pinned (ftu_epoch_enter), it takes ftu_map_first() and follows
 * ftu_map_load_next(), looking at the nodes whose `mixed` is ftu_map_mix(hash); a node's
 * key and value words are read with acquire loads, and stay valid (not released) until
 * the caller unpins. ftu_map_lookup() is the same walk behind a call.
 */
#ifndef FTU_MAP_IMPL_H
#define FTU_MAP_IMPL_H

#include <stdatomic.h>
#include <stdint.h>

#include "ftu.h"
#include "ftu_epoch.h"
#include "ftu_fork.h"
#include "ftu_wait.h"

#define FTU_MAP_MIX UINT64_C(0x9E3779B97F4A7C15)
#define FTU_MAP_UNMIX UINT64_C(0xF1DE83E19937733D) /* MIX * UNMIX == 1 modulo 2**64 */

typedef struct ftu_map_node {
    _Atomic(struct ftu_map_node *) next;
    uint64_t mixed; /* never changes */
    _Atomic uint64_t key;
    _Atomic uint64_t value;
} ftu_map_node;

typedef struct ftu_map_table {
    int bits;
    uint64_t size;
    _Atomic(ftu_map_node *) chains[];
} ftu_map_table;

enum { FTU_LIMBO_WORD, FTU_LIMBO_NODE, FTU_LIMBO_TABLE };

typedef struct ftu_map_limbo_item {
    uint64_t item; /* a word, or the address of a node or a table */
    uint64_t stamp;
    int kind;
} ftu_map_limbo_item;

typedef struct ftu_map_stripe {
    _Alignas(64) ftu_spinlock lock;
    _Atomic uint64_t version;
    _Atomic int64_t count;
    ftu_map_limbo_item *limbo; /* under the lock */
    int64_t limbo_len, limbo_cap;
    uint64_t pinned_seen_at; /* coarse clock (ns) of the last scan that found another thread pinned */
    ftu_map_node *spare;     /* reclaimed nodes kept for the next inserts (linked by next), under the lock */
    int64_t spare_count;
} ftu_map_stripe;

struct ftu_map {
    _Atomic(ftu_map_table *) table;
    ftu_map_stripe *stripes;
    int sbits;
    int min_bits;
    int flags;
    struct ftu_fork_node fork;
};

/* The process's seed of the mix (ftu_map.c: random, set before the first map is made).
 * Without it, keys crafted so that hash * MIX has equal top bits (the multiplication is
 * invertible) would all land in one chain: with it they are spread like any others. */
extern uint64_t ftu_map_seed;

/* The hash as the table orders it: a bijection that spreads small integers over the top
 * bits, which pick the chain (and the stripe). */
static inline uint64_t ftu_map_mix(uint64_t hash) { return (hash ^ ftu_map_seed) * FTU_MAP_MIX; }
static inline uint64_t ftu_map_unmix(uint64_t mixed) { return (mixed * FTU_MAP_UNMIX) ^ ftu_map_seed; }

static inline _Atomic(ftu_map_node *) *ftu_map_chain_of(ftu_map_table *t, uint64_t mixed) {
    return &t->chains[mixed >> (64 - t->bits)];
}
static inline ftu_map_table *ftu_map_load_table(ftu_map *m) {
    return atomic_load_explicit(&m->table, memory_order_acquire);
}
static inline ftu_map_node *ftu_map_load_next(ftu_map_node *n) {
    return atomic_load_explicit(&n->next, memory_order_acquire);
}

/* The first node of the chain of `mixed` in the current table. Pinned callers only. */
static inline ftu_map_node *ftu_map_first(ftu_map *m, uint64_t mixed) {
    return atomic_load_explicit(ftu_map_chain_of(ftu_map_load_table(m), mixed), memory_order_acquire);
}

#endif /* FTU_MAP_IMPL_H */
