/*
 * Tests of the concurrent hash table (ftu_map_*): a random single-thread sequence against
 * a model; 8 threads inserting, reading, replacing, removing and iterating while the table
 * is made to grow and shrink; readers held inside their window while writers free what
 * they unlinked (under ASan, a build with -DFTU_TEST_NO_RECLAIM fails these).
 */
#define _DEFAULT_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "ftu.h"

extern void (*ftu_test_map_hook)(void);

static uint64_t rng_next(uint64_t *state) { /* xorshift64* */
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * UINT64_C(0x2545F4914F6CDD1D);
}

/* ---- 1. one thread against a model ------------------------------------------------------
 * Words are small integers: each key or value put in the map is a fresh word, so that
 * every word can be checked to come back for release exactly once, and never while the
 * map still holds it. Keys share hashes in groups of 4 (hash = key / 4) so that lookups
 * return several candidates and scans return groups. */
#define M_KEYS 600
#define M_WORDS 400000

static int64_t word_key[M_WORDS];      /* key number a key word stands for, -1 for values */
static int released[M_WORDS];
static uint64_t next_word = 1;
static uint64_t model_key_word[M_KEYS]; /* 0: absent */
static uint64_t model_value[M_KEYS];

static uint64_t hash_of(int64_t key) { return (uint64_t)(key / 4) * UINT64_C(0x100000001B3); }

static void take_release(ftu_map_release *out) {
    for (int64_t i = 0; i < out->count; i++) {
        uint64_t w = out->words[i];
        CHECK(w > 0 && w < next_word, "released word %llu was never made", (unsigned long long)w);
        if (w == 0 || w >= next_word) continue;
        CHECK(released[w] == 0, "word %llu released twice", (unsigned long long)w);
        released[w]++;
    }
}

/* The key word of `key` in the map, via a lookup and the "binding's" equality test. */
static int m_find(ftu_map *m, int64_t key, uint64_t *key_word, uint64_t *value, uint64_t *version) {
    uint64_t keys[16], values[16];
    int64_t n = ftu_map_lookup(m, hash_of(key), keys, values, 16, version);
    CHECK(n >= 0 && n <= 4, "lookup of %lld found %lld candidates", (long long)key, (long long)n);
    for (int64_t i = 0; i < n && i < 16; i++) {
        if (word_key[keys[i]] == key) {
            *key_word = keys[i];
            *value = values[i];
            return 1;
        }
    }
    return 0;
}

static void check_against_model(ftu_map *m) {
    int64_t expected = 0;
    for (int64_t k = 0; k < M_KEYS; k++) expected += model_key_word[k] != 0;
    CHECK(ftu_map_size(m) == expected, "size %lld, model %lld", (long long)ftu_map_size(m), (long long)expected);
    static int seen[M_KEYS];
    memset(seen, 0, sizeof seen);
    uint64_t cursor = 0, hashes[3], keys[3], values[3];
    int done = 0, bad = 0;
    int64_t total = 0;
    while (!done) {
        int64_t n = ftu_map_scan(m, &cursor, &done, hashes, keys, values, 3);
        if (n < -1) { /* a group of 4 does not fit in 3: ask with more room */
            uint64_t h[8], kk[8], vv[8];
            n = ftu_map_scan(m, &cursor, &done, h, kk, vv, 8);
            CHECK(n >= 4, "a scan with room for 8 returned %lld", (long long)n);
            for (int64_t i = 0; i < n; i++) {
                int64_t k = word_key[kk[i]];
                if (k < 0 || model_key_word[k] != kk[i] || model_value[k] != vv[i] || hash_of(k) != h[i]) bad++;
                else seen[k]++;
            }
            total += n;
            continue;
        }
        CHECK(n >= 0, "scan failed: %lld", (long long)n);
        for (int64_t i = 0; i < n; i++) {
            int64_t k = word_key[keys[i]];
            if (k < 0 || model_key_word[k] != keys[i] || model_value[k] != values[i] || hash_of(k) != hashes[i]) bad++;
            else seen[k]++;
        }
        total += n;
    }
    int twice = 0, missing = 0;
    for (int64_t k = 0; k < M_KEYS; k++) {
        if (seen[k] > 1) twice++;
        if (model_key_word[k] != 0 && seen[k] == 0) missing++;
    }
    CHECK(bad == 0 && twice == 0 && missing == 0 && total == expected,
          "scan: %d wrong, %d twice, %d missing, %lld of %lld", bad, twice, missing, (long long)total,
          (long long)expected);
}

static void test_single_thread_model(void) {
    ftu_map *m = ftu_map_new(0, 1, 0);
    CHECK(m != NULL, "ftu_map_new");
    memset(word_key, -1, sizeof word_key);
    uint64_t state = 12345;
    int mismatches = 0, prompt = 1;
    for (int step = 0; step < 150000 && next_word + 4 < M_WORDS; step++) {
        /* phases: mostly inserts, then mostly removes, so the table grows and shrinks */
        int phase = (step / 20000) % 2;
        int64_t key = (int64_t)(rng_next(&state) % M_KEYS);
        int op = (int)(rng_next(&state) % 10);
        uint64_t kw = 0, value = 0, version = 0, previous = 0;
        ftu_map_release out;
        int found = m_find(m, key, &kw, &value, &version);
        if (found != (model_key_word[key] != 0) || (found && (kw != model_key_word[key] || value != model_value[key]))) {
            mismatches++;
            continue;
        }
        if (op < (phase ? 3 : 7)) { /* store: ftu_map_put, or replace / insert */
            uint64_t v = next_word++;
            int by_put = (int)(rng_next(&state) & 1), others = 0, added = -1;
            for (int64_t other = key / 4 * 4; other < key / 4 * 4 + 4 && other < M_KEYS; other++)
                others += other != key && model_key_word[other] != 0;
            if (found && (rng_next(&state) % 4) == 0) { /* add refuses a key that is there */
                CHECK(ftu_map_add(m, hash_of(key), kw, v, &out) == FTU_RETRY && out.count == 0, "add of a present key");
            }
            if (found && by_put) {
                CHECK(ftu_map_put(m, hash_of(key), kw, v, &added, &out) == FTU_OK && added == 0, "put (replace)");
                prompt &= out.count == 1 && out.words[0] == model_value[key];
            } else if (found) {
                CHECK(ftu_map_replace(m, hash_of(key), kw, v, 0, 0, &previous, &out) == FTU_OK, "replace");
                CHECK(previous == model_value[key], "replace: previous");
                prompt &= out.count == 1 && out.words[0] == previous;
            } else {
                uint64_t k = next_word++;
                word_key[k] = key;
                int by_add = !by_put && (rng_next(&state) & 1);
                int status = by_put ? ftu_map_put(m, hash_of(key), k, v, &added, &out)
                             : by_add ? ftu_map_add(m, hash_of(key), k, v, &out)
                                      : FTU_RETRY;
                if (by_add) {
                    CHECK(others ? status == FTU_RETRY && out.count == 0 : status == FTU_OK,
                          "add of a new key with %d others of its hash: %d", others, status);
                    take_release(&out);
                }
                if (by_put) {
                    CHECK(others ? status == FTU_RETRY && added == 0 && out.count == 0 : status == FTU_OK && added == 1,
                          "put of a new key with %d others of its hash: %d, added %d", others, status, added);
                    take_release(&out);
                }
                if (status == FTU_RETRY)
                    CHECK(ftu_map_insert(m, hash_of(key), k, v, version, &out) == FTU_OK, "insert");
                model_key_word[key] = k;
            }
            model_value[key] = v;
            take_release(&out);
        } else if (op < 9) { /* remove, by value sometimes (compare-and-delete) */
            int check = op == 8;
            /* by the value it holds, without its key word, sometimes (FTU_MAP_ANY_KEY) */
            int any = check && found && (rng_next(&state) & 1);
            uint64_t wrong = any ? UINT64_MAX - 3 : model_value[key] + 1000000; /* ANY_KEY: a value none holds */
            uint64_t expected = check && (rng_next(&state) & 1) ? wrong : model_value[key];
            uint64_t named = any ? FTU_MAP_ANY_KEY : found ? kw : UINT64_MAX - 1; /* never a key word */
            int status = ftu_map_remove(m, hash_of(key), named, check, expected, &previous, &out);
            if (!found) {
                CHECK(status == FTU_RETRY, "remove of an absent key: %d", status);
            } else if (any && expected != model_value[key]) {
                CHECK(status == FTU_RETRY, "remove of the entry holding a value none holds: %d", status);
            } else if (check && expected != model_value[key]) {
                CHECK(status == FTU_MISMATCH && previous == model_value[key], "compare-and-delete mismatch: %d", status);
            } else {
                CHECK(status == FTU_OK && previous == model_value[key], "remove: %d", status);
                prompt &= out.count == 2;
                model_key_word[key] = 0;
            }
            take_release(&out);
        } else { /* compare-and-set, right or wrong expectation */
            if (!found) continue;
            uint64_t v = next_word++;
            int right = rng_next(&state) & 1;
            int any = rng_next(&state) & 1; /* the entry named by the value it holds */
            uint64_t wrong = any ? UINT64_MAX - 3 : value + 7; /* with ANY_KEY: a value no entry holds */
            int status =
                ftu_map_replace(m, hash_of(key), any ? FTU_MAP_ANY_KEY : kw, v, 1, right ? value : wrong, &previous, &out);
            if (any && !right) {
                CHECK(status == FTU_RETRY, "replace of the entry holding a value none holds: %d", status);
            } else {
                CHECK(status == (right ? FTU_OK : FTU_MISMATCH) && previous == value, "compare-and-set: %d", status);
            }
            if (right) model_value[key] = v;
            else released[v] = 1; /* never stored: nothing will hand it back */
            take_release(&out);
        }
        /* a stale version must not insert */
        if (step % 97 == 0 && !found && model_key_word[key] != 0) {
            uint64_t k2 = next_word++;
            uint64_t v2 = next_word++;
            word_key[k2] = key;
            CHECK(ftu_map_insert(m, hash_of(key), k2, v2, version, &out) == FTU_RETRY,
                  "an insert with a stale version went in");
            released[k2] = released[v2] = 1;
        }
        if (step % 5000 == 0) check_against_model(m);
    }
    CHECK(mismatches == 0, "%d lookups disagreed with the model", mismatches);
    CHECK(prompt, "a lone thread's write did not hand back what it replaced at once");
    check_against_model(m);
    uint64_t words[64];
    int64_t n;
    while ((n = ftu_map_drain(m, words, 64)) > 0) {
        for (int64_t i = 0; i < n; i++) {
            ftu_map_release one = {1, {words[i]}};
            take_release(&one);
        }
    }
    CHECK(ftu_map_size(m) == 0, "size after drain: %lld", (long long)ftu_map_size(m));
    int missing = 0;
    for (uint64_t w = 1; w < next_word; w++) missing += released[w] != 1;
    CHECK(missing == 0, "%d of %llu words were not released exactly once", missing, (unsigned long long)next_word - 1);
    ftu_map_free(m);
}

/* ---- 2. threads -----------------------------------------------------------------------
 * Words are addresses of blobs. A freed blob is poisoned first, and ASan catches any
 * later read. Thread t writes only keys t*1000 .. t*1000+STRIPE-1 (its own model); every
 * thread reads every key; "stable" keys (the first few of each thread) stay in the map
 * from start to end, and every scan must see each of them exactly once. */
#define T_THREADS 8
#define T_KEYS 300
#define T_STABLE 10
#define MAGIC_KEY UINT64_C(0x6b65796b65796b65)
#define MAGIC_VALUE UINT64_C(0x76616c7576616c75)
#define MAGIC_DEAD UINT64_C(0xdeaddeaddeaddead)

typedef struct blob {
    _Atomic uint64_t magic;
    int64_t key;
} blob;

static _Atomic int64_t blobs_made, blobs_freed;
static ftu_map *shared;
static _Atomic int stop_readers;

static uint64_t new_blob(uint64_t magic, int64_t key) {
    blob *b = malloc(sizeof *b);
    atomic_init(&b->magic, magic);
    b->key = key;
    atomic_fetch_add(&blobs_made, 1);
    return (uint64_t)(uintptr_t)b;
}

static int release_blobs(ftu_map_release *out) {
    int bad = 0;
    for (int64_t i = 0; i < out->count; i++) {
        blob *b = (blob *)(uintptr_t)out->words[i];
        uint64_t magic = atomic_exchange(&b->magic, MAGIC_DEAD);
        bad += magic != MAGIC_KEY && magic != MAGIC_VALUE;
        free(b);
        atomic_fetch_add(&blobs_freed, 1);
    }
    out->count = 0;
    return bad;
}

/* Groups of 4 keys share a hash: scans return groups while writers add and remove keys of
 * the same hash as stable ones (a scan that counted a group in one walk of its chain and
 * took it in another lost stable keys). */
static uint64_t key_hash(int64_t key) { return (uint64_t)(key / 4) * 31; }

typedef struct worker {
    int index;
    int bad;
    _Atomic int64_t ops;
    uint64_t key_word[T_KEYS], value_word[T_KEYS]; /* this thread's keys: 0 absent */
} worker;

static worker workers[T_THREADS];

static int find_blob(int64_t key, uint64_t *kw, uint64_t *vw, uint64_t *version, int *bad) {
    uint64_t keys[8], values[8];
    int found = 0;
    ftu_map_enter();
    int64_t n = ftu_map_lookup(shared, key_hash(key), keys, values, 8, version);
    for (int64_t i = 0; i < n && i < 8; i++) {
        blob *k = (blob *)(uintptr_t)keys[i], *v = (blob *)(uintptr_t)values[i];
        if (atomic_load(&k->magic) != MAGIC_KEY || atomic_load(&v->magic) != MAGIC_VALUE || v->key != k->key) (*bad)++;
        if (k->key == key) {
            *kw = keys[i];
            *vw = values[i];
            found = 1;
        }
    }
    ftu_map_leave();
    return found;
}

static void *writer_main(void *arg) {
    worker *w = arg;
    uint64_t state = 777 + (uint64_t)w->index;
    ftu_map_release out = {0, {0}};
    int64_t base = (int64_t)w->index * 1000;
    for (int round = 0; round < 30; round++) {
        int filling = round % 2 == 0; /* fill to grow the table, then empty it to shrink */
        for (int step = 0; step < T_KEYS * 4; step++) {
            int64_t i = (int64_t)(rng_next(&state) % T_KEYS);
            int64_t key = base + i;
            int stable = i < T_STABLE;
            uint64_t kw = 0, vw = 0, version = 0, previous = 0;
            int found = find_blob(key, &kw, &vw, &version, &w->bad);
            if (found != (w->key_word[i] != 0) || (found && (kw != w->key_word[i] || vw != w->value_word[i]))) w->bad++;
            int op = (int)(rng_next(&state) % 4);
            if (!found) {
                if (!filling && !stable && op != 0) continue;
                uint64_t k = new_blob(MAGIC_KEY, key), v = new_blob(MAGIC_VALUE, key);
                int status;
                while ((status = ftu_map_insert(shared, key_hash(key), k, v, version, &out)) == FTU_RETRY) {
                    w->bad += release_blobs(&out);
                    uint64_t kw2, vw2;
                    if (find_blob(key, &kw2, &vw2, &version, &w->bad)) w->bad++; /* only this thread adds it */
                }
                if (status != FTU_OK) w->bad++;
                w->key_word[i] = k;
                w->value_word[i] = v;
            } else if (op == 0 || stable || filling) {
                uint64_t v = new_blob(MAGIC_VALUE, key);
                int added = 0;
                if (op == 2) { /* the one-step store: the key word is this entry's */
                    if (ftu_map_put(shared, key_hash(key), kw, v, &added, &out) != FTU_OK || added) w->bad++;
                } else if (ftu_map_replace(shared, key_hash(key), kw, v, op == 1, vw, &previous, &out) != FTU_OK ||
                           previous != vw) {
                    w->bad++;
                }
                w->value_word[i] = v;
            } else {
                if (ftu_map_remove(shared, key_hash(key), kw, op == 1, vw, &previous, &out) != FTU_OK || previous != vw)
                    w->bad++;
                w->key_word[i] = 0;
            }
            w->bad += release_blobs(&out);
            w->ops++;
        }
    }
    while (ftu_map_reclaim(shared, &out)) {
        w->bad += release_blobs(&out);
        sched_yield();
    }
    w->bad += release_blobs(&out);
    return NULL;
}

static void *reader_main(void *arg) {
    worker *w = arg;
    uint64_t state = 999 + (uint64_t)w->index;
    while (!atomic_load(&stop_readers)) {
        int64_t key = (int64_t)(rng_next(&state) % T_THREADS) * 1000 + (int64_t)(rng_next(&state) % T_KEYS);
        uint64_t kw, vw, version;
        find_blob(key, &kw, &vw, &version, &w->bad);
        w->ops++;
    }
    return NULL;
}

/* Scans the whole map again and again: each stable key exactly once per scan. */
static _Thread_local int holding;
static void hold_reader(void);

static void *scanner_main(void *arg) {
    worker *w = arg;
    holding = 1; /* held between the two walks of a chain (ftu_test_map_hook) */
    uint64_t hashes[16], keys[16], values[16];
    while (!atomic_load(&stop_readers)) {
        int seen[T_THREADS][T_STABLE];
        memset(seen, 0, sizeof seen);
        uint64_t cursor = 0;
        int done = 0;
        while (!done) {
            ftu_map_enter();
            int64_t n = ftu_map_scan(shared, &cursor, &done, hashes, keys, values, 16);
            if (n < 0) w->bad++;
            for (int64_t i = 0; i < n; i++) {
                blob *k = (blob *)(uintptr_t)keys[i];
                if (atomic_load(&k->magic) != MAGIC_KEY || key_hash(k->key) != hashes[i]) w->bad++;
                int64_t t = k->key / 1000, j = k->key % 1000;
                if (j < T_STABLE) seen[t][j]++;
            }
            ftu_map_leave();
            if (n < 0) break;
        }
        for (int t = 0; t < T_THREADS && done; t++)
            for (int j = 0; j < T_STABLE; j++) w->bad += seen[t][j] != 1;
        w->ops++;
    }
    return NULL;
}

static void test_threads_with_growth_and_shrinking(void) {
    shared = ftu_map_new(0, 1, 0); /* the smallest table: it grows and shrinks many times */
    CHECK(shared != NULL, "ftu_map_new");
    ftu_test_map_hook = hold_reader; /* holds the scanner (only it sets `holding`) */
    atomic_store(&stop_readers, 0);
    /* the stable keys first, so that every scan must find them */
    for (int t = 0; t < T_THREADS; t++) {
        workers[t].index = t;
        for (int j = 0; j < T_STABLE; j++) {
            int64_t key = (int64_t)t * 1000 + j;
            uint64_t keys[4], values[4], version;
            ftu_map_release out;
            ftu_map_lookup(shared, key_hash(key), keys, values, 4, &version);
            uint64_t k = new_blob(MAGIC_KEY, key), v = new_blob(MAGIC_VALUE, key);
            CHECK(ftu_map_insert(shared, key_hash(key), k, v, version, &out) == FTU_OK, "stable insert");
            workers[t].key_word[j] = k;
            workers[t].value_word[j] = v;
        }
    }
    pthread_t writers[T_THREADS], readers[2], scanner;
    worker reader_state[2] = {{.index = 100}, {.index = 101}}, scan_state = {.index = 102};
    for (int t = 0; t < T_THREADS; t++) pthread_create(&writers[t], NULL, writer_main, &workers[t]);
    for (int r = 0; r < 2; r++) pthread_create(&readers[r], NULL, reader_main, &reader_state[r]);
    pthread_create(&scanner, NULL, scanner_main, &scan_state);
    for (int t = 0; t < T_THREADS; t++) pthread_join(writers[t], NULL);
    atomic_store(&stop_readers, 1);
    for (int r = 0; r < 2; r++) pthread_join(readers[r], NULL);
    pthread_join(scanner, NULL);
    ftu_test_map_hook = NULL;
    int bad = scan_state.bad + reader_state[0].bad + reader_state[1].bad;
    int64_t ops = 0, expected = 0;
    for (int t = 0; t < T_THREADS; t++) {
        bad += workers[t].bad;
        ops += workers[t].ops;
        for (int i = 0; i < T_KEYS; i++) expected += workers[t].key_word[i] != 0;
    }
    CHECK(bad == 0, "%d inconsistencies seen by the threads", bad);
    CHECK(ftu_map_size(shared) == expected, "size %lld, the writers' models say %lld",
          (long long)ftu_map_size(shared), (long long)expected);
    /* every model entry is in the map, with its words */
    int wrong = 0;
    for (int t = 0; t < T_THREADS; t++) {
        for (int i = 0; i < T_KEYS; i++) {
            uint64_t kw = 0, vw = 0, version;
            int found = find_blob((int64_t)t * 1000 + i, &kw, &vw, &version, &wrong);
            if (found != (workers[t].key_word[i] != 0) || (found && (kw != workers[t].key_word[i] ||
                                                                    vw != workers[t].value_word[i])))
                wrong++;
        }
    }
    CHECK(wrong == 0, "%d keys differ from the writers' models", wrong);
    uint64_t words[32];
    int64_t n;
    ftu_map_release out = {0, {0}};
    while ((n = ftu_map_drain(shared, words, 32)) > 0) {
        for (int64_t i = 0; i < n; i++) {
            out.words[out.count++] = words[i];
            if (out.count == FTU_MAP_RELEASE_MAX) bad += release_blobs(&out);
        }
    }
    bad += release_blobs(&out);
    CHECK(bad == 0, "a released word was not a live key or value");
    CHECK(atomic_load(&blobs_made) == atomic_load(&blobs_freed), "%lld words made, %lld released",
          (long long)atomic_load(&blobs_made), (long long)atomic_load(&blobs_freed));
    printf("threads: %lld writes and reads by 8 writers, %lld reads and %lld scans beside them\n", (long long)ops,
           (long long)(reader_state[0].ops + reader_state[1].ops), (long long)scan_state.ops);
    ftu_map_free(shared);
}

/* ---- 3. readers held inside their window ------------------------------------------------
 * A reader pins, looks up, and holds the words (and, through the hook, a node) for a while
 * before it reads them; writers meanwhile replace and remove those entries and free what
 * they are handed back at once. Nothing may be freed under the reader. */
static void hold_reader(void) {
    if (holding) {
        struct timespec pause = {0, 200000};
        nanosleep(&pause, NULL);
    }
}

static void *held_reader_main(void *arg) {
    worker *w = arg;
    holding = 1;
    uint64_t state = 4242;
    while (!atomic_load(&stop_readers)) {
        int64_t key = (int64_t)(rng_next(&state) % 16);
        uint64_t keys[4], values[4], version;
        ftu_map_enter();
        int64_t n = ftu_map_lookup(shared, key_hash(key), keys, values, 4, &version); /* holds in the hook */
        struct timespec pause = {0, 300000};
        nanosleep(&pause, NULL); /* the window between reading a word and taking it */
        for (int64_t i = 0; i < n && i < 4; i++) {
            blob *k = (blob *)(uintptr_t)keys[i], *v = (blob *)(uintptr_t)values[i];
            if (atomic_load(&k->magic) != MAGIC_KEY || atomic_load(&v->magic) != MAGIC_VALUE) w->bad++;
        }
        ftu_map_leave();
        w->ops++;
    }
    return NULL;
}

static void test_held_readers(void) {
    shared = ftu_map_new(0, 1, 0);
    ftu_test_map_hook = hold_reader;
    atomic_store(&stop_readers, 0);
    worker readers[2] = {{.index = 0}, {.index = 1}};
    pthread_t threads[2];
    for (int r = 0; r < 2; r++) pthread_create(&threads[r], NULL, held_reader_main, &readers[r]);
    ftu_map_release out = {0, {0}};
    int bad = 0;
    uint64_t state = 31337;
    int64_t writes = 0;
    for (int round = 0; round < 3000 || atomic_load(&readers[0].ops) + atomic_load(&readers[1].ops) < 400; round++) {
        int64_t key = (int64_t)(rng_next(&state) % 16);
        uint64_t kw, vw, version, previous;
        if (!find_blob(key, &kw, &vw, &version, &bad)) {
            ftu_map_insert(shared, key_hash(key), new_blob(MAGIC_KEY, key), new_blob(MAGIC_VALUE, key), version, &out);
        } else if (round % 3) {
            ftu_map_replace(shared, key_hash(key), kw, new_blob(MAGIC_VALUE, key), 0, 0, &previous, &out);
        } else {
            ftu_map_remove(shared, key_hash(key), kw, 0, 0, &previous, &out);
        }
        bad += release_blobs(&out);
        ftu_map_reclaim(shared, &out);
        bad += release_blobs(&out);
        writes++;
        if (round % 64 == 0) usleep(100);
    }
    atomic_store(&stop_readers, 1);
    for (int r = 0; r < 2; r++) pthread_join(threads[r], NULL);
    ftu_test_map_hook = NULL;
    bad += readers[0].bad + readers[1].bad;
    CHECK(bad == 0, "%d freed or wrong words seen by held readers", bad);
    CHECK(readers[0].ops + readers[1].ops > 100, "the held readers read only %lld times",
          (long long)(readers[0].ops + readers[1].ops));
    uint64_t words[32];
    int64_t n;
    while ((n = ftu_map_drain(shared, words, 32)) > 0) {
        for (int64_t i = 0; i < n; i++) {
            out.words[out.count++] = words[i];
            if (out.count == FTU_MAP_RELEASE_MAX) release_blobs(&out);
        }
    }
    release_blobs(&out);
    CHECK(atomic_load(&blobs_made) == atomic_load(&blobs_freed), "held readers: %lld words made, %lld released",
          (long long)atomic_load(&blobs_made), (long long)atomic_load(&blobs_freed));
    printf("held readers: %lld writes, %lld held reads\n", (long long)writes,
           (long long)(readers[0].ops + readers[1].ops));
    ftu_map_free(shared);
}

/* ---- 4. bad sizes and failing allocations -------------------------------------------- */
static void test_allocation_failures(void) {
    for (int after = 0; after < 4; after++) {
        ftu_fail_allocations(after);
        ftu_map *m = ftu_map_new(100, 4, 0);
        ftu_fail_allocations(-1);
        if (m != NULL) ftu_map_free(m);
    }
    ftu_map *m = ftu_map_new(-5, -3, 0); /* nonsense hints are clamped */
    CHECK(m != NULL, "ftu_map_new(-5, -3, 0)");
    uint64_t keys[2], values[2], version, previous;
    ftu_map_release out;
    int64_t n = ftu_map_lookup(m, 1, keys, values, 2, &version);
    CHECK(n == 0, "lookup in an empty map: %lld", (long long)n);
    ftu_fail_allocations(0);
    CHECK(ftu_map_insert(m, 1, 10, 20, version, &out) == FTU_NO_MEMORY && out.count == 0,
          "insert without memory");
    ftu_fail_allocations(-1);
    CHECK(ftu_map_size(m) == 0, "a failed insert added something");
    CHECK(ftu_map_insert(m, 1, 10, 20, version, &out) == FTU_OK, "insert");
    /* replace and remove need room in the limbo: make it fail to grow */
    int failures = 0, done = 0;
    for (int after = 0; after < 8 && !done; after++) {
        ftu_fail_allocations(after);
        int status = ftu_map_remove(m, 1, 10, 0, 0, &previous, &out);
        ftu_fail_allocations(-1);
        if (status == FTU_NO_MEMORY) {
            failures++;
            CHECK(ftu_map_size(m) == 1 && ftu_map_lookup(m, 1, keys, values, 2, &version) == 1 && values[0] == 20,
                  "a remove that failed changed the map");
        } else {
            CHECK(status == FTU_OK && previous == 20 && out.count == 2, "remove after %d failures", failures);
            done = 1;
        }
    }
    CHECK(done && failures >= 1, "remove never failed (%d) or never worked", failures);
    ftu_map_free(m);
}

/* ---- 5. FTU_MAP_RELEASE_AT_ONCE: words come back in the write itself, even while another
 * thread is pinned (which holds back the default mode). */
static _Atomic int pinned_state; /* 1: the helper is pinned; 2: it may leave */

static void *stay_pinned(void *arg) {
    (void)arg;
    ftu_map_enter();
    atomic_store(&pinned_state, 1);
    while (atomic_load(&pinned_state) != 2) sched_yield();
    ftu_map_leave();
    return NULL;
}

static void test_release_at_once(void) {
    pthread_t helper;
    atomic_store(&pinned_state, 0);
    pthread_create(&helper, NULL, stay_pinned, NULL);
    while (atomic_load(&pinned_state) != 1) sched_yield();
    for (int mode = 0; mode < 2; mode++) {
        ftu_map *m = ftu_map_new(0, 2, mode ? FTU_MAP_RELEASE_AT_ONCE : 0);
        uint64_t keys[2], values[2], version, previous;
        ftu_map_release out;
        ftu_map_lookup(m, 7, keys, values, 2, &version);
        CHECK(ftu_map_insert(m, 7, 100, 200, version, &out) == FTU_OK && out.count == 0, "insert");
        CHECK(ftu_map_replace(m, 7, 100, 201, 0, 0, &previous, &out) == FTU_OK && previous == 200, "replace");
        CHECK(mode ? out.count == 1 && out.words[0] == 200 : out.count == 0,
              "mode %d: the replaced word came back %lld times with a reader pinned", mode, (long long)out.count);
        CHECK(ftu_map_remove(m, 7, 100, 1, 201, &previous, &out) == FTU_OK && previous == 201, "remove");
        CHECK(mode ? out.count == 2 && out.words[0] == 100 && out.words[1] == 201 : out.count == 0,
              "mode %d: the removed words came back %lld times with a reader pinned", mode, (long long)out.count);
        uint64_t words[8];
        int64_t n = ftu_map_drain(m, words, 8);
        CHECK(n == (mode ? 0 : 3), "mode %d: %lld words left to drain", mode, (long long)n);
        ftu_map_free(m);
    }
    atomic_store(&pinned_state, 2);
    pthread_join(helper, NULL);
}

int main(void) {
    test_single_thread_model();
    test_threads_with_growth_and_shrinking();
    test_held_readers();
    test_allocation_failures();
    test_release_at_once();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
