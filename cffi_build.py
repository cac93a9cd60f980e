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
BINDING_CDEF = """
int64_t ftu_cffi_queue_take(ftu_queue *q);
int64_t ftu_cffi_queue_drain(ftu_queue *q);
int ftu_cffi_queue_push(ftu_queue *q, uint64_t ticket, int64_t deadline_ns);
int ftu_cffi_queue_pushed(ftu_queue *q, uint64_t ticket);
int64_t ftu_cffi_gather_take(ftu_gather *g, int64_t *key_cell, int64_t max_key, int clear);
int ftu_cffi_gather_insert(ftu_gather *g, int64_t key, uint64_t ticket);
int ftu_cffi_gather_inserted(ftu_gather *g, uint64_t ticket);
"""

BINDING_SOURCE = r"""
#include "ftu.h"

/* The ticket of the head of q, taken (> 0), or 0 if nothing was taken: empty, or shut
 * down (the caller reads the state). Used as map(objects.pop, map(take, (q,)), ...):
 * the ticket goes from the core to the dict lookup inside one C-level call. */
int64_t ftu_cffi_queue_take(ftu_queue *q) {
    uint64_t ticket;
    return ftu_queue_pop(q, &ticket, FTU_NO_WAIT) == FTU_OK ? (int64_t)ticket : 0;
}

/* The same with ftu_queue_drain: whatever the state. */
int64_t ftu_cffi_queue_drain(ftu_queue *q) {
    uint64_t ticket;
    return ftu_queue_drain(q, &ticket) == FTU_OK ? (int64_t)ticket : 0;
}

/* The last (container, ticket) the core accepted from this thread: after an exception,
 * the caller asks whether its ticket went in, and removes the object from its dict only
 * if it did not. */
static _Thread_local const void *accepted_by;
static _Thread_local uint64_t accepted_ticket;

static void accepted(const void *container, uint64_t ticket) {
    accepted_by = container;
    accepted_ticket = ticket;
}

int ftu_cffi_queue_push(ftu_queue *q, uint64_t ticket, int64_t deadline_ns) {
    int status = ftu_queue_push(q, ticket, deadline_ns);
    if (status == FTU_OK) accepted(q, ticket);
    return status;
}

int ftu_cffi_queue_pushed(ftu_queue *q, uint64_t ticket) { return accepted_by == q && accepted_ticket == ticket; }

/* One step of a pass over keys 0..max_key that threads may share: takes the key in the
 * cell if it is there, moves the cell on and wakes the pass's waiters. Returns the ticket
 * (> 0); 0: not there yet; -1: the pass is over; -2: the gatherer failed. The caller holds
 * the gatherer's lock (so a non-clearing take cannot race a clearing one). */
int64_t ftu_cffi_gather_take(ftu_gather *g, int64_t *key_cell, int64_t max_key, int clear) {
    int64_t key = ftu_i64_load(key_cell);
    if (key > max_key) return -1;
    uint64_t ticket;
    int status = ftu_gather_take(g, key, clear, &ticket, FTU_NO_WAIT);
    if (status == FTU_FAILED) return -2;
    if (status != FTU_OK) return 0;
    ftu_i64_store(key_cell, key + 1);
    ftu_gather_notify(g);
    return (int64_t)ticket;
}

int ftu_cffi_gather_insert(ftu_gather *g, int64_t key, uint64_t ticket) {
    int status = ftu_gather_insert(g, key, ticket);
    if (status == FTU_OK) accepted(g, ticket);
    return status;
}

int ftu_cffi_gather_inserted(ftu_gather *g, uint64_t ticket) { return accepted_by == g && accepted_ticket == ticket; }
"""

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
