"""AtomicReference on the cffi backend.

A Python object cannot be stored in C memory without the interpreter's reference
counting, which cffi does not expose, so here the slot is a Python attribute: reading it
is atomic on every interpreter, and the writes (set, exchange, compare_exchange) are
serialised by a per-object lock so that compare_exchange is a true compare-and-swap.
Old objects are released after the lock is let go, so a __del__ that touches the same
reference cannot deadlock.

The lock is re-entrant: Python code can run in the middle of a write on the same thread
(a signal handler between any two steps; on PyPy a finalizer too), and if it writes to
the same reference it goes through, as the shard locks of ConcurrentDict let it, rather
than wait for a lock its own thread holds (a plain lock deadlocked there on PyPy). The
interrupted write is then not atomic with respect to that code.
"""

import inspect
from reprlib import recursive_repr

from ft_utils import _reconstruct

from ft_utils.cffi_backend import _fork
from ft_utils.cffi_backend._api import document, init_takes_arguments, new_takes_arguments, parse_state


def _arguments(obj=None):
    return obj


_arguments.__name__ = _arguments.__qualname__ = "AtomicReference"  # for its error messages


@document
class AtomicReference:
    __class_getitem__ = classmethod(type(list[int]))  # types.GenericAlias, as for list (PEP 585)
    __slots__ = ("_ftu_obj", "_ftu_lock", "__weakref__")

    # The arguments go to __new__ and __init__ alike (see new_takes_arguments); __init__
    # stores obj, as set() does.
    def __new__(cls, *args, **kwargs):
        self = object.__new__(cls)
        self._ftu_obj = _arguments(*args, **kwargs) if new_takes_arguments(cls, AtomicReference) else None
        self._ftu_lock = _fork.rlock()  # re-entrant: see the module's docstring
        return self

    def __init__(self, *args, **kwargs):
        if init_takes_arguments(type(self), AtomicReference):
            self.set(_arguments(*args, **kwargs))

    __new__.__signature__ = __init__.__signature__ = inspect.signature(lambda cls, obj=None: None)

    def get(self, /):
        return self._ftu_obj

    def set(self, obj, /):
        with self._ftu_lock:
            old, self._ftu_obj = self._ftu_obj, obj
        del old  # released outside the lock

    def exchange(self, obj, /):
        with self._ftu_lock:
            old, self._ftu_obj = self._ftu_obj, obj
        return old

    def compare_exchange(self, expected, obj, /):
        with self._ftu_lock:
            if self._ftu_obj is not expected:
                return False
            self._ftu_obj = obj
        return True

    @recursive_repr("...")
    def __repr__(self):
        return f"{type(self).__name__}({self._ftu_obj!r})"

    def __reduce__(self):
        # the referent is restored after the copy exists, so a reference may hold itself
        return _reconstruct.reduce(self, AtomicReference, self._ftu_obj)

    def __setstate__(self, state):
        obj, attributes = parse_state(state, "AtomicReference")
        _reconstruct.set_attributes(self, attributes)  # first: a failure changes nothing
        AtomicReference.set(self, obj)
