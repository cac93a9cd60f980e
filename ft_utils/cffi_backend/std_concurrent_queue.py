"""StdConcurrentQueue on the cffi backend: queue.Queue's API over the core queue."""

from types import GenericAlias

from ft_utils.cffi_backend._api import document, lib
from ft_utils.cffi_backend._blocking import FOREVER, NO_WAIT, call_blocking, deadline
from ft_utils.cffi_backend._object_queue import ObjectQueue


def _as_maxsize(value):
    if not isinstance(value, int):
        raise TypeError(f"maxsize must be an int, not {type(value).__name__}")
    return value if 0 < value < 2**63 else 0


@document
class StdConcurrentQueue:
    __slots__ = ("_queue", "__weakref__")

    def __new__(cls, maxsize=0):
        self = object.__new__(cls)
        self._queue = ObjectQueue(_as_maxsize(maxsize), lib.FTU_QUEUE_TASKS)
        return self

    def put(self, /, item, block=True, timeout=None):
        self._queue.push(item, deadline(timeout, block))

    def get(self, /, block=True, timeout=None):
        return self._queue.pop(deadline(timeout, block))

    def put_nowait(self, item, /):
        self._queue.push(item, NO_WAIT)

    def get_nowait(self, /):
        return self._queue.pop(NO_WAIT)

    def qsize(self, /):
        return self._queue.size()

    def empty(self, /):
        return self._queue.size() == 0

    def full(self, /):
        maxsize = lib.ftu_queue_capacity(self._queue.queue)
        return maxsize > 0 and self._queue.size() >= maxsize

    def task_done(self, /):
        if lib.ftu_queue_task_done(self._queue.queue) == lib.FTU_TOO_MANY:
            raise ValueError("task_done() called too many times")

    def join(self, /):
        queue = self._queue.queue
        call_blocking(lambda deadline_ns: lib.ftu_queue_join(queue, deadline_ns), FOREVER)

    def shutdown(self, /, immediate=False):
        self._queue.shutdown(immediate)

    @property
    def maxsize(self):
        return lib.ftu_queue_capacity(self._queue.queue)

    @maxsize.setter
    def maxsize(self, value):
        lib.ftu_queue_set_capacity(self._queue.queue, _as_maxsize(value))

    @property
    def unfinished_tasks(self):
        return lib.ftu_queue_unfinished(self._queue.queue)

    @property
    def is_shutdown(self):
        return lib.ftu_queue_state(self._queue.queue) != lib.FTU_QUEUE_OPEN

    def __repr__(self):
        shut = " shut down" if self.is_shutdown else ""
        return f"<{type(self).__name__} maxsize={self.maxsize} qsize={self.qsize()}{shut}>"

    __class_getitem__ = classmethod(GenericAlias)
