"""What the blocking methods of the cffi classes share: timeouts to core deadlines, core
waits that let signals in, and tickets.

cffi releases the GIL around every call into the core, so a waiting thread never holds
up the others. A signal ends a core wait with FTU_INTERRUPTED; going round the Python
loop again gives the interpreter the chance to run the handler (Ctrl-C raises
KeyboardInterrupt there) before the wait resumes.

Objects never go through the core: each gets a ticket (an int) that does, and waits in a
dict under its ticket until a take hands the ticket back. A signal handler may raise
between any two bytecodes, so the classes wait with calls that take nothing, take in one
C-level step (see cffi_build.py), and after an exception ask the core whether a ticket
went in before they forget its object: a call that raises leaves nothing taken and
nothing stranded in a ticket dict.
"""

import itertools
import threading

from ft_utils.cffi_backend._api import lib

NO_WAIT = lib.FTU_NO_WAIT
FOREVER = lib.FTU_WAIT_FOREVER
SLICE_FIRST_NS = lib.FTU_SIGNAL_SLICE_FIRST_NS
SLICE_MAX_NS = lib.FTU_SIGNAL_SLICE_MAX_NS

# Tickets are unique in the process (not per container), so that "did the core accept
# ticket t from this thread" can never be answered by an older push to another container
# that lived at the same address. Taking the next one is atomic on the interpreters this
# backend serves (GIL CPython, PyPy).
TICKETS = itertools.count(1)

# What a take that found nothing returns (tickets are > 0, so a dict lookup of a
# non-positive "ticket" gives the default).
MISSING = object()
MISSING_ARGS = (MISSING,)


def deadline(timeout, block=True):
    """The core deadline for queue.Queue's (block, timeout) arguments."""
    if not block:
        return NO_WAIT
    if timeout is None:
        return FOREVER
    kind = type(timeout)
    if isinstance(timeout, complex) or not (hasattr(kind, "__float__") or hasattr(kind, "__index__")) \
            or isinstance(timeout, (str, bytes, bytearray)):
        raise TypeError(f"'timeout' must be a number or None, not {kind.__name__}")
    seconds = float(timeout)
    if not seconds >= 0:  # negative or NaN
        raise ValueError("'timeout' must be a non-negative number")
    if seconds >= 9e9:
        return FOREVER
    return lib.ftu_monotonic_ns() + int(seconds * 1e9) + 1


def _first_slice():
    """The main thread sleeps in slices (see FTU_SIGNAL_SLICE_FIRST_NS in the core's
    header): a signal that came while the core call was on its way to sleep (spinning,
    yielding) interrupted nothing, and is seen at the end of the slice instead of at the
    next wake-up, which may never come."""
    return SLICE_FIRST_NS if threading.get_ident() == threading.main_thread().ident else 0


def _waits(deadline_ns):
    """The end of each successive wait: the deadline, or sooner, the end of a slice."""
    slice_ns = _first_slice()
    while True:
        until = deadline_ns
        if slice_ns:
            slice_end = lib.ftu_monotonic_ns() + slice_ns
            if until == FOREVER or until > slice_end:
                until = slice_end
            slice_ns = min(4 * slice_ns, SLICE_MAX_NS)
        yield until


def call_blocking(op, deadline_ns):
    """op(deadline) -> core status; tried without waiting first, then waited for. Only for
    calls that take nothing out of a container (a push, a join)."""
    status = op(NO_WAIT)
    if status != lib.FTU_TIMEOUT or deadline_ns == NO_WAIT:
        return status
    for until in _waits(deadline_ns):
        status = op(until)
        if status == lib.FTU_TIMEOUT and until != deadline_ns:
            continue  # slice over: handlers run here, on the way round the loop
        if status != lib.FTU_INTERRUPTED:
            return status


def wait(wait_op, deadline_ns):
    """Waits with wait_op(deadline), a core wait that takes nothing, until it says there
    may be something to take (FTU_OK), or the deadline passed (FTU_TIMEOUT), or another
    status ends the wait. Signal handlers run between slices and interruptions."""
    for until in _waits(deadline_ns):
        status = wait_op(until)
        if status == lib.FTU_TIMEOUT and until != deadline_ns:
            return lib.FTU_OK  # slice over: handlers run, the caller looks again
        if status != lib.FTU_INTERRUPTED:
            return status


def check_scaling(scaling, type_name):
    """scaling: None or an int >= 1 (accepted for the spec's signature; unused)."""
    if scaling is None:
        return
    if isinstance(scaling, bool) or not hasattr(type(scaling), "__index__"):
        raise TypeError(f"{type_name}() scaling must be an int or None, not {type(scaling).__name__}")
    if scaling.__index__() < 1:
        raise ValueError(f"{type_name}() scaling must be at least 1, not {scaling.__index__()}")
