"""StdConcurrentQueue on the cffi backend: queue.Queue's API over the core queue.

A drop-in: the arguments are read the way queue.Queue reads them (Lib/queue.py), in the
same order, so the same calls succeed and the same calls fail with the same exception
(see ft_utils/native/std_concurrent_queue.c, which does the same).
"""

import inspect
import math
from functools import partial
from types import GenericAlias

from ft_utils._exceptions import Full, ShutDown
from ft_utils.cffi_backend import _fork
from ft_utils.cffi_backend._api import document, lib
from ft_utils.cffi_backend._blocking import FOREVER, NO_WAIT, call_blocking
from ft_utils.cffi_backend._object_queue import POP, PUSH, ObjectQueue, method

# From this capacity on a queue is unbounded: no memory holds 2**60 items.
_UNBOUNDED_FROM = 2**60


def _capacity_of_int(n):
    return n if 0 < n < _UNBOUNDED_FROM else 0


def _capacity(maxsize):
    """The core capacity for maxsize (0: unbounded). queue.Queue is bounded when
    maxsize > 0 and full when qsize() >= maxsize, that is at ceil(maxsize) items."""
    # exact types only: a subclass may compare its own way, and is asked as Queue asks
    if type(maxsize) is int:
        return _capacity_of_int(maxsize)
    if type(maxsize) is float:  # NaN and inf: never full in queue.Queue either
        return math.ceil(maxsize) if 0 < maxsize < _UNBOUNDED_FROM else 0
    kind = type(maxsize)
    if isinstance(maxsize, complex) or not any(hasattr(kind, n) for n in ("__index__", "__int__", "__float__")):
        raise TypeError(f"maxsize must be a real number, not {kind.__name__}")
    if not maxsize > 0:
        return 0
    try:
        ceiling = math.ceil(maxsize)
    except OverflowError:  # an infinity (Decimal('Infinity')): never full
        return 0
    if not isinstance(ceiling, int):
        raise TypeError(f"maxsize must be a real number, not {kind.__name__}")
    return _capacity_of_int(ceiling)


def _deadline(block, timeout):
    """block and timeout into a core deadline, as queue.Queue reads them when it may
    wait: `timeout < 0` raises ValueError, and the seconds are what `time() + timeout`
    adds. NaN, or a timeout too long for the interpreter's locks, waits without limit."""
    if not block:
        return NO_WAIT
    if timeout is None:
        return FOREVER
    if timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")
    seconds = 0.0 + timeout
    if not isinstance(seconds, float):
        if not hasattr(type(seconds), "__float__"):
            raise TypeError(f"must be real number, not {type(seconds).__name__}")
        seconds = float(seconds)
    if seconds != seconds or seconds >= 9e9:
        return FOREVER
    if seconds <= 0:
        return NO_WAIT
    return lib.ftu_monotonic_ns() + int(seconds * 1e9) + 1


@document
class StdConcurrentQueue:
    __slots__ = ("_ftu_queue", "_ftu_maxsize", "_ftu_capacity", "_ftu_lock", "__weakref__")

    # As object.__new__ for queue.Queue: the arguments are __init__'s, so a subclass's
    # __init__ may take any. The queue starts unbounded.
    def __new__(cls, *args, **kwargs):
        self = object.__new__(cls)
        self._ftu_queue = ObjectQueue(0, lib.FTU_QUEUE_TASKS)
        self._ftu_maxsize = 0
        self._ftu_capacity = 0
        self._ftu_lock = _fork.lock()  # keeps _maxsize and the core capacity in step
        return self

    __new__.__signature__ = inspect.signature(lambda cls, maxsize=0: None)

    def __init__(self, maxsize=0):
        """queue.Queue.__init__(maxsize=0). Called again, it changes maxsize only."""
        self.maxsize = maxsize

    def _shut_down_first(self, for_get):
        """After block or timeout were found wrong: queue.Queue looks at the shutdown
        first (for get: once the queue is also empty)."""
        queue = self._ftu_queue.queue
        state = lib.ftu_queue_state(queue)
        if state == lib.FTU_QUEUE_SHUT_IMMEDIATE or (
                state == lib.FTU_QUEUE_SHUT and (not for_get or lib.ftu_queue_size(queue) == 0)):
            raise ShutDown from None

    # The common case (block, no timeout) makes one call into the core (see _object_queue.py)
    put = method(PUSH, "StdConcurrentQueue.put", "self, /, item, block=True, timeout=None",
                 prologue="if block is not True or timeout is not None: return self._ftu_put(item, block, timeout)",
                 value="item")

    def _ftu_put(self, item, block, timeout):
        # block and timeout matter only if the queue is bounded (then whether or not it is full)
        bounded = self._ftu_capacity > 0
        try:
            self._ftu_queue.push(item, self._ftu_deadline(block, timeout, False) if bounded else NO_WAIT)
            return
        except Full:
            if bounded:
                raise
        # maxsize was set meanwhile and the queue is full: a put into a bounded queue
        self._ftu_queue.push(item, self._ftu_deadline(block, timeout, False))

    def _ftu_deadline(self, block, timeout, for_get):
        try:
            return _deadline(block, timeout)
        except Exception:
            self._shut_down_first(for_get)
            raise

    # block, and the timeout if block is true, are read whether or not an item is there
    get = method(POP, "StdConcurrentQueue.get", "self, /, block=True, timeout=None",
                 deadline="FOREVER if block is True and timeout is None else self._ftu_deadline(block, timeout, True)")

    def put_nowait(self, /, item):
        self.put(item, False)

    get_nowait = method(POP, "StdConcurrentQueue.get_nowait", "self, /", deadline="NO_WAIT")

    def qsize(self, /):
        return self._ftu_queue.size()

    def empty(self, /):
        return self._ftu_queue.size() == 0

    def full(self, /):
        capacity = lib.ftu_queue_capacity(self._ftu_queue.queue)
        return capacity > 0 and self._ftu_queue.size() >= capacity

    def task_done(self, /):
        if lib.ftu_queue_task_done(self._ftu_queue.queue) == lib.FTU_TOO_MANY:
            raise ValueError("task_done() called too many times")

    def join(self, /):
        queue = self._ftu_queue.queue
        # partial, not a lambda: on CPython 3.11 a call that cannot make its closure cells
        # keeps its arguments (a leak)
        call_blocking(partial(lib.ftu_queue_join, queue), FOREVER)

    def shutdown(self, /, immediate=False):
        self._ftu_queue.shutdown(immediate)

    @property
    def maxsize(self):
        return self._ftu_maxsize

    @maxsize.setter
    def maxsize(self, value):
        capacity = _capacity(value)
        with self._ftu_lock:
            self._ftu_maxsize = value
            self._ftu_capacity = capacity
            lib.ftu_queue_set_capacity(self._ftu_queue.queue, capacity)

    @maxsize.deleter
    def maxsize(self):
        raise AttributeError("cannot delete maxsize")

    @property
    def unfinished_tasks(self):
        return lib.ftu_queue_unfinished(self._ftu_queue.queue)

    @property
    def is_shutdown(self):
        return lib.ftu_queue_state(self._ftu_queue.queue) != lib.FTU_QUEUE_OPEN

    def __reduce__(self):
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")

    def __repr__(self):
        shut = " shut down" if self.is_shutdown else ""
        return f"<{type(self).__name__} maxsize={self._ftu_maxsize!r} qsize={self.qsize()}{shut}>"

    __class_getitem__ = classmethod(GenericAlias)
