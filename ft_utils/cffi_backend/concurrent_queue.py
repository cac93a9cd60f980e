"""ConcurrentQueue on the cffi backend: the core queue, objects kept by ticket."""

from ft_utils.cffi_backend._api import document, lib
from ft_utils.cffi_backend._blocking import check_scaling, deadline
from ft_utils.cffi_backend._object_queue import ObjectQueue
from ft_utils.cffi_backend.local_wrapper import LocalWrapper


@document
class ConcurrentQueue:
    __class_getitem__ = classmethod(type(list[int]))  # types.GenericAlias, as for list (PEP 585)
    __slots__ = ("_queue", "_lock_free", "__weakref__")

    def __new__(cls, scaling=None, lock_free=False):
        check_scaling(scaling, "ConcurrentQueue")
        self = object.__new__(cls)
        self._lock_free = bool(lock_free)
        self._queue = ObjectQueue(0, lib.FTU_QUEUE_SPIN if lock_free else 0)
        return self

    def push(self, value, /):
        self._queue.push(value, 0)

    def pop(self, /, timeout=None):
        return self._queue.pop(deadline(timeout))

    def pop_local(self, /, timeout=None):
        return LocalWrapper(self._queue.pop(deadline(timeout)))

    def shutdown(self, /, immediate=False):
        self._queue.shutdown(immediate)

    def size(self, /):
        return self._queue.size()

    def empty(self, /):
        return self._queue.size() == 0

    def __repr__(self):
        state = ["", ", shut down", ", shut down immediately"][lib.ftu_queue_state(self._queue.queue)]
        return f"<{type(self).__name__} size={self.size()}{', lock_free' if self._lock_free else ''}{state}>"
