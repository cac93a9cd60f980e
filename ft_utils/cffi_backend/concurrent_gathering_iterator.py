"""ConcurrentGatheringIterator on the cffi backend: the core gatherer orders and wakes;
the values wait in a dict under a ticket that goes through the core."""

import itertools
import operator
import threading

from ft_utils.cffi_backend._api import document, ffi, lib
from ft_utils.cffi_backend._blocking import FOREVER, NO_WAIT, call_blocking, check_scaling
from ft_utils.cffi_backend.local_wrapper import LocalWrapper

_FAILED = "an insert into this ConcurrentGatheringIterator failed, so the values cannot all arrive"


@document
class ConcurrentGatheringIterator:
    __slots__ = ("_gather", "_objects", "_tickets", "_lock", "__weakref__")

    def __new__(cls, scaling=None):
        check_scaling(scaling, "ConcurrentGatheringIterator")
        self = object.__new__(cls)
        gather = lib.ftu_gather_new()
        if gather == ffi.NULL:
            raise MemoryError("cannot allocate a gatherer")
        self._gather = ffi.gc(gather, lib.ftu_gather_free)
        self._objects = {}
        self._tickets = itertools.count(1)
        self._lock = threading.Lock()  # held by every take, so a non-clearing read is safe
        return self

    def __reduce__(self):  # copy, deepcopy and pickle: refused, as for the queues
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")

    def insert(self, key, value, /):
        try:
            if not isinstance(key, int):
                raise TypeError(f"insert() key must be an int, not {type(key).__name__}")
            if not 0 <= key < 2**63:
                raise ValueError(f"insert() key must be between 0 and 2**63 - 1, not {key!r}")
            ticket = next(self._tickets)
            self._objects[ticket] = value
            status = lib.ftu_gather_insert(self._gather, key, ticket)
            if status != lib.FTU_OK:
                del self._objects[ticket]
                if status == lib.FTU_DUPLICATE:
                    raise ValueError(f"insert() key {key} was already inserted")
                raise MemoryError("cannot grow the gatherer")
        except BaseException:
            lib.ftu_gather_fail(self._gather)
            raise

    def iterator(self, /, max_key, clear=True):
        return self._values(max_key, clear, False)

    def iterator_local(self, /, max_key, clear=True):
        return self._values(max_key, clear, True)

    def _values(self, max_key, clear, local):
        max_key = operator.index(max_key)
        return self._generate(max_key, bool(clear), local)

    def _generate(self, max_key, clear, local):
        # Each value is yielded straight from _take: no variable of this frame holds it
        # between two next() calls, so a value the caller drops is released at once, as
        # with the native iterator.
        word = ffi.new("uint64_t *")
        for key in range(max_key + 1):
            yield self._take(key, clear, local, word)

    def _take(self, key, clear, local, word):
        gather = self._gather
        while True:
            with self._lock:
                status = lib.ftu_gather_take(gather, key, 1 if clear else 0, word, NO_WAIT)
                if status == lib.FTU_OK:
                    value = self._objects.pop(word[0]) if clear else self._objects[word[0]]
                    return LocalWrapper(value) if local else value
            if status == lib.FTU_TIMEOUT:
                waiting = ffi.new("uint64_t *")
                status = call_blocking(lambda d: lib.ftu_gather_take(gather, key, 0, waiting, d), FOREVER)
            if status == lib.FTU_FAILED:
                raise RuntimeError(_FAILED)
