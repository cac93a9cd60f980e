"""ConcurrentDict on the cffi backend.

The interpreters this backend serves (GIL CPython, PyPy) run one thread at a time, so
the C core has nothing to add to a dict here: the same design as the native type, in
Python. Keys are spread over `scaling` shards by hash; each shard is a dict and a lock.
Reads take no lock (a single dict operation is atomic under a GIL); every write takes
its shard's lock, which is what makes setdefault, pop, compare_and_set and
compare_and_delete atomic against all other writes.

User code can run while a shard lock is held (a key's __eq__, the __del__ of a removed
key) and may write to this dict or another one. As in the native type: values that a
write replaces or removes are released after the lock is; a thread may take a shard it
already holds again; and a thread that has to wait for a shard lock first releases
("suspends") the ones it holds, taking each back, innermost first, when the operations
nested inside it finish. No thread waits for a shard lock while holding one, so the
shard locks cannot deadlock among themselves.
"""

import copyreg
import threading
from itertools import count
from types import GenericAlias

from ft_utils import _reconstruct
from ft_utils.cffi_backend import _fork
from ft_utils.cffi_backend._api import document

DEFAULT_SCALING = 17
MAX_SCALING = 65536
_MISSING = object()
_repr_running = threading.local()
_held = threading.local()  # .stack: [lock, leaving] of each shard lock entered, innermost last


def _check_scaling(scaling):
    if isinstance(scaling, bool) or not hasattr(type(scaling), "__index__"):
        raise TypeError(f"ConcurrentDict() scaling must be an int, not {type(scaling).__name__}")
    scaling = scaling.__index__()
    if not 1 <= scaling <= MAX_SCALING:
        raise ValueError(f"ConcurrentDict() scaling must be between 1 and {MAX_SCALING}, not {scaling}")
    return scaling


def _release(mutex):
    """Releases mutex (all of it, however many entries took it) if this thread owns it."""
    if mutex._is_owned():
        try:
            mutex._release_save()
        except RuntimeError:  # a finalizer run between the two calls released it first
            pass


def _wait(mutex, stack):
    """Takes mutex, which is busy, without waiting while owning a shard lock: every one
    on this thread's stack is released first (taken back when its entry is on top)."""
    for entry in stack:
        _release(entry[0])
    mutex.acquire()


def _leave(stack, entry):
    """Pops entry, the innermost, releasing its lock (all of it) unless an outer entry
    has the same, and takes back the lock of the entry below if an inner operation
    released it."""
    entry[1] = True  # leaving: an operation nested from here on does not take it back
    mutex = entry[0]
    if len(stack) == 1 or not any(e[0] is mutex for e in stack[:-1]):
        _release(mutex)
    stack.pop()
    if stack:
        outer = stack[-1]
        mutex = outer[0]
        if not (outer[1] or mutex._is_owned() or mutex.acquire(False)):
            _wait(mutex, stack)


class _ShardLock:
    """The lock of one shard, entered with `with`. Re-entrant for its owner thread; a
    thread that must wait for it suspends the shard locks it holds (see the module).

    A finalizer can run between any two bytecodes here (PyPy runs __del__ so; CPython
    when an allocation starts a collection) and enter shard locks itself. So each step
    keeps one invariant: every shard lock this thread owns is on its stack, which is
    what a nested wait releases. An entry is pushed before its lock is taken, marked
    "leaving" before it is released, popped after; ownership is the RLock's own record.
    """

    __slots__ = ("_mutex",)

    def __init__(self):
        self._mutex = _fork.rlock()

    def __enter__(self):
        try:
            stack = _held.stack
        except AttributeError:
            stack = _held.stack = []
        mutex = self._mutex
        entry = [mutex, False]  # [the lock, leaving]
        try:
            stack.append(entry)
            if not mutex.acquire(False):  # succeeds for its owner too (recursion)
                _wait(mutex, stack)
        except BaseException:  # interrupted while waiting (Ctrl-C): leave nothing taken
            if stack and stack[-1] is entry:
                _leave(stack, entry)
            raise

    def __exit__(self, exc_type, exc, traceback):
        stack = _held.stack
        entry = stack[-1]
        if len(stack) > 1:
            _leave(stack, entry)
            return
        entry[1] = True  # the common case of _leave: the only entry
        _release(entry[0])
        stack.pop()


class _Iterator:
    """Iterator over the keys, one shard snapshot at a time (see ConcurrentDict.__iter__).

    Threads may share it. The current snapshot is one immutable tuple (shard index, its
    keys, an itertools.count handing out their positions): next() on a count is atomic
    under the GIL, so each key of a snapshot is handed out once, without a lock. The
    thread that finds the snapshot used up takes the next shard's (outside any lock) and
    installs it only if the snapshot is still the one it used up; so each shard is walked
    once. A snapshot is replaced only once used up: a thread still holding the old one
    gets no position from it and starts again from the new one.
    """

    __slots__ = ("_dict", "_state", "_lock")

    def __init__(self, d):
        self._dict = d
        self._state = (-1, (), count())
        self._lock = _fork.rlock()  # held only to compare and replace _state; a finalizer may re-enter

    def __iter__(self):
        return self

    def __next__(self):
        while True:
            shard, keys, positions = self._state
            pos = next(positions)
            if pos < len(keys):
                return keys[pos]
            if not self._advance(shard):
                raise StopIteration

    def _advance(self, used_up):
        """Installs the snapshot of the shard after used_up unless another thread did;
        False once every shard has been walked."""
        d = self._dict
        if d is None:
            return False
        shard = used_up + 1
        if shard >= d._ftu_count:
            self._dict = None  # `d` is released on return
            return False
        state = (shard, d._shard_keys(shard), count())  # built before taking the lock
        with self._lock:
            if self._state[0] == used_up:
                self._state, state = state, self._state  # the old one released on return
        return True


@document
class ConcurrentDict:
    __slots__ = ("_ftu_count", "_ftu_shards", "_ftu_locks", "__weakref__")

    def __new__(cls, scaling=DEFAULT_SCALING):
        count = _check_scaling(scaling)
        self = object.__new__(cls)
        self._ftu_count = count
        self._ftu_shards = [{} for _ in range(count)]
        self._ftu_locks = [_ShardLock() for _ in range(count)]
        return self

    @property
    def scaling(self):
        return self._ftu_count

    # ---- reads (no lock) ---------------------------------------------------------------

    def __getitem__(self, key):
        value = self._ftu_shards[hash(key) % self._ftu_count].get(key, _MISSING)
        if value is _MISSING:
            return self._missing(key)
        return value

    def _missing(self, key):
        # As dict does: a subclass's __missing__, looked up on the type and bound.
        cls = type(self)
        if cls is not ConcurrentDict:
            for klass in cls.__mro__:
                missing = klass.__dict__.get("__missing__", _MISSING)
                if missing is not _MISSING:
                    bind = getattr(type(missing), "__get__", None)
                    return (missing if bind is None else bind(missing, self, cls))(key)
        raise KeyError(key)

    def __contains__(self, key):
        return key in self._ftu_shards[hash(key) % self._ftu_count]

    def __len__(self):
        return sum(map(len, self._ftu_shards))

    def get(self, key, default=None, /):
        return self._ftu_shards[hash(key) % self._ftu_count].get(key, default)

    # ---- writes (under the shard lock) -------------------------------------------------
    # Each keeps the value it replaces or removes in a local (`old`), released when the
    # method returns, after the lock: that value's __del__ may write to this dict.

    def __setitem__(self, key, value):
        index = hash(key) % self._ftu_count
        shard = self._ftu_shards[index]
        with self._ftu_locks[index]:
            old = shard.setdefault(key, value)  # one lookup to insert a new key
            if old is not value:
                shard[key] = value

    def __delitem__(self, key):
        index = hash(key) % self._ftu_count
        with self._ftu_locks[index]:
            old = self._ftu_shards[index].pop(key)  # noqa: F841

    def pop(self, key, /, *default):
        if len(default) > 1:
            raise TypeError(f"pop expected 1 or 2 arguments, got {1 + len(default)}")
        index = hash(key) % self._ftu_count
        with self._ftu_locks[index]:
            return self._ftu_shards[index].pop(key, *default)

    def setdefault(self, key, default=None, /):
        index = hash(key) % self._ftu_count
        shard = self._ftu_shards[index]
        value = shard.get(key, _MISSING)  # lock-free fast path: most calls find the key
        if value is not _MISSING:
            return value
        with self._ftu_locks[index]:
            return shard.setdefault(key, default)

    def compare_and_set(self, key, expected, value, /):
        index = hash(key) % self._ftu_count
        shard = self._ftu_shards[index]
        with self._ftu_locks[index]:
            current = shard.get(key, _MISSING)
            if current is _MISSING or current is not expected:
                return False
            shard[key] = value
            return True

    def compare_and_delete(self, key, expected, /):
        index = hash(key) % self._ftu_count
        shard = self._ftu_shards[index]
        with self._ftu_locks[index]:
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
        # As dict.update in a dict subclass: stores directly, not through an overriding
        # __setitem__ (the native type does the same).
        store = ConcurrentDict.__setitem__
        for key, value in source.items():
            store(self, key, value)

    def clear(self, /):
        # The copies keep what clear() drops alive until every shard is cleared: finalizers
        # run after clear() (a write they make is not wiped by it).
        removed = [None] * self._ftu_count
        for i, (shard, lock) in enumerate(zip(self._ftu_shards, self._ftu_locks)):
            with lock:
                removed[i] = shard.copy()
                shard.clear()
        del removed

    # ---- whole-dict operations ---------------------------------------------------------

    def _snapshots(self):
        # A copy of each shard, taken under its lock. A copy runs no Python code; building
        # lists of items from it (which allocates, and so may run the collector and its
        # finalizers) happens on the private copy, outside the lock.
        return map(self._shard_copy, range(self._ftu_count))

    def _shard_copy(self, index):
        with self._ftu_locks[index]:
            return self._ftu_shards[index].copy()

    def _shard_keys(self, index):
        with self._ftu_locks[index]:
            return list(self._ftu_shards[index])

    def as_dict(self, /):
        result = {}
        for part in self._snapshots():
            result.update(part)
        return result

    def copy(self, /):
        copy = ConcurrentDict.__new__(ConcurrentDict, self._ftu_count)
        copy._ftu_shards = list(self._snapshots())  # same shard count: same placement
        return copy

    def keys(self, /):
        return [key for part in self._snapshots() for key in part]

    def values(self, /):
        return [value for part in self._snapshots() for value in part.values()]

    def items(self, /):
        return [item for part in self._snapshots() for item in part.items()]

    def __iter__(self):
        # One shard snapshot at a time: never "changed size during iteration".
        return _Iterator(self)

    # Not reversible: the order is by shard, there is no insertion order to reverse.
    # Without this, reversed() would try the sequence protocol (d[len(d) - 1], ...).
    __reversed__ = None

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
        # Rebuilt as dict subclasses are: cls.__new__(cls, scaling) through
        # copyreg.__newobj__ (no __init__ call), then the instance's attributes, then the
        # pairs through d[k] = v.
        cls = type(self)
        state = _reconstruct.attributes(self, ConcurrentDict)
        return (copyreg.__newobj__, (cls, self._ftu_count), state, None, iter(self.items()))

    __class_getitem__ = classmethod(GenericAlias)
