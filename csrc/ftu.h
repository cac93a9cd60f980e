/*
 * ft_utils core: the flat C ABI.
 *
 * This is the one public header of the C core. It does not include Python.h: the core
 * deals in 64-bit integers and pointer-sized words only, so it builds for any
 * interpreter (the CPython extension ft_utils._native and the cffi module ft_utils._cffi
 * are both built from it) and is unit-tested in plain C with pthreads.
 *
 * Everything between FTU_CDEF_BEGIN and FTU_CDEF_END is read verbatim by cffi_build.py
 * as the cffi cdef, so that block holds plain declarations and integer #defines only
 * (no other preprocessor lines, no inline bodies).
 *
 * Memory order: every operation is sequentially consistent.
 *
 * Cells: a cell is an ordinary, naturally aligned int64_t (or intptr_t) owned by the
 * caller. Once a cell is shared between threads, every access to it must go through
 * these functions.
 */
#ifndef FTU_H
#define FTU_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* FTU_CDEF_BEGIN */

/* Status codes of the checked operations. */
#define FTU_OK 0
#define FTU_OVERFLOW 1          /* the result does not fit in int64; cell unchanged */
#define FTU_ZERO_DIVISION 2     /* division or modulo by zero; cell unchanged */
#define FTU_NEGATIVE_SHIFT 3    /* shift by a negative count; cell unchanged */
#define FTU_NEGATIVE_EXPONENT 4 /* power with a negative exponent; cell unchanged */

/* Result of a checked read-modify-write: status is FTU_OK and value is the new value of
 * the cell, or status is an error code and value is the value the operation saw. */
typedef struct ftu_i64_result {
    int64_t value;
    int status;
} ftu_i64_result;

/* ---- int64 cells ---------------------------------------------------------------- */

int64_t ftu_i64_load(const int64_t *cell);
void ftu_i64_store(int64_t *cell, int64_t value);
/* Stores value, returns the previous value. */
int64_t ftu_i64_exchange(int64_t *cell, int64_t value);
/* Strong compare-and-swap: if the cell holds expected, stores desired. Returns the value
 * the cell held before; the swap happened if and only if that equals expected. */
int64_t ftu_i64_compare_exchange(int64_t *cell, int64_t expected, int64_t desired);

/* Wrapping (two's complement) read-modify-write; each returns the previous value. */
int64_t ftu_i64_fetch_add(int64_t *cell, int64_t operand);
int64_t ftu_i64_fetch_sub(int64_t *cell, int64_t operand);
int64_t ftu_i64_fetch_and(int64_t *cell, int64_t operand);
int64_t ftu_i64_fetch_or(int64_t *cell, int64_t operand);
int64_t ftu_i64_fetch_xor(int64_t *cell, int64_t operand);

/* Checked read-modify-write with Python integer semantics: the new value is computed
 * exactly; if it does not fit in int64 (or the operation is undefined) the cell is left
 * unchanged and the status says why. Floor division and modulo round toward negative
 * infinity as Python's // and % do. */
ftu_i64_result ftu_i64_add(int64_t *cell, int64_t operand);
ftu_i64_result ftu_i64_sub(int64_t *cell, int64_t operand);
ftu_i64_result ftu_i64_mul(int64_t *cell, int64_t operand);
ftu_i64_result ftu_i64_floordiv(int64_t *cell, int64_t operand);
ftu_i64_result ftu_i64_mod(int64_t *cell, int64_t operand);
ftu_i64_result ftu_i64_pow(int64_t *cell, int64_t exponent);
ftu_i64_result ftu_i64_lshift(int64_t *cell, int64_t count);
ftu_i64_result ftu_i64_rshift(int64_t *cell, int64_t count);
ftu_i64_result ftu_i64_and(int64_t *cell, int64_t operand);
ftu_i64_result ftu_i64_or(int64_t *cell, int64_t operand);
ftu_i64_result ftu_i64_xor(int64_t *cell, int64_t operand);

/* ---- pointer-sized word cells ------------------------------------------------------ */

intptr_t ftu_word_load(const intptr_t *cell);
void ftu_word_store(intptr_t *cell, intptr_t value);
intptr_t ftu_word_exchange(intptr_t *cell, intptr_t value);
/* Same contract as ftu_i64_compare_exchange. */
intptr_t ftu_word_compare_exchange(intptr_t *cell, intptr_t expected, intptr_t desired);
intptr_t ftu_word_fetch_add(intptr_t *cell, intptr_t operand);
intptr_t ftu_word_fetch_sub(intptr_t *cell, intptr_t operand);
intptr_t ftu_word_fetch_and(intptr_t *cell, intptr_t operand);
intptr_t ftu_word_fetch_or(intptr_t *cell, intptr_t operand);
intptr_t ftu_word_fetch_xor(intptr_t *cell, intptr_t operand);

/* ---- waiting ------------------------------------------------------------------------
 * Blocking calls take an absolute deadline on the monotonic clock, in nanoseconds
 * (ftu_monotonic_ns() + timeout), or FTU_WAIT_FOREVER, or FTU_NO_WAIT. A wait sleeps in
 * the kernel (a futex on Linux) and is woken by the call that makes progress possible.
 * A signal delivered to the waiting thread ends the wait with FTU_INTERRUPTED, having
 * taken and added nothing, so the caller can run its signal handlers and call again. */
#define FTU_TIMEOUT 5     /* nothing to take / no room, before the deadline */
#define FTU_SHUTDOWN 6    /* the queue is shut down (see ftu_queue_shutdown) */
#define FTU_INTERRUPTED 7 /* a signal interrupted the wait; nothing was taken or added */
#define FTU_NO_MEMORY 8   /* an allocation failed; nothing was added */
#define FTU_TOO_MANY 9    /* task_done called more times than items were added */
#define FTU_DUPLICATE 10  /* the key is already present */
#define FTU_FAILED 11     /* the gatherer was marked failed */
#define FTU_UNSUPPORTED 12 /* the object was not created with what this call needs */
#define FTU_RETRY 13       /* the map changed since the caller looked: look again */
#define FTU_MISMATCH 14    /* the entry holds another value than expected; nothing changed */

#define FTU_WAIT_FOREVER -1
#define FTU_NO_WAIT 0

/* A signal that arrives while a call is on its way to sleep (spinning, yielding, taking a
 * lock) interrupts nothing: its handler ran before the sleep began. A thread that must
 * notice signals (Python's main thread) therefore sleeps in slices, and looks for
 * handlers to run between them: the first slice is short (the way to sleep is longest
 * on the first call, which may spin), each next one four times as long, up to the longest.
 * Each slice costs a wake-up, so they grow rather than stay short. */
#define FTU_SIGNAL_SLICE_FIRST_NS 50000000 /* 50 ms */
#define FTU_SIGNAL_SLICE_MAX_NS 400000000  /* 400 ms */

int64_t ftu_monotonic_ns(void);

/* A measurement of the machine (for benchmarks): the nanoseconds one CPU takes to get a
 * cache line another has just written, from `hops` one-way hand-offs between this thread
 * and a new one, giving up after budget_ns. -1 if no thread could be started or no hop
 * was timed. Where the two threads cannot run at once (one free CPU) the figure is that
 * of thread switches instead. */
int64_t ftu_probe_line_transfer_ns(int64_t hops, int64_t budget_ns);

/* ---- queue: a multi-producer multi-consumer FIFO of 64-bit words ---------------------
 * Strict FIFO (the order in which pushes complete), exact size, optional capacity.
 * Flags: FTU_QUEUE_SPIN makes waiters spin and yield briefly before they sleep (for
 * busy queues: lower latency, more CPU); FTU_QUEUE_TASKS keeps the unfinished-task
 * count of queue.Queue (task_done / join); FTU_QUEUE_PREFETCH says the words are
 * addresses of what they stand for, and a pop then asks the CPU to fetch what a word a few
 * places behind it points to (a hint only: any word may be pushed); FTU_QUEUE_BOUNDABLE
 * counts free places even while the queue is unbounded, so that ftu_queue_set_capacity
 * can bound it later (a queue created with a capacity or FTU_QUEUE_TASKS always does;
 * counting costs each push and pop one more atomic operation).
 * Shutdown: after ftu_queue_shutdown(q, 0) push fails with FTU_SHUTDOWN and pop takes
 * what is left, then fails with FTU_SHUTDOWN; after ftu_queue_shutdown(q, 1) pop fails at
 * once (the owner takes the leftovers with ftu_queue_drain to release them). Every
 * waiter is woken by a shutdown. */
#define FTU_QUEUE_SPIN 1
#define FTU_QUEUE_TASKS 2
#define FTU_QUEUE_PREFETCH 4
#define FTU_QUEUE_BOUNDABLE 8
#define FTU_QUEUE_OPEN 0
#define FTU_QUEUE_SHUT 1
#define FTU_QUEUE_SHUT_IMMEDIATE 2

typedef struct ftu_queue ftu_queue;

/* capacity 0 = unbounded. NULL if out of memory. */
ftu_queue *ftu_queue_new(int64_t capacity, int flags);
/* Frees the queue; words still inside are forgotten (drain them first). */
void ftu_queue_free(ftu_queue *q);
/* FTU_OK, FTU_TIMEOUT (full), FTU_SHUTDOWN, FTU_INTERRUPTED or FTU_NO_MEMORY. */
int ftu_queue_push(ftu_queue *q, uint64_t word, int64_t deadline_ns);
/* FTU_OK (*word set), FTU_TIMEOUT (empty), FTU_SHUTDOWN or FTU_INTERRUPTED. */
int ftu_queue_pop(ftu_queue *q, uint64_t *word, int64_t deadline_ns);
/* Waits, taking nothing, until a word is there to take or the queue is shut down:
 * FTU_OK (then call ftu_queue_pop with FTU_NO_WAIT: it may still find nothing if another
 * consumer was first), FTU_TIMEOUT or FTU_INTERRUPTED. For callers that must take only at
 * a moment of their own choosing: a Python binding waits with its thread state detached
 * but takes attached, so that a garbage collector never runs while a reference is on its
 * way from the queue (which it traverses) to the caller. */
int ftu_queue_wait_pop(ftu_queue *q, int64_t deadline_ns);
/* A pop in two steps, for a caller that must prepare what it will hand on before it
 * takes the word, and must not take it if that fails (a binding that wraps the object
 * in a new one: failing after the take would lose the object). ftu_queue_peek reads the
 * head word without taking it: FTU_OK (*word set), FTU_TIMEOUT (empty) or FTU_SHUTDOWN,
 * as ftu_queue_pop with FTU_NO_WAIT; hold, if not NULL, is called with the word under
 * the consumers' lock, so that the caller can keep what it stands for alive while
 * another consumer may take it (hold must not call the queue). ftu_queue_pop_if then
 * takes the head word only if it is `expected`: FTU_OK, FTU_TIMEOUT (the head is another
 * word, or there is none: peek again) or FTU_SHUTDOWN. Taking a word equal to the one
 * peeked is taking the head, whichever push it came from: FIFO order holds. */
int ftu_queue_peek(ftu_queue *q, uint64_t *word, void (*hold)(uint64_t word, void *arg), void *arg);
int ftu_queue_pop_if(ftu_queue *q, uint64_t expected);
/* As ftu_queue_pop_if; after taking, *next (if not NULL) is the word now at the head, as
 * peeked under the same lock, or 0 if none is there yet (or that word is 0): a caller
 * that pops head after head learns each next head without a call to peek. */
int ftu_queue_pop_if_next(ftu_queue *q, uint64_t expected, uint64_t *next);
/* Takes one word whatever the state, without waiting: FTU_OK or FTU_TIMEOUT (empty). */
int ftu_queue_drain(ftu_queue *q, uint64_t *word);
int64_t ftu_queue_size(ftu_queue *q);
int64_t ftu_queue_capacity(ftu_queue *q);
/* Changes the capacity (0 or less, or 2**61 - 1 or more: unbounded; ftu_queue_capacity
 * then reads 0); waiting producers re-check. FTU_OK, or FTU_UNSUPPORTED (nothing changed)
 * for a queue created unbounded without FTU_QUEUE_TASKS or FTU_QUEUE_BOUNDABLE. */
int ftu_queue_set_capacity(ftu_queue *q, int64_t capacity);
void ftu_queue_shutdown(ftu_queue *q, int immediate);
int ftu_queue_state(ftu_queue *q);
/* Turns FTU_QUEUE_SPIN on (spin non-zero) or off for the waits that start from now on;
 * ftu_queue_spins says which it is. */
void ftu_queue_set_spin(ftu_queue *q, int spin);
int ftu_queue_spins(ftu_queue *q);
/* Calls visit(word, arg) for each word in the queue, holding both of its locks (so
 * visit must not call the queue); stops at and returns the first non-zero result. For
 * a garbage collector's traversal. */
int ftu_queue_visit(ftu_queue *q, int (*visit)(uint64_t word, void *arg), void *arg);
/* With FTU_QUEUE_TASKS: each push adds an unfinished task, task_done ends one. */
int64_t ftu_queue_unfinished(ftu_queue *q);
int ftu_queue_task_done(ftu_queue *q); /* FTU_OK or FTU_TOO_MANY */
/* Waits until no task is unfinished: FTU_OK, FTU_TIMEOUT or FTU_INTERRUPTED. */
int ftu_queue_join(ftu_queue *q, int64_t deadline_ns);

/* ---- gather: words inserted under integer keys by many threads, taken in key order ---
 * Keys are 0 or more. take waits until the key is present; with clear it removes it. */
typedef struct ftu_gather ftu_gather;

ftu_gather *ftu_gather_new(void);
/* Frees the gatherer; words still inside are forgotten (drain them first). */
void ftu_gather_free(ftu_gather *g);
/* FTU_OK, FTU_DUPLICATE (key present; nothing changed) or FTU_NO_MEMORY. */
int ftu_gather_insert(ftu_gather *g, int64_t key, uint64_t word);
/* FTU_OK (*word set), FTU_TIMEOUT, FTU_INTERRUPTED or FTU_FAILED. */
int ftu_gather_take(ftu_gather *g, int64_t key, int clear, uint64_t *word, int64_t deadline_ns);
/* Waits, taking nothing, until the key the int64 cell *key_cell holds is present, the
 * cell holds another key (or one that is negative or past max_key: nothing to wait for),
 * or the gatherer fails: FTU_OK (look again: read the cell, take with FTU_NO_WAIT),
 * FTU_TIMEOUT, FTU_INTERRUPTED or FTU_FAILED. The cell is how threads sharing one pass
 * over keys 0..max_key agree on the next key: whoever changes it (through the ftu_i64_*
 * functions) calls ftu_gather_notify. */
int ftu_gather_wait(ftu_gather *g, const int64_t *key_cell, int64_t max_key, int64_t deadline_ns);
/* Moves a pass on by one key, in one step under the gatherer's lock, for threads that
 * look at a key (ftu_gather_take with clear 0), prepare its word's use, then take it: if
 * *key_cell still holds key, key holds word and g has not failed, takes the key (removes
 * it if clear), stores key + 1 in the cell and wakes the waiters: FTU_OK. Otherwise
 * changes nothing: FTU_TIMEOUT (the cell moved, or the key is gone or holds another
 * word) or FTU_FAILED. A thread that moves the cell otherwise must not run beside this
 * call on the same cell (the native binding does both under a lock of its own). */
int ftu_gather_advance(ftu_gather *g, int64_t *key_cell, int64_t key, uint64_t word, int clear);
/* Wakes every thread waiting in ftu_gather_wait on g to re-read its cell. */
void ftu_gather_notify(ftu_gather *g);
/* Marks the gatherer failed: every waiting and later take returns FTU_FAILED. */
void ftu_gather_fail(ftu_gather *g);
int ftu_gather_failed(ftu_gather *g);
int64_t ftu_gather_size(ftu_gather *g);
/* As ftu_queue_visit, for the gatherer's words. */
int ftu_gather_visit(ftu_gather *g, int (*visit)(uint64_t word, void *arg), void *arg);
/* Removes and returns any one entry: FTU_OK or FTU_TIMEOUT (empty). Draining n entries
 * one call at a time costs O(table size + n) in all. */
int ftu_gather_drain(ftu_gather *g, int64_t *key, uint64_t *word);

/* ---- map: a concurrent hash table of words ------------------------------------------
 * Entries are (hash, key word, value word). The core never compares keys: a lookup hands
 * back every entry with the full 64-bit hash asked for, and the caller decides which key
 * is equal to its own (a binding: identity first, then ==). Writes then name the entry
 * by its key word, so an equality test done outside the map stays valid: if the entry
 * is gone when the write comes, the write changes nothing and says FTU_RETRY. A key word
 * is never 0 (FTU_MAP_ANY_KEY).
 *
 * Readers take no lock. Writers lock one stripe of the table (by hash); the table grows
 * and shrinks while readers and writers go on. Memory is reclaimed by epochs: a word that
 * a write replaces or removes is not handed back for release while a reader can still
 * see it. A reader that must take a reference to a word it read (a binding: an
 * incref) pins itself around the lookup and the taking with ftu_map_enter/ftu_map_leave.
 * Each write fills a ftu_map_release with the words that have become safe to release
 * (those of this write at once when no other thread is pinned; otherwise a few writes
 * later, or by ftu_map_reclaim); the caller releases them after the call. `out` may be
 * NULL: the words then wait for a later write or ftu_map_reclaim (or, with
 * FTU_MAP_RELEASE_AT_ONCE, are forgotten: the caller knows them already).
 *
 * Keys and values of an entry stay the caller's business: the map only holds them.
 * A caller that needs the removed or previous value (pop) stays pinned from before the
 * write until it has taken its reference to *previous. */
#define FTU_MAP_RELEASE_MAX 8
#define FTU_MAP_RELEASE_AT_ONCE 1
#define FTU_MAP_ANY_KEY 0 /* ftu_map_replace / ftu_map_remove: the entry holding `expected` */

typedef struct ftu_map ftu_map;
typedef struct ftu_map_release {
    int64_t count;
    uint64_t words[8];
} ftu_map_release;

/* size_hint: entries expected; concurrency: threads expected to write at once (sizes the
 * stripes). flags: FTU_MAP_RELEASE_AT_ONCE hands the words a write replaces or removes
 * back at once, in that write's ftu_map_release, without waiting for readers: for a
 * caller whose readers can tell a word that is no longer valid (the cffi binding's
 * tickets are never reused, and a reader looks again when one is gone). NULL if out of
 * memory. */
ftu_map *ftu_map_new(int64_t size_hint, int64_t concurrency, int flags);
/* Frees the map; words still inside or waiting for release are forgotten (drain first).
 * No other thread may use the map any more. */
void ftu_map_free(ftu_map *m);
/* Pins the calling thread (nests): FTU_OK, or FTU_NO_MEMORY (not pinned: do not leave)
 * if its first pin could not allocate the thread's record. */
int ftu_map_enter(void);
void ftu_map_leave(void);
/* The entries with this hash: writes up to cap of their key and value words, returns how
 * many there are (call again with more room if that is more than cap), or -1 if out of
 * memory. *version is what ftu_map_insert needs to add the key if none of them is equal
 * (version may be NULL when no insert follows: a pure read then touches no line that
 * writers write, other than the entries'). */
int64_t ftu_map_lookup(ftu_map *m, uint64_t hash, uint64_t *keys, uint64_t *values, int64_t cap,
                       uint64_t *version);
/* Adds an entry if no entry of the hash's stripe was added or removed since the lookup
 * that gave version: FTU_OK, FTU_RETRY (nothing added: look again) or FTU_NO_MEMORY. */
int ftu_map_insert(ftu_map *m, uint64_t hash, uint64_t key, uint64_t value, uint64_t version,
                   ftu_map_release *out);
/* The common store in one step, for a caller whose key may be the very word stored: if
 * an entry has key word `key`, stores value in it (the value replaced waits for release);
 * else, if no entry has this hash, adds (hash, key, value) (*added = 1). FTU_OK, FTU_RETRY
 * (entries of this hash with other key words: compare, then ftu_map_replace or
 * ftu_map_insert) or FTU_NO_MEMORY; nothing changed unless FTU_OK. */
int ftu_map_put(ftu_map *m, uint64_t hash, uint64_t key, uint64_t value, int *added, ftu_map_release *out);
/* Adds (hash, key, value) if no entry has this hash: FTU_OK, FTU_RETRY (nothing changed:
 * entries of this hash exist, perhaps one of key word `key`) or FTU_NO_MEMORY. */
int ftu_map_add(ftu_map *m, uint64_t hash, uint64_t key, uint64_t value, ftu_map_release *out);
/* Stores value in the entry of key word `key` (if check, only if it holds `expected`):
 * FTU_OK (*previous: the value replaced, now waiting for release), FTU_MISMATCH
 * (*previous: the value it holds), FTU_RETRY (no entry has that key word) or
 * FTU_NO_MEMORY; nothing changed unless FTU_OK. With key FTU_MAP_ANY_KEY (and check), the
 * entry is the one of the hash that holds `expected` (FTU_RETRY if none does): for a
 * caller whose value words are unique, which can name an entry without its key. */
int ftu_map_replace(ftu_map *m, uint64_t hash, uint64_t key, uint64_t value, int check, uint64_t expected,
                    uint64_t *previous, ftu_map_release *out);
/* Removes the entry of key word `key` (if check, only if it holds `expected`); the same
 * statuses; on FTU_OK its key and value words wait for release. */
int ftu_map_remove(ftu_map *m, uint64_t hash, uint64_t key, int check, uint64_t expected, uint64_t *previous,
                   ftu_map_release *out);
/* Hands back words that became safe to release since the writes that retired them:
 * returns 1 if some are still waiting (readers were pinned), else 0. */
int ftu_map_reclaim(ftu_map *m, ftu_map_release *out);
/* Entries (approximately, while writers run; exactly when they are done). */
int64_t ftu_map_size(ftu_map *m);
/* The scan cursor at which the entries of `hash` come: a scan started there begins with
 * them (to resume a walk near an entry, e.g. where the last popitem took one). */
uint64_t ftu_map_cursor_of(uint64_t hash);
/* Weakly consistent iteration in an order of the hashes that growth does not change:
 * start with *cursor 0 and *done 0; each call writes up to cap entries (hash, key,
 * value) and returns how many, moving the cursor, and sets *done at the end. An entry
 * present from the first call to the last is returned exactly once; one added or removed
 * meanwhile may or may not be. Entries that share a hash come in one call: if cap is
 * less than their number n, returns -n (n >= 2) and moves nothing; -1 if out of memory.
 * Words are as from ftu_map_lookup (pin to take references). */
int64_t ftu_map_scan(ftu_map *m, uint64_t *cursor, int *done, uint64_t *hashes, uint64_t *keys,
                     uint64_t *values, int64_t cap);
/* Calls visit on every key and value word, and on the words waiting for release; stops
 * at and returns the first non-zero result. Only while no other thread uses the map (a
 * stop-the-world garbage collector), as it takes no lock. */
int ftu_map_visit(ftu_map *m, int (*visit)(uint64_t word, void *arg), void *arg);
/* Takes words out for release when no other thread uses the map any more (before
 * ftu_map_free, or to empty it at once): the key and value words of the entries (which
 * it removes) and the words waiting for release, up to cap (at least 2); returns how many
 * it wrote, 0 when nothing is left. */
int64_t ftu_map_drain(ftu_map *m, uint64_t *words, int64_t cap);

/* ---- testing aid ---------------------------------------------------------------------- */

/* Makes the core's allocations fail, as when memory is exhausted: the first `after`
 * allocations from now succeed and every later one fails, until this is called with
 * after < 0 (the default state: nothing fails). For tests of what each operation does
 * when it cannot allocate; process-wide, so not for use while other threads work. */
void ftu_fail_allocations(int64_t after);

/* FTU_CDEF_END */

#ifdef __cplusplus
}
#endif

#endif /* FTU_H */
