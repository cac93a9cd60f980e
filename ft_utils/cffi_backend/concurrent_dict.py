"""ConcurrentDict on the cffi backend.

The interpreters this backend serves (GIL CPython, PyPy) run one thread at a time, so
the C core has nothing to add to a dict here: the same design as the native type, in
Python. Keys are spread over `scaling` shards by hash; each shard is a dict and a
re-entrant lock. Reads take no lock (a single dict operation is atomic under a GIL);
every write takes its shard's lock, which is what makes setdefault, pop,
compare_and_set and compare_and_delete atomic against all other writes. The lock is
re-entrant because a write may release a value whose __del__ writes to the same dict.
"""

import threading
from types import GenericAlias

from ft_utils.cffi_backend._api import document

DEFAULT_SCALING = 17
MAX_SCALING = 65536
_MISSING = object()
_repr_running = threading.local()


def _check_scaling(scaling):
    if isinstance(scaling, bool) or not hasattr(type(scaling), "__index__"):
        raise TypeError(f"ConcurrentDict() scaling must be an int, not {type(scaling).__name__}")
    scaling = scaling.__index__()
    if not 1 <= scaling <= MAX_SCALING:
        raise ValueError(f"ConcurrentDict() scaling must be between 1 and {MAX_SCALING}, not {scaling}")
    return scaling


@document
class ConcurrentDict:
    __slots__ = ("_count", "_shards", "_locks", "__weakref__")

    def __new__(cls, scaling=DEFAULT_SCALING):
        count = _check_scaling(scaling)
        self = object.__new__(cls)
        self._count = count
        self._shards = [{} for _ in range(count)]
        self._locks = [threading.RLock() for _ in range(count)]
        return self

    @property
    def scaling(self):
        return self._count

    # ---- reads (no lock) ---------------------------------------------------------------

    def __getitem__(self, key):
        return self._shards[hash(key) % self._count][key]

    def __contains__(self, key):
        return key in self._shards[hash(key) % self._count]

    def __len__(self):
        return sum(map(len, self._shards))

    def get(self, key, default=None, /):
        return self._shards[hash(key) % self._count].get(key, default)

    # ---- writes (under the shard lock) -------------------------------------------------

    def __setitem__(self, key, value):
        index = hash(key) % self._count
        with self._locks[index]:
            self._shards[index][key] = value

    def __delitem__(self, key):
        index = hash(key) % self._count
        with self._locks[index]:
            del self._shards[index][key]

    def pop(self, key, /, *default):
        if len(default) > 1:
            raise TypeError(f"pop expected 1 or 2 arguments, got {1 + len(default)}")
        index = hash(key) % self._count
        with self._locks[index]:
            return self._shards[index].pop(key, *default)

    def setdefault(self, key, default=None, /):
        index = hash(key) % self._count
        shard = self._shards[index]
        value = shard.get(key, _MISSING)  # lock-free fast path: most calls find the key
        if value is not _MISSING:
            return value
        with self._locks[index]:
            return shard.setdefault(key, default)

    def compare_and_set(self, key, expected, value, /):
        index = hash(key) % self._count
        shard = self._shards[index]
        with self._locks[index]:
            current = shard.get(key, _MISSING)
            if current is _MISSING or current is not expected:
                return False
            shard[key] = value
            return True

    def compare_and_delete(self, key, expected, /):
        index = hash(key) % self._count
        shard = self._shards[index]
        with self._locks[index]:
            current = shard.get(key, _MISSING)
            if current is _MISSING or current is not expected:
                return False
            del shard[key]
            return True

    def update(self, other=(), /, **kwargs):
        if isinstance(other, ConcurrentDict):
            source = other.as_dict()
            source.update(kwargs)
        else:
            # dict(...) accepts what dict.update accepts, with the same errors, and fails
            # before anything is stored here if an element or a hash is bad.
            source = dict(other, **kwargs)
        for key, value in source.items():
            self[key] = value

    def clear(self, /):
        for shard, lock in zip(self._shards, self._locks):
            with lock:
                shard.clear()

    # ---- whole-dict operations ---------------------------------------------------------

    def _snapshots(self, method):
        for shard, lock in zip(self._shards, self._locks):
            with lock:
                part = method(shard)
            yield part

    def as_dict(self, /):
        result = {}
        for part in self._snapshots(dict.copy):
            result.update(part)
        return result

    def copy(self, /):
        copy = ConcurrentDict.__new__(ConcurrentDict, self._count)
        copy._shards = list(self._snapshots(dict.copy))  # same shard count: same placement
        return copy

    def keys(self, /):
        return [key for part in self._snapshots(list) for key in part]

    def values(self, /):
        return [value for part in self._snapshots(lambda shard: list(shard.values())) for value in part]

    def items(self, /):
        return [item for part in self._snapshots(lambda shard: list(shard.items())) for item in part]

    def __iter__(self):
        # One shard snapshot at a time: never "changed size during iteration".
        for part in self._snapshots(list):
            yield from part

    def __eq__(self, other):
        if isinstance(other, ConcurrentDict):
            return self.as_dict() == other.as_dict()
        if isinstance(other, dict):
            return self.as_dict() == other
        return NotImplemented

    def __ne__(self, other):
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    __hash__ = None

    def __repr__(self):
        name = type(self).__name__
        running = _repr_running.__dict__.setdefault("ids", set())
        if id(self) in running:
            return f"{name}({{...}})"
        running.add(id(self))
        try:
            return f"{name}({self.as_dict()!r})"
        finally:
            running.discard(id(self))

    def __reduce__(self):
        return (type(self), (self._count,), None, None, iter(self.items()))

    __class_getitem__ = classmethod(GenericAlias)
