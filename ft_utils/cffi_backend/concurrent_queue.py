"""ConcurrentQueue on the cffi backend: the core queue, objects kept by ticket."""

import inspect

from ft_utils.cffi_backend._api import document, lib
from ft_utils.cffi_backend._blocking import check_scaling, deadline
from ft_utils.cffi_backend._object_queue import POP, PUSH, ObjectQueue, method
from ft_utils.cffi_backend.local_wrapper import LocalWrapper

_NOT_GIVEN = object()


def ConcurrentQueue(scaling=None, lock_free=_NOT_GIVEN):  # noqa: N802 - named for its error messages
    """The constructor's arguments, checked: lock_free, or _NOT_GIVEN."""
    check_scaling(scaling, "ConcurrentQueue")
    return lock_free if lock_free is _NOT_GIVEN else bool(lock_free)


_arguments = ConcurrentQueue


@document
class ConcurrentQueue:
    __class_getitem__ = classmethod(type(list[int]))  # types.GenericAlias, as for list (PEP 585)
    __slots__ = ("_ftu_queue", "__weakref__")

    # The arguments go to __new__ and __init__ alike, as for any class; each takes them as
    # its own unless a subclass overrides the other (as object.__new__ and
    # object.__init__ do), so a subclass's own __init__ may take any arguments, and pass
    # lock_free on to super().__init__().
    def __new__(cls, *args, **kwargs):
        lock_free = False
        if cls.__new__ is not ConcurrentQueue.__new__ or cls.__init__ is ConcurrentQueue.__init__:
            lock_free = _arguments(*args, **kwargs) is True
        self = object.__new__(cls)
        self._ftu_queue = ObjectQueue(0, lib.FTU_QUEUE_SPIN if lock_free else 0)
        return self

    __new__.__signature__ = inspect.signature(lambda cls, scaling=None, lock_free=False: None)

    def __init__(self, *args, **kwargs):
        """Checks the arguments; lock_free, if given, sets the wait mode."""
        cls = type(self)
        if cls.__init__ is ConcurrentQueue.__init__ and cls.__new__ is not ConcurrentQueue.__new__:
            return  # the arguments were the subclass's __new__'s
        lock_free = _arguments(*args, **kwargs)
        if lock_free is not _NOT_GIVEN:
            lib.ftu_queue_set_spin(self._ftu_queue.queue, 1 if lock_free else 0)

    # The common case makes one call into the core (see _object_queue.py)
    push = method(PUSH, "ConcurrentQueue.push", "self, value, /")
    pop = method(POP, "ConcurrentQueue.pop", "self, /, timeout=None",
                 deadline="FOREVER if timeout is None else deadline(timeout)")

    def pop_local(self, /, timeout=None):
        # the wrapper is made before the object is taken: see ObjectQueue.take_prepared
        return self._ftu_queue.pop_prepared(deadline(timeout), LocalWrapper)

    def shutdown(self, /, immediate=False):
        self._ftu_queue.shutdown(immediate)

    def size(self, /):
        return self._ftu_queue.size()

    def empty(self, /):
        return self._ftu_queue.size() == 0

    def __reduce__(self):
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")

    def __repr__(self):
        state = ["", ", shut down", ", shut down immediately"][lib.ftu_queue_state(self._ftu_queue.queue)]
        return f"<{type(self).__name__} size={self.size()}{', lock_free' if lib.ftu_queue_spins(self._ftu_queue.queue) else ''}{state}>"
