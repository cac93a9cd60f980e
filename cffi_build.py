"""Builds ft_utils._cffi, the cffi out-of-line (API mode) module, from the C core.

The cdef is read from the public header csrc/ftu.h (the block between FTU_CDEF_BEGIN and
FTU_CDEF_END), so the prototypes are never copied by hand. setup.py uses ``ffibuilder``
through ``cffi_modules``; ``python cffi_build.py`` builds the module in place.
"""

import os
import re
from pathlib import Path

import cffi

ROOT = Path(__file__).resolve().parent
HEADER = ROOT / "csrc" / "ftu.h"


def read_cdef(header: Path = HEADER) -> str:
    text = header.read_text()
    match = re.search(r"/\* FTU_CDEF_BEGIN \*/(.*?)/\* FTU_CDEF_END \*/", text, re.S)
    if match is None:
        raise RuntimeError(f"{header}: no FTU_CDEF_BEGIN ... FTU_CDEF_END block")
    return match.group(1)


def _relative(path: str) -> str:
    # setuptools wants source paths relative to the project root.
    return os.path.relpath(ROOT / path, os.getcwd())


# Helpers of the binding itself (not of the core): what the Python classes need to do in
# one C call so that no exception can strike between two steps. cffi code runs signal
# handlers between any two bytecodes (KeyboardInterrupt, or any exception a handler
# raises), so "the core took the ticket" and "the object left the ticket dict" must not
# be two Python steps, and a push must leave a trace of whether the core took its ticket.
# The record of a call and the ConcurrentDict's buffers (see BINDING_SOURCE), declared once
# for the cdef and the C source.
BINDING_STRUCTS = """
typedef struct ftu_cffi_record {
    int64_t in;
    int64_t out;
} ftu_cffi_record;
typedef struct ftu_cffi_found {
    int64_t version;
    int64_t keys[16];
    int64_t values[16];
} ftu_cffi_found;
typedef struct ftu_cffi_scan {
    int64_t cursor;
    int done;
    int64_t hashes[64];
    int64_t keys[64];
    int64_t values[64];
} ftu_cffi_scan;
"""

BINDING_CDEF = BINDING_STRUCTS + """
int ftu_cffi_i64_cas(int64_t *cell, int64_t expected, int64_t desired);
void ftu_cffi_exiting(void);
void ftu_cffi_queue_free(ftu_queue *q);
void ftu_cffi_map_free(ftu_map *m);
void ftu_cffi_gather_free(ftu_gather *g);
int ftu_cffi_quick_put_in(const ftu_cffi_record *record, int64_t ticket);
int ftu_cffi_quick_took_out(const ftu_cffi_record *record, int64_t ticket);
int64_t ftu_cffi_queue_peek(ftu_queue *q);
int ftu_cffi_queue_take_if(ftu_queue *q, uint64_t ticket);
int64_t ftu_cffi_queue_drain(ftu_queue *q);
int ftu_cffi_queue_push(ftu_queue *q, uint64_t ticket, ftu_cffi_record *record, int64_t deadline_ns);
int ftu_cffi_quick_queue_push(ftu_queue *q, uint64_t ticket, ftu_cffi_record *record);
int64_t ftu_cffi_quick_queue_take(ftu_queue *q, uint64_t expected, ftu_cffi_record *record);
int ftu_cffi_quick_queue_took(ftu_queue *q, uint64_t expected, const ftu_cffi_record *record);
int64_t ftu_cffi_quick_queue_peek(ftu_queue *q);
int ftu_cffi_quick_holds_gil(void);
int ftu_cffi_holds_gil(void);
int64_t ftu_cffi_gather_peek(ftu_gather *g, const int64_t *key_cell, int64_t max_key);
int ftu_cffi_gather_advance(ftu_gather *g, int64_t *key_cell, int clear, uint64_t ticket);
int ftu_cffi_gather_insert(ftu_gather *g, int64_t key, uint64_t ticket, ftu_cffi_record *record);
int64_t ftu_cffi_quick_map_get1(ftu_map *m, int64_t hash);
int64_t ftu_cffi_quick_map_lookup(ftu_map *m, int64_t hash, ftu_cffi_found *found);
int64_t ftu_cffi_quick_map_lookup_n(ftu_map *m, int64_t hash, int64_t *keys, int64_t *values, int64_t cap,
                              int64_t *version);
int64_t ftu_cffi_quick_map_scan(ftu_map *m, ftu_cffi_scan *scan);
int64_t ftu_cffi_quick_map_scan_n(ftu_map *m, int64_t *cursor, int *done, int64_t *hashes, int64_t *keys,
                            int64_t *values, int64_t cap);
int ftu_cffi_quick_map_insert(ftu_map *m, int64_t hash, int64_t key, int64_t value, int64_t version,
                        ftu_cffi_record *record);
int ftu_cffi_quick_map_replace(ftu_map *m, int64_t hash, int64_t key, int64_t expected, int64_t value,
                         ftu_cffi_record *record);
int ftu_cffi_quick_map_remove(ftu_map *m, int64_t hash, int64_t key, int64_t expected, ftu_cffi_record *record);
int ftu_cffi_quick_map_add(ftu_map *m, int64_t hash, int64_t key, int64_t value, ftu_cffi_record *record);
int ftu_cffi_quick_map_swap(ftu_map *m, int64_t hash, int64_t expected, int64_t value, ftu_cffi_record *record);
int ftu_cffi_quick_map_drop(ftu_map *m, int64_t hash, int64_t expected, ftu_cffi_record *record);
int64_t ftu_cffi_quick_map_cursor_of(int64_t hash);
int64_t ftu_cffi_quick_map_size(ftu_map *m);
int64_t ftu_cffi_quick_map_get_word(ftu_map *m, int64_t hash, int64_t key);
int ftu_cffi_quick_map_put_word(ftu_map *m, int64_t hash, int64_t key, int64_t value, ftu_cffi_record *record);
int ftu_cffi_quick_map_put_word_done(ftu_map *m, int64_t hash, int64_t key, int64_t value,
                                     const ftu_cffi_record *record);
int ftu_cffi_quick_map_undo_put(ftu_map *m, int64_t hash, int64_t key, int64_t value, const ftu_cffi_record *record);
"""

# The functions named ftu_cffi_quick_*: calls that never wait (a queue's push, take and
# peek; the ConcurrentDict's lookups, scans and writes, which hold a lock of one stripe
# of the table while they change it, and grow or shrink the table at times; the reads
# of a call's record). On CPython, cffi releases the GIL around every
# call (Py_BEGIN_ALLOW_THREADS in each function's wrapper, which it writes after this
# source); releasing and taking it back costs more than these calls themselves (85-100 ns
# of a 110 ns call, with the GIL). Their wrappers keep it, as the native extension does
# for what does not wait: the macros below test the name of the wrapper they expand in.
# Every other function (those that wait among them) releases it as before. Nor do they
# save and restore errno (cffi's ffi.errno), which nothing here sets or reads.
# ftu_cffi_quick_holds_gil and ftu_cffi_holds_gil let a test check both. No core lock is
# ever held by a thread waiting for the GIL (the core never calls back into Python), so
# a thread keeping the GIL while it takes a core lock only waits for a thread that is
# running C code without it.
QUICK_PREFIX = "_cffi_f_ftu_cffi_quick_"
QUICK_SOURCE = r"""
#ifndef PYPY_VERSION
int ftu_cffi_quick_holds_gil(void) { return PyGILState_Check(); }
int ftu_cffi_holds_gil(void) { return PyGILState_Check(); }
#define FTU_QUICK(function) (strncmp((function), "%s", %d) == 0)
#undef Py_BEGIN_ALLOW_THREADS
#undef Py_END_ALLOW_THREADS
#define Py_BEGIN_ALLOW_THREADS { PyThreadState *_save = FTU_QUICK(__func__) ? NULL : PyEval_SaveThread();
#define Py_END_ALLOW_THREADS if (_save != NULL) PyEval_RestoreThread(_save); }
/* nor do they save and restore errno for ffi.errno (they never set it, nobody reads it) */
static void ftu_cffi_no_errno(void) {}
static void ftu_cffi_restore_errno(void) { _cffi_restore_errno(); }
static void ftu_cffi_save_errno(void) { _cffi_save_errno(); }
#undef _cffi_restore_errno
#undef _cffi_save_errno
#define _cffi_restore_errno (FTU_QUICK(__func__) ? ftu_cffi_no_errno : ftu_cffi_restore_errno)
#define _cffi_save_errno (FTU_QUICK(__func__) ? ftu_cffi_no_errno : ftu_cffi_save_errno)
#else
int ftu_cffi_quick_holds_gil(void) { return -1; }
int ftu_cffi_holds_gil(void) { return -1; }
#endif
""" % (QUICK_PREFIX, len(QUICK_PREFIX))

BINDING_SOURCE = r"""
#include "ftu.h"

#include <stdatomic.h>
#include <string.h>
""" + BINDING_STRUCTS + r"""
/* The frees of the core objects the binding's handles own (see ft_utils/cffi_backend/
 * _api.py, "freeing core objects"), which do nothing once the interpreter exits (an
 * atexit function calls ftu_cffi_exiting). CPython's last collection at exit runs no
 * gc.callbacks, so the binding cannot keep a handle from being finalized, and freed,
 * before the __del__ of another object of the same garbage uses its queue, map or
 * gatherer. What is left then is the process's to reclaim. */
static _Atomic int exiting;

void ftu_cffi_exiting(void) { atomic_store(&exiting, 1); }

void ftu_cffi_queue_free(ftu_queue *q) {
    if (!atomic_load(&exiting)) ftu_queue_free(q);
}

void ftu_cffi_map_free(ftu_map *m) {
    if (!atomic_load(&exiting)) ftu_map_free(m);
}

void ftu_cffi_gather_free(ftu_gather *g) {
    if (!atomic_load(&exiting)) ftu_gather_free(g);
}

/* compare_exchange that answers whether it swapped (1 or 0: cached small ints), so that
 * nothing is allocated once the cell has changed. */
int ftu_cffi_i64_cas(int64_t *cell, int64_t expected, int64_t desired) {
    return ftu_i64_compare_exchange(cell, expected, desired) == expected;
}

/* A pop in two steps (see ftu_queue_peek): the ticket of the head of q, not taken (> 0),
 * or 0 if there is none (empty, or shut down: the caller reads the state); then
 * take_if takes the head if it is still that ticket (1) or not (0). Whatever may fail
 * (making the ticket's int, a LocalWrapper) happens between the two, with nothing taken;
 * take_if is used as map(objects.pop, compress((ticket,), map(take_if, ...))): the
 * ticket leaves the core and its object the dict inside one C-level call, with no
 * allocation after the take (its result is a cached small int; the ticket's int was made
 * before). */
int64_t ftu_cffi_queue_peek(ftu_queue *q) {
    uint64_t ticket;
    return ftu_queue_peek(q, &ticket, NULL, NULL) == FTU_OK ? (int64_t)ticket : 0;
}

int ftu_cffi_queue_take_if(ftu_queue *q, uint64_t ticket) { return ftu_queue_pop_if(q, ticket) == FTU_OK; }

/* The same with ftu_queue_drain: whatever the state. */
int64_t ftu_cffi_queue_drain(ftu_queue *q) {
    uint64_t ticket;
    return ftu_queue_drain(q, &ticket) == FTU_OK ? (int64_t)ticket : 0;
}

/* The record of one call (ftu_cffi_record): the ticket the call put into its container
 * (in: a push's or an insert's, a dict write's new value ticket) and the one it took out
 * (out: a pop's, or the value ticket a dict write replaced or removed), written by the
 * call once its change is made. The Python side gives each call a record of its own,
 * from a free list (see ft_utils/cffi_backend/_api.py, "records"), and gives it back only
 * where no exception handler of the call can read it any more. After an exception (a
 * signal handler's, a MemoryError) the handler asks the record whether its call's change
 * was made: calls made in between by a finalizer or a signal handler of the same thread,
 * however many, have records of their own. Tickets are never reused, so a record left
 * from an earlier call never names this call's ticket: nothing needs resetting. The
 * answers are cached small ints: asking allocates nothing. */
int ftu_cffi_quick_put_in(const ftu_cffi_record *record, int64_t ticket) { return record->in == ticket; }

int ftu_cffi_quick_took_out(const ftu_cffi_record *record, int64_t ticket) { return record->out == ticket; }

int ftu_cffi_queue_push(ftu_queue *q, uint64_t ticket, ftu_cffi_record *record, int64_t deadline_ns) {
    int status = ftu_queue_push(q, ticket, deadline_ns);
    if (status == FTU_OK) record->in = (int64_t)ticket;
    return status;
}

/* The queues' fast paths (see ft_utils/cffi_backend/_object_queue.py): a push that does
 * not wait, and a pop in one call that takes the head only if it is the ticket the caller
 * expects, whose int (and object) the caller already holds, so that nothing is allocated
 * between the take and the hand-over that could fail and lose the value. It answers the
 * ticket now at the head (> 0; 0 if there is none), the caller's next expectation, or -1
 * if it took nothing. Making the int of that answer can fail (MemoryError) after the
 * take: the caller then asks ftu_cffi_quick_queue_took (with the same arguments: one
 * tuple, made before the take, so that asking allocates nothing) whether the call's
 * record says it took the ticket, and hands the value over all the same. */
int ftu_cffi_quick_queue_push(ftu_queue *q, uint64_t ticket, ftu_cffi_record *record) {
    return ftu_cffi_queue_push(q, ticket, record, FTU_NO_WAIT);
}

int64_t ftu_cffi_quick_queue_take(ftu_queue *q, uint64_t expected, ftu_cffi_record *record) {
    uint64_t next;
    if (expected == 0 || ftu_queue_pop_if_next(q, expected, &next) != FTU_OK) return -1;
    record->out = (int64_t)expected;
    return (int64_t)next;
}

int ftu_cffi_quick_queue_took(ftu_queue *q, uint64_t expected, const ftu_cffi_record *record) {
    (void)q;
    return record->out == (int64_t)expected;
}

int64_t ftu_cffi_quick_queue_peek(ftu_queue *q) { return ftu_cffi_queue_peek(q); }

/* A step of a pass over keys 0..max_key that threads may share, in two parts, with no
 * lock of the binding's (a Python-level lock can be left held by a signal handler that
 * raises at the wrong moment). peek: the ticket under the key in the cell (> 0), taking
 * nothing and leaving the cell; 0: not there yet; -1: the pass is over; -2: the gatherer
 * failed. Then, once what may fail is done (making the ticket's int, a LocalWrapper),
 * advance takes that key if the cell still holds it and its ticket is still `ticket`
 * (removing it if clear), moves the cell on and wakes the pass's waiters, in one step of
 * the core (ftu_gather_advance): 1; else 0 (another thread took it, or the gatherer
 * failed: look again). Used as ftu_cffi_queue_take_if is. */
int64_t ftu_cffi_gather_peek(ftu_gather *g, const int64_t *key_cell, int64_t max_key) {
    int64_t key = ftu_i64_load(key_cell);
    if (key > max_key) return -1;
    uint64_t ticket;
    int status = ftu_gather_take(g, key, 0, &ticket, FTU_NO_WAIT);
    if (status == FTU_FAILED) return -2;
    return status == FTU_OK ? (int64_t)ticket : 0;
}

int ftu_cffi_gather_advance(ftu_gather *g, int64_t *key_cell, int clear, uint64_t ticket) {
    /* tickets are unique: the key that holds `ticket` is the one peeked */
    return ftu_gather_advance(g, key_cell, ftu_i64_load(key_cell), ticket, clear) == FTU_OK;
}

int ftu_cffi_gather_insert(ftu_gather *g, int64_t key, uint64_t ticket, ftu_cffi_record *record) {
    int status = ftu_gather_insert(g, key, ticket);
    if (status == FTU_OK) record->in = (int64_t)ticket;
    return status;
}

/* ConcurrentDict. Entries of the core map (created with FTU_MAP_RELEASE_AT_ONCE): the key
 * word is a ticket that stands for the entry's key for its whole life (never stored
 * anywhere else; for an exact int key, the int's own word), the value word a ticket
 * under which the Python dict of the ConcurrentDict holds the pair (key, value). A write
 * names the value ticket it expects to replace or remove; the thread whose write let a
 * ticket go takes that ticket's pair out of the Python dict right after the call, or, if
 * an exception struck in between, in its handler (the write's record says whether it let
 * the ticket go). A reader
 * that finds a value ticket gone from the dict looks again: tickets are never reused.
 *
 * Every hash, ticket and version crosses as int64_t: a uint64_t above 2**63 - 1 is a big
 * integer on the Python side, several times slower to make and to pass on PyPy. */

/* The value ticket of the one entry with this hash (> 0), 0 if there is none, -1 if there
 * are several (or no memory): then the caller looks them all up. */
int64_t ftu_cffi_quick_map_get1(ftu_map *m, int64_t hash) {
    uint64_t key, value;
    int64_t n = ftu_map_lookup(m, (uint64_t)hash, &key, &value, 1, NULL);
    return n == 1 ? (int64_t)value : n == 0 ? 0 : -1;
}

/* The value ticket of the entry whose key word is `key` (> 0), for a key the core can
 * compare itself (an exact int: see concurrent_dict.py, _INT_WORDS); 0 if no entry has
 * this hash; -1 if entries of this hash hold other keys only (one of them may be equal to
 * the key under another type, 1.0 for 1: the caller compares them), or out of memory. */
int64_t ftu_cffi_quick_map_get_word(ftu_map *m, int64_t hash, int64_t key) {
    uint64_t keys[4], values[4];
    int64_t n = ftu_map_lookup(m, (uint64_t)hash, keys, values, 4, NULL);
    for (int64_t i = 0; i < n && i < 4; i++)
        if (keys[i] == (uint64_t)key) return (int64_t)values[i];
    return n == 0 ? 0 : -1;
}

int64_t ftu_cffi_quick_map_lookup(ftu_map *m, int64_t hash, ftu_cffi_found *found) {
    return ftu_map_lookup(m, (uint64_t)hash, (uint64_t *)found->keys, (uint64_t *)found->values, 16,
                          (uint64_t *)&found->version);
}

int64_t ftu_cffi_quick_map_lookup_n(ftu_map *m, int64_t hash, int64_t *keys, int64_t *values, int64_t cap,
                              int64_t *version) {
    return ftu_map_lookup(m, (uint64_t)hash, (uint64_t *)keys, (uint64_t *)values, cap, (uint64_t *)version);
}

int64_t ftu_cffi_quick_map_scan_n(ftu_map *m, int64_t *cursor, int *done, int64_t *hashes, int64_t *keys,
                            int64_t *values, int64_t cap) {
    return ftu_map_scan(m, (uint64_t *)cursor, done, (uint64_t *)hashes, (uint64_t *)keys, (uint64_t *)values,
                        cap);
}

int64_t ftu_cffi_quick_map_scan(ftu_map *m, ftu_cffi_scan *scan) {
    return ftu_cffi_quick_map_scan_n(m, &scan->cursor, &scan->done, scan->hashes, scan->keys, scan->values, 64);
}

/* The writes: each answers the core's status (FTU_OK if it went in; FTU_RETRY: the entry
 * or its stripe changed since the lookup; FTU_NO_MEMORY), and records in `record` the
 * value ticket it put in (in) and the one it replaced or removed (out): the pair of `in`
 * stays in the Python dict, the pair of `out` leaves it, by this call's caller. */
int ftu_cffi_quick_map_insert(ftu_map *m, int64_t hash, int64_t key, int64_t value, int64_t version,
                        ftu_cffi_record *record) {
    int status = ftu_map_insert(m, (uint64_t)hash, (uint64_t)key, (uint64_t)value, (uint64_t)version, NULL);
    if (status == FTU_OK) record->in = value;
    return status;
}

int ftu_cffi_quick_map_replace(ftu_map *m, int64_t hash, int64_t key, int64_t expected, int64_t value,
                         ftu_cffi_record *record) {
    uint64_t previous;
    int status = ftu_map_replace(m, (uint64_t)hash, (uint64_t)key, (uint64_t)value, 1, (uint64_t)expected,
                                 &previous, NULL);
    if (status == FTU_OK) {
        record->in = value;
        record->out = expected;
    }
    return status;
}

int ftu_cffi_quick_map_remove(ftu_map *m, int64_t hash, int64_t key, int64_t expected, ftu_cffi_record *record) {
    uint64_t previous;
    int status = ftu_map_remove(m, (uint64_t)hash, (uint64_t)key, 1, (uint64_t)expected, &previous, NULL);
    if (status == FTU_OK) record->out = expected;
    return status;
}

/* The fast paths of d[k] = v and del d[k], for a key found as the one entry of its hash
 * (ftu_cffi_quick_map_get1) and compared equal by the caller, or found by its key word
 * (ftu_cffi_quick_map_get_word): no key ticket and no version to carry back to Python. add:
 * adds (hash, key, value) if no entry has this hash (key is a new ticket or the key's own
 * word). swap and drop replace or remove the entry that holds value ticket `expected`
 * (value tickets are unique: it is the entry the caller compared). FTU_RETRY: the table
 * changed meanwhile, take the general path. Each returns a cached small int: once the
 * write is in, nothing is left to allocate (every ticket's int was made before the call),
 * so no MemoryError can follow a write that went in. Tickets start at 1: no key ticket is
 * FTU_MAP_ANY_KEY. */
int ftu_cffi_quick_map_add(ftu_map *m, int64_t hash, int64_t key, int64_t value, ftu_cffi_record *record) {
    int status = ftu_map_add(m, (uint64_t)hash, (uint64_t)key, (uint64_t)value, NULL);
    if (status == FTU_OK) record->in = value;
    return status;
}

int ftu_cffi_quick_map_swap(ftu_map *m, int64_t hash, int64_t expected, int64_t value, ftu_cffi_record *record) {
    return ftu_cffi_quick_map_replace(m, hash, FTU_MAP_ANY_KEY, expected, value, record);
}

int ftu_cffi_quick_map_drop(ftu_map *m, int64_t hash, int64_t expected, ftu_cffi_record *record) {
    return ftu_cffi_quick_map_remove(m, hash, FTU_MAP_ANY_KEY, expected, record);
}

/* d[k] = v in one call, for a key whose key word is its own (an exact int: see
 * concurrent_dict.py, _INT_WORDS), so that the core finds its entry itself: stores value
 * in the entry of key word `key`, or adds (hash, key, value) if no entry has this hash.
 * 1 if it did (the record: in = value, out = the value ticket it let go, or 0 if it
 * added); 0 if entries of this hash hold other keys only (one may be equal to the key
 * under another type, 1.0 for 1: the caller compares), -1 if out of memory. The caller
 * makes the int of record->out after the write: if that fails (MemoryError), undo_put
 * takes the write back. put_word_done and undo_put take the same arguments as put_word,
 * so that an exception handler calls them with the one tuple it made for put_word,
 * allocating nothing. */
int ftu_cffi_quick_map_put_word(ftu_map *m, int64_t hash, int64_t key, int64_t value, ftu_cffi_record *record) {
    uint64_t previous;
    int status = ftu_map_replace(m, (uint64_t)hash, (uint64_t)key, (uint64_t)value, 0, 0, &previous, NULL);
    if (status == FTU_RETRY) { /* no entry has that key word */
        previous = 0;
        status = ftu_map_add(m, (uint64_t)hash, (uint64_t)key, (uint64_t)value, NULL);
    }
    if (status == FTU_OK) {
        record->out = (int64_t)previous;
        record->in = value;
        return 1;
    }
    return status == FTU_NO_MEMORY ? -1 : 0;
}

/* 1 if the call of put_word with these arguments put `value` in. */
int ftu_cffi_quick_map_put_word_done(ftu_map *m, int64_t hash, int64_t key, int64_t value,
                                     const ftu_cffi_record *record) {
    (void)m, (void)hash, (void)key;
    return record->in == value;
}

/* Takes back the write of put_word (with these arguments), if the entry still holds
 * `value` (no other write came since): restores the value ticket it let go, or removes
 * the entry it added. 1 if it did; 0 if another write changed the entry since (the first
 * write happened, and was overwritten) or no memory. */
int ftu_cffi_quick_map_undo_put(ftu_map *m, int64_t hash, int64_t key, int64_t value, const ftu_cffi_record *record) {
    uint64_t previous;
    if (record->out != 0)
        return ftu_map_replace(m, (uint64_t)hash, (uint64_t)key, (uint64_t)record->out, 1, (uint64_t)value,
                               &previous, NULL) == FTU_OK;
    return ftu_map_remove(m, (uint64_t)hash, (uint64_t)key, 1, (uint64_t)value, &previous, NULL) == FTU_OK;
}

int64_t ftu_cffi_quick_map_cursor_of(int64_t hash) { return (int64_t)ftu_map_cursor_of((uint64_t)hash); }

int64_t ftu_cffi_quick_map_size(ftu_map *m) { return ftu_map_size(m); }

""" + QUICK_SOURCE

ffibuilder = cffi.FFI()
ffibuilder.cdef(read_cdef() + BINDING_CDEF)
ffibuilder.set_source(
    "ft_utils._cffi",
    BINDING_SOURCE,
    sources=[_relative(str(p.relative_to(ROOT))) for p in sorted((ROOT / "csrc").glob("*.c"))],
    include_dirs=[_relative("csrc")],
    extra_compile_args=["-std=c11"],
    # A per-interpreter file name (not .abi3.so), so that the three test interpreters can
    # share one editable checkout without loading each other's module.
    py_limited_api=False,
)

if __name__ == "__main__":
    os.chdir(ROOT)
    ffibuilder.compile(verbose=True)
