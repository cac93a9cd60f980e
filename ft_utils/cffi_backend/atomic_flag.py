"""AtomicFlag on the cffi backend: a boolean in an int64 cell of the C core."""

import inspect

from ft_utils import _reconstruct
from ft_utils.cffi_backend._api import document, ffi, init_takes_arguments, lib, new_takes_arguments, parse_state


def _arguments(value=False):
    return 1 if value else 0


_arguments.__name__ = _arguments.__qualname__ = "AtomicFlag"  # for its error messages


@document
class AtomicFlag:
    __slots__ = ("_ftu_cell", "__weakref__")

    # The arguments go to __new__ and __init__ alike (see new_takes_arguments); __init__
    # stores the value, as set() does.
    def __new__(cls, *args, **kwargs):
        value = _arguments(*args, **kwargs) if new_takes_arguments(cls, AtomicFlag) else 0
        self = object.__new__(cls)
        self._ftu_cell = ffi.new("int64_t *", value)
        return self

    def __init__(self, *args, **kwargs):
        if init_takes_arguments(type(self), AtomicFlag):
            lib.ftu_i64_store(self._ftu_cell, _arguments(*args, **kwargs))

    __new__.__signature__ = __init__.__signature__ = inspect.signature(lambda cls, value=False: None)

    def set(self, value, /):
        lib.ftu_i64_store(self._ftu_cell, 1 if value else 0)

    def __bool__(self):
        return lib.ftu_i64_load(self._ftu_cell) != 0

    def __str__(self):
        return "True" if self else "False"

    def __repr__(self):
        return f"{type(self).__name__}({self})"

    def __reduce__(self):
        return _reconstruct.reduce(self, AtomicFlag, lib.ftu_i64_load(self._ftu_cell) != 0)

    def __setstate__(self, state):
        value, attributes = parse_state(state, "AtomicFlag")
        value = 1 if value else 0
        _reconstruct.set_attributes(self, attributes)  # first: a failure changes nothing
        lib.ftu_i64_store(self._ftu_cell, value)
