"""ConcurrentGatheringIterator on the cffi backend: the core gatherer orders and wakes;
the values wait in a dict under a ticket that goes through the core (see _blocking.py)."""

import inspect
import operator
from functools import partial
from itertools import compress

from ft_utils.cffi_backend._api import (a_record, document, ffi, give_back, init_takes_arguments, lib,
                                        new_takes_arguments, owned)
from ft_utils.cffi_backend._blocking import FOREVER, MISSING, TICKETS, check_scaling, wait
from ft_utils.cffi_backend.local_wrapper import LocalWrapper

_FAILED = "an insert into this ConcurrentGatheringIterator failed, so the values cannot all arrive"
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# Bound once (a first access to an attribute of lib can fail for want of memory).
_peek = lib.ftu_cffi_gather_peek
_advance = lib.ftu_cffi_gather_advance
_wait = lib.ftu_gather_wait
_insert = lib.ftu_cffi_gather_insert
_put_in = lib.ftu_cffi_quick_put_in
_fail = lib.ftu_gather_fail


def _arguments(scaling=None):
    check_scaling(scaling, "ConcurrentGatheringIterator")


_arguments.__name__ = _arguments.__qualname__ = "ConcurrentGatheringIterator"  # for its error messages


@document
class ConcurrentGatheringIterator:
    __class_getitem__ = classmethod(type(list[int]))  # types.GenericAlias, as for list (PEP 585)
    __slots__ = ("_ftu_gather", "_ftu_objects", "__weakref__")

    # The arguments go to __new__ and __init__ alike (see new_takes_arguments); scaling
    # is only checked.
    def __new__(cls, *args, **kwargs):
        if new_takes_arguments(cls, ConcurrentGatheringIterator):
            _arguments(*args, **kwargs)
        self = object.__new__(cls)
        gather = lib.ftu_gather_new()
        if gather == ffi.NULL:
            raise MemoryError("cannot allocate a gatherer")
        self._ftu_gather = owned(gather, lib.ftu_cffi_gather_free)
        self._ftu_objects = {}
        return self

    def __init__(self, *args, **kwargs):
        if init_takes_arguments(type(self), ConcurrentGatheringIterator):
            _arguments(*args, **kwargs)

    __new__.__signature__ = __init__.__signature__ = inspect.signature(lambda cls, scaling=None: None)

    def __reduce__(self):  # copy, deepcopy and pickle: refused, as for the queues
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")

    def insert(self, *args, **kwargs):
        # Any insert() that raises marks the gatherer failed, a call with the wrong
        # arguments included (as on the native backend): the value it was meant to insert
        # will not arrive, and iterators must not wait for it forever.
        gather, ticket = self._ftu_gather, None
        try:
            if kwargs:
                raise TypeError("insert() takes no keyword arguments")
            if len(args) != 2:
                raise TypeError(f"insert() takes exactly 2 arguments ({len(args)} given)")
            key, value = args
            if not isinstance(key, int):
                raise TypeError(f"insert() key must be an int, not {type(key).__name__}")
            if not 0 <= key <= _INT64_MAX:
                raise ValueError(f"insert() key must be between 0 and 2**63 - 1, not {key!r}")
            record = a_record()
            ticket = next(TICKETS)
            self._ftu_objects[ticket] = value
            status = _insert(gather, key, ticket, record)
            if status != lib.FTU_OK:
                del self._ftu_objects[ticket]
                if status == lib.FTU_DUPLICATE:
                    raise ValueError(f"insert() key {key} was already inserted")
                raise MemoryError("cannot grow the gatherer")
        except BaseException:
            # Interrupted after the value went in (a signal handler raised): it is there,
            # nothing failed (the call's record says so, whatever calls were made
            # meanwhile: see _api.py, "records"). Otherwise forget the value and fail the
            # gatherer.
            if ticket is not None and _put_in(record, ticket):
                raise
            if ticket is not None:
                self._ftu_objects.pop(ticket, None)
            _fail(gather)
            raise
        give_back(record)

    def iterator(self, /, max_key, clear=True):
        return ConcurrentGatheringIteratorPass(self, _max_key(max_key, "iterator"), bool(clear), False)

    def iterator_local(self, /, max_key, clear=True):
        return ConcurrentGatheringIteratorPass(self, _max_key(max_key, "iterator_local"), bool(clear), True)



# insert() takes *args and **kwargs (so that any wrong call fails the gatherer) but
# presents the documented signature, as the native method does.
ConcurrentGatheringIterator.insert.__signature__ = inspect.signature(lambda self, key, value, /: None)


def _max_key(value, function):
    """An int that fits in int64 (keys stop at 2**63 - 1, so a larger max_key could never
    be reached); a negative one makes an empty pass."""
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{function}() max_key must be an int, not {type(value).__name__}") from None
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise OverflowError(f"{function}() max_key must be between -2**63 and 2**63 - 1, not {value!r}")
    return value


class ConcurrentGatheringIteratorPass:
    """One pass over keys 0..max_key, which threads may share: each value goes to exactly
    one of them, in key order, and all of them stop after max_key. The next key lives in
    a cell of the core; a thread that takes it moves the cell on and wakes the others."""

    __slots__ = ("_owner", "_ftu_gather", "_next_key", "_max_key", "_clear", "_local", "_advance_args", "__weakref__")

    def __init__(self, owner, max_key, clear, local):
        self._owner = owner
        self._ftu_gather = owner._ftu_gather
        self._next_key = ffi.new("int64_t *", 0)
        self._max_key = max_key
        self._clear = 1 if clear else 0
        self._local = local
        self._advance_args = ((self._ftu_gather,), (self._next_key,), (self._clear,))

    def __iter__(self):
        return self

    def __next__(self):
        # No closures here: on CPython 3.11 a call that cannot make its closure cells
        # keeps its arguments (a leak).
        owner, gather, cell, max_key = self._owner, self._ftu_gather, self._next_key, self._max_key
        clear, local, advance_args, objects = self._clear, self._local, self._advance_args, owner._ftu_objects
        while True:
            # Everything that can fail (the ticket's int, the LocalWrapper) before the key
            # is taken: a failure leaves the value there and the pass where it was.
            ticket = _peek(gather, cell, max_key)
            if ticket > 0:
                # (gone if a clearing pass took the key meanwhile: look again)
                value = objects.get(ticket, MISSING)
                if value is not MISSING:
                    result = LocalWrapper(value) if local else value
                    # The advance fails (0) if another thread took the key since the peek,
                    # or the gatherer failed: then look again.
                    if clear:
                        # take the key and the object out of the dict in one C-level step
                        # that allocates nothing (see cffi_build.py)
                        ticket_args = (ticket,)
                        if next(map(objects.pop, compress(ticket_args, map(_advance, *advance_args, ticket_args))),
                                MISSING) is not MISSING:
                            return result
                    elif _advance(gather, cell, 0, ticket):
                        return result
                continue
            if ticket == -1:
                raise StopIteration
            if ticket == -2:
                raise RuntimeError(_FAILED)
            if wait(partial(_wait, gather, cell, max_key), FOREVER) == lib.FTU_FAILED:
                raise RuntimeError(_FAILED)

    def __reduce__(self):  # copy, deepcopy and pickle: refused, as for the gatherer
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")


ConcurrentGatheringIteratorPass.__module__ = ConcurrentGatheringIterator.__module__
