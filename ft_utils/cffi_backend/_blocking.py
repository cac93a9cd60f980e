"""What the blocking methods of the cffi classes share: timeouts to core deadlines, and
core waits that let signals in.

cffi releases the GIL around every call into the core, so a waiting thread never holds
up the others. A signal ends a core wait with FTU_INTERRUPTED; going round the Python
loop again gives the interpreter the chance to run the handler (Ctrl-C raises
KeyboardInterrupt there) before the wait resumes.
"""

import threading

from ft_utils.cffi_backend._api import lib

NO_WAIT = lib.FTU_NO_WAIT
FOREVER = lib.FTU_WAIT_FOREVER
SLICE_FIRST_NS = lib.FTU_SIGNAL_SLICE_FIRST_NS
SLICE_MAX_NS = lib.FTU_SIGNAL_SLICE_MAX_NS


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


def call_blocking(op, deadline_ns):
    """op(deadline) -> core status; tried without waiting first, then waited for.

    The main thread sleeps in slices (see FTU_SIGNAL_SLICE_FIRST_NS in csrc/ftu.h): a
    signal that came while the core call was on its way to sleep (spinning, yielding)
    interrupted nothing, and is seen at the end of the slice instead of at the next
    wake-up, which may never come.
    """
    status = op(NO_WAIT)
    if status != lib.FTU_TIMEOUT or deadline_ns == NO_WAIT:
        return status
    slice_ns = SLICE_FIRST_NS if threading.get_ident() == threading.main_thread().ident else 0
    while True:
        until = deadline_ns
        if slice_ns:
            slice_end = lib.ftu_monotonic_ns() + slice_ns
            if until == FOREVER or until > slice_end:
                until = slice_end
            slice_ns = min(4 * slice_ns, SLICE_MAX_NS)
        status = op(until)
        if status == lib.FTU_TIMEOUT and until != deadline_ns:
            continue  # slice over: handlers run here, on the way round the loop
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
