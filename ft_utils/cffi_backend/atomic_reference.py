"""AtomicReference on the cffi backend.

A Python object cannot be stored in C memory without the interpreter's reference
counting, which cffi does not expose, so here the slot is a Python attribute: reading it
is atomic on every interpreter, and the writes (set, exchange, compare_exchange) are
serialised by a per-object lock so that compare_exchange is a true compare-and-swap.
Old objects are released after the lock is let go, so a __del__ that touches the same
reference cannot deadlock.
"""

import threading
from reprlib import recursive_repr

from ft_utils.cffi_backend._api import document


@document
class AtomicReference:
    __class_getitem__ = classmethod(type(list[int]))  # types.GenericAlias, as for list (PEP 585)
    __slots__ = ("_obj", "_lock", "__weakref__")

    def __new__(cls, obj=None):
        self = object.__new__(cls)
        self._obj = obj
        self._lock = threading.Lock()
        return self

    def get(self, /):
        return self._obj

    def set(self, obj, /):
        with self._lock:
            old, self._obj = self._obj, obj
        del old  # released outside the lock

    def exchange(self, obj, /):
        with self._lock:
            old, self._obj = self._obj, obj
        return old

    def compare_exchange(self, expected, obj, /):
        with self._lock:
            if self._obj is not expected:
                return False
            self._obj = obj
        return True

    @recursive_repr("...")
    def __repr__(self):
        return f"{type(self).__name__}({self._obj!r})"

    def __reduce__(self):
        return (type(self), (self._obj,))
