"""AtomicFlag on the cffi backend: a boolean in an int64 cell of the C core."""

from ft_utils.cffi_backend._api import document, ffi, lib


@document
class AtomicFlag:
    __slots__ = ("_cell", "__weakref__")

    def __new__(cls, value=False):
        self = object.__new__(cls)
        self._cell = ffi.new("int64_t *", 1 if value else 0)
        return self

    def set(self, value, /):
        lib.ftu_i64_store(self._cell, 1 if value else 0)

    def __bool__(self):
        return lib.ftu_i64_load(self._cell) != 0

    def __str__(self):
        return "True" if self else "False"

    def __repr__(self):
        return f"{type(self).__name__}({self})"

    def __reduce__(self):
        return (type(self), (bool(self),))
