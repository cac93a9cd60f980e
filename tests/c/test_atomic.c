/*
 * Unit tests of the C core's atomics (csrc/ftu_atomic.c), in plain C with pthreads.
 *
 * Semantics: every checked operation is compared against exact 128-bit arithmetic on
 * edge values and pseudo-random values. Concurrency: several threads hammer one cell and
 * the final value must be exact (nothing lost, nothing applied twice). Order: a load and a
 * store on two cells keep the sequentially consistent order the header promises
 * (store buffering, test_store_load_order).
 *
 * Prints "N passed, N failed" and exits non-zero on any failure. Built and run by
 * `make test`, also under -fsanitize=thread and -fsanitize=address,undefined.
 */
#define _POSIX_C_SOURCE 200809L /* pthread barriers */
#include "ftu.h"

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

typedef __int128 i128;

/* ---- reference model: exact arithmetic, Python semantics ------------------------- */

static i128 floordiv128(i128 a, i128 b) {
    i128 q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q -= 1;
    return q;
}

static int fits(i128 v) { return v >= INT64_MIN && v <= INT64_MAX; }

/* Returns the expected status; *out gets the exact result when it is FTU_OK. */
static int model(char op, int64_t a, int64_t b, int64_t *out) {
    i128 r;
    switch (op) {
    case '+': r = (i128)a + b; break;
    case '-': r = (i128)a - b; break;
    case '*': r = (i128)a * b; break;
    case '/':
        if (b == 0) return FTU_ZERO_DIVISION;
        r = floordiv128(a, b);
        break;
    case '%':
        if (b == 0) return FTU_ZERO_DIVISION;
        r = (i128)a - floordiv128(a, b) * b;
        break;
    case '<':
        if (b < 0) return FTU_NEGATIVE_SHIFT;
        if (a == 0) { *out = 0; return FTU_OK; }
        if (b >= 64) return FTU_OVERFLOW;
        r = (i128)a * ((i128)1 << b);
        break;
    case '>':
        if (b < 0) return FTU_NEGATIVE_SHIFT;
        r = floordiv128(a, (i128)1 << (b > 100 ? 100 : b));
        break;
    case '^': { /* power */
        if (b < 0) return FTU_NEGATIVE_EXPONENT;
        i128 acc = 1;
        for (int64_t i = 0; i < b; i++) {
            acc *= a;
            if (!fits(acc)) return FTU_OVERFLOW;
            if (acc == 0 || acc == 1) break;
            if (acc == -1) { acc = (b - i - 1) % 2 ? -acc : acc; break; }
        }
        r = acc;
        break;
    }
    default: abort();
    }
    if (!fits(r)) return FTU_OVERFLOW;
    *out = (int64_t)r;
    return FTU_OK;
}

static ftu_i64_result apply(char op, int64_t *cell, int64_t b) {
    switch (op) {
    case '+': return ftu_i64_add(cell, b);
    case '-': return ftu_i64_sub(cell, b);
    case '*': return ftu_i64_mul(cell, b);
    case '/': return ftu_i64_floordiv(cell, b);
    case '%': return ftu_i64_mod(cell, b);
    case '<': return ftu_i64_lshift(cell, b);
    case '>': return ftu_i64_rshift(cell, b);
    case '^': return ftu_i64_pow(cell, b);
    default: abort();
    }
}

static void check_op(char op, int64_t a, int64_t b) {
    int64_t expected_value = 0;
    int expected_status = model(op, a, b, &expected_value);
    int64_t cell = a;
    ftu_i64_result r = apply(op, &cell, b);
    if (expected_status == FTU_OK) {
        CHECK(r.status == FTU_OK && r.value == expected_value && cell == expected_value,
              "%" PRId64 " %c %" PRId64 ": got status %d value %" PRId64 " cell %" PRId64
              ", expected %" PRId64, a, op, b, r.status, r.value, cell, expected_value);
    } else {
        CHECK(r.status == expected_status && cell == a && r.value == a,
              "%" PRId64 " %c %" PRId64 ": got status %d cell %" PRId64 ", expected status %d and cell unchanged",
              a, op, b, r.status, cell, expected_status);
    }
}

static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static uint64_t next_random(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717u;
}

static void test_checked_semantics(void) {
    const int64_t edges[] = {0, 1, -1, 2, -2, 3, -3, 7, -7, 62, 63, 64, 100,
                             INT32_MAX, INT32_MIN, (int64_t)1 << 32, 3037000499, 3037000500,
                             -3037000499, -3037000500, INT64_MAX, INT64_MIN, INT64_MAX - 1,
                             INT64_MIN + 1, INT64_MAX / 2, INT64_MIN / 2};
    const char ops[] = "+-*/%<>^";
    const size_t n = sizeof edges / sizeof edges[0];
    for (const char *op = ops; *op; op++) {
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) check_op(*op, edges[i], edges[j]);
        for (int k = 0; k < 20000; k++) {
            int64_t a = (int64_t)next_random(), b = (int64_t)next_random();
            /* mix in small magnitudes so that non-overflowing cases are common */
            if (k % 3 == 1) a >>= (next_random() % 64);
            if (k % 3 != 0) b >>= (next_random() % 64);
            if (*op == '^' || *op == '<' || *op == '>') b = (int64_t)(next_random() % 70) - 3;
            check_op(*op, a, b);
        }
    }
}

static void test_plain_operations(void) {
    int64_t cell = 5;
    CHECK(ftu_i64_load(&cell) == 5, "load");
    ftu_i64_store(&cell, -9);
    CHECK(cell == -9, "store");
    CHECK(ftu_i64_exchange(&cell, 12) == -9 && cell == 12, "exchange");
    CHECK(ftu_i64_compare_exchange(&cell, 12, 13) == 12 && cell == 13, "cas success");
    CHECK(ftu_i64_compare_exchange(&cell, 12, 14) == 13 && cell == 13, "cas failure");
    cell = INT64_MAX;
    CHECK(ftu_i64_fetch_add(&cell, 1) == INT64_MAX && cell == INT64_MIN, "fetch_add wraps");
    CHECK(ftu_i64_fetch_sub(&cell, 1) == INT64_MIN && cell == INT64_MAX, "fetch_sub wraps");
    cell = 0x0F;
    CHECK(ftu_i64_fetch_and(&cell, 0x3C) == 0x0F && cell == 0x0C, "fetch_and");
    CHECK(ftu_i64_fetch_or(&cell, 0x30) == 0x0C && cell == 0x3C, "fetch_or");
    CHECK(ftu_i64_fetch_xor(&cell, 0xFF) == 0x3C && cell == 0xC3, "fetch_xor");
    ftu_i64_result r = ftu_i64_and(&cell, 0x0F);
    CHECK(r.status == FTU_OK && r.value == 0x03 && cell == 0x03, "and");
    r = ftu_i64_or(&cell, -8);
    CHECK(r.value == -5 && cell == -5, "or");
    r = ftu_i64_xor(&cell, -1);
    CHECK(r.value == 4 && cell == 4, "xor");

    intptr_t w = 0;
    ftu_word_store(&w, 40);
    CHECK(ftu_word_load(&w) == 40, "word load/store");
    CHECK(ftu_word_exchange(&w, 41) == 40 && w == 41, "word exchange");
    CHECK(ftu_word_compare_exchange(&w, 41, 42) == 41 && w == 42, "word cas success");
    CHECK(ftu_word_compare_exchange(&w, 41, 43) == 42 && w == 42, "word cas failure");
    CHECK(ftu_word_fetch_add(&w, 8) == 42 && w == 50, "word fetch_add");
    CHECK(ftu_word_fetch_sub(&w, 10) == 50 && w == 40, "word fetch_sub");
    CHECK(ftu_word_fetch_or(&w, 3) == 40 && w == 43, "word fetch_or");
    CHECK(ftu_word_fetch_and(&w, 41) == 43 && w == 41, "word fetch_and");
    CHECK(ftu_word_fetch_xor(&w, 1) == 41 && w == 40, "word fetch_xor");
}

/* ---- many threads on one cell ---------------------------------------------------- */

#define THREADS 8
#define ITERATIONS 200000

static int64_t shared_i64;
static intptr_t shared_word;
static int64_t exchange_sums[THREADS];
static pthread_barrier_t barrier;

static void *hammer_add(void *arg) {
    (void)arg;
    pthread_barrier_wait(&barrier);
    for (int i = 0; i < ITERATIONS; i++) {
        ftu_i64_fetch_add(&shared_i64, 1);
        ftu_i64_result r = ftu_i64_add(&shared_i64, 2);
        if (r.status != FTU_OK) abort();
        ftu_i64_fetch_sub(&shared_i64, 1);
        ftu_word_fetch_add(&shared_word, 1);
    }
    return NULL;
}

static void *hammer_cas(void *arg) {
    (void)arg;
    pthread_barrier_wait(&barrier);
    for (int i = 0; i < ITERATIONS; i++) {
        int64_t seen = ftu_i64_load(&shared_i64);
        for (;;) {
            int64_t prior = ftu_i64_compare_exchange(&shared_i64, seen, seen + 1);
            if (prior == seen) break;
            seen = prior;
        }
        intptr_t w = ftu_word_load(&shared_word);
        while (ftu_word_compare_exchange(&shared_word, w, w + 3) != w) w = ftu_word_load(&shared_word);
    }
    return NULL;
}

/* Every thread swaps its own tokens in: the multiset of values taken out plus the one
 * left behind must equal the multiset put in (checked through their sum). */
static void *hammer_exchange(void *arg) {
    int id = (int)(intptr_t)arg;
    int64_t sum = 0;
    pthread_barrier_wait(&barrier);
    for (int i = 1; i <= ITERATIONS; i++) sum += ftu_i64_exchange(&shared_i64, (int64_t)id * ITERATIONS + i);
    exchange_sums[id] = sum;
    return NULL;
}

/* Checked multiplication at the edge of the range: threads double the cell and halve it
 * back; overflowing doublings must fail without changing the cell. */
static void *hammer_checked_edge(void *arg) {
    (void)arg;
    pthread_barrier_wait(&barrier);
    for (int i = 0; i < ITERATIONS / 4; i++) {
        ftu_i64_result r = ftu_i64_mul(&shared_i64, 2);
        if (r.status == FTU_OK) {
            ftu_i64_result back = ftu_i64_floordiv(&shared_i64, 2);
            if (back.status != FTU_OK) abort();
        } else if (r.status != FTU_OVERFLOW) {
            abort();
        }
    }
    return NULL;
}

static void run_threads(void *(*body)(void *)) {
    pthread_t threads[THREADS];
    pthread_barrier_init(&barrier, NULL, THREADS);
    for (int i = 0; i < THREADS; i++) pthread_create(&threads[i], NULL, body, (void *)(intptr_t)i);
    for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&barrier);
}

static void test_concurrent(void) {
    shared_i64 = 0;
    shared_word = 0;
    run_threads(hammer_add);
    CHECK(shared_i64 == (int64_t)THREADS * ITERATIONS * 2, "fetch_add/add/fetch_sub lost updates: %" PRId64, shared_i64);
    CHECK(shared_word == (intptr_t)THREADS * ITERATIONS, "word fetch_add lost updates: %" PRIdPTR, shared_word);

    shared_i64 = 0;
    shared_word = 0;
    run_threads(hammer_cas);
    CHECK(shared_i64 == (int64_t)THREADS * ITERATIONS, "CAS increments lost: %" PRId64, shared_i64);
    CHECK(shared_word == (intptr_t)THREADS * ITERATIONS * 3, "word CAS increments lost: %" PRIdPTR, shared_word);

    shared_i64 = 0;
    run_threads(hammer_exchange);
    int64_t taken = shared_i64, put = 0;
    for (int t = 0; t < THREADS; t++) {
        taken += exchange_sums[t];
        for (int i = 1; i <= ITERATIONS; i++) put += (int64_t)t * ITERATIONS + i;
    }
    CHECK(taken == put, "exchange lost or duplicated values: %" PRId64 " != %" PRId64, taken, put);

    const int64_t start = INT64_MAX / 3;
    shared_i64 = start;
    run_threads(hammer_checked_edge);
    /* every successful doubling was halved back exactly; failed ones changed nothing */
    CHECK(shared_i64 == start, "checked edge: %" PRId64 " != %" PRId64, shared_i64, start);
}

/* Store buffering, the pattern that tells sequentially consistent atomics from weaker
 * ones: in round r, thread 0 stores r into x and then loads y, thread 1 stores r into y
 * and then loads x. Sequential consistency puts the four operations in one order, so at
 * least one load comes after the other thread's store and sees r. With release stores
 * and acquire loads (or plain ones) both loads may see the previous round, which x86
 * does from its store buffer: that is what this counts. The threads meet before each
 * round through a counter (not part of what is tested). */
#define SB_ROUNDS 100000
static int64_t sb_cell[2], sb_seen[2][SB_ROUNDS], sb_arrived;

static void *store_then_load(void *arg) {
    int me = (int)(intptr_t)arg;
    uint64_t random = 0x9E3779B97F4A7C15ULL * (uint64_t)(me + 1);
    for (int64_t r = 1; r <= SB_ROUNDS; r++) {
        ftu_i64_fetch_add(&sb_arrived, 1);
        for (int spins = 0; ftu_i64_load(&sb_arrived) < 2 * r; spins++) {
            if (spins > 1000) sched_yield(); /* the other thread may be waiting for a CPU */
        }
        /* The thread that arrived last goes on first: a random delay, different in each
         * thread, makes the two store-load pairs overlap in some rounds. */
        random = random * 6364136223846793005ULL + 1442695040888963407ULL;
        for (volatile unsigned delay = (unsigned)(random >> 58); delay > 0; delay--) {
        }
        ftu_i64_store(&sb_cell[me], r);
        sb_seen[me][r - 1] = ftu_i64_load(&sb_cell[1 - me]);
    }
    return NULL;
}

static void test_store_load_order(void) {
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) pthread_create(&threads[i], NULL, store_then_load, (void *)(intptr_t)i);
    for (int i = 0; i < 2; i++) pthread_join(threads[i], NULL);
    int both_stale = 0;
    for (int64_t r = 1; r <= SB_ROUNDS; r++) both_stale += sb_seen[0][r - 1] < r && sb_seen[1][r - 1] < r;
    CHECK(both_stale == 0, "store buffering: in %d of %d rounds each thread's load missed the other's store "
          "(the loads and stores are not sequentially consistent)", both_stale, SB_ROUNDS);
}

int main(void) {
    test_plain_operations();
    test_checked_semantics();
    test_concurrent();
    test_store_load_order();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
