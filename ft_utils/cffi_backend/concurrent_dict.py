"""ConcurrentDict on the cffi backend: the C core's hash table (csrc/ftu_map.c).

cffi cannot keep a reference to a Python object in C memory, so the core's table holds
tickets (see cffi_build.py, "ConcurrentDict"): an entry's key word is a ticket that names
the entry for its whole life (an exact int's own value, see _INT_WORDS), its value word a
ticket under which this object's Python dict `_ftu_objects` holds the pair (key, value). The table never compares keys: a lookup
hands back the entries with the key's hash and this module decides, as dict does, which
stored key is the one asked for (the same object, or ==), with no lock held, so a key's
__eq__ or a value's __del__ may use this dict or any other freely. A write then names the
value ticket it expects to find in the entry; the core makes the change only if the
entry still holds it (or, for an insert, if no key of the same hash came or went since
the lookup), else the write looks again. So setdefault, pop, compare_and_set and
compare_and_delete are one step of the table, atomic with respect to every other write.

There is no lock of the binding's. Each write is cut so that a signal handler that raises
(KeyboardInterrupt) or a MemoryError can strike between any two steps without leaving
anything held or half done: the pair of a new ticket enters the dict before the core
sees the ticket, and leaves it again unless the core accepted it; the pair of the ticket
a write replaced or removed leaves the dict right after the write, by the thread that
made it, or in its exception handler if an exception struck in between (each write has a
record of its own, in which the core writes the tickets it put in and let go: see
_api.py, "records"). A reader that
finds a value ticket gone (replaced or removed meanwhile) looks again: tickets are never
reused.

Hashes, tickets and versions cross to C as signed 64-bit integers (hash(key) as it is):
an unsigned word above 2**63 - 1 is a big integer, several times slower on PyPy.
"""

import copyreg
import inspect
import operator
import threading
from collections.abc import Mapping
from collections import deque
from itertools import chain, compress, count
from operator import itemgetter
from types import GenericAlias

from ft_utils import _reconstruct
from ft_utils.cffi_backend._api import (a_record, document, ffi, give_back, init_takes_arguments, lib,
                                        new_takes_arguments, owned)
from ft_utils.cffi_backend._blocking import MISSING, TICKETS

DEFAULT_SCALING = 17
MAX_SCALING = 65536
_MAX_SIZE_HINT = 65536  # entries a table is first sized for, at most
_FOUND_CAP = 16
_repr_running = threading.local()
_scratch = threading.local()  # .found: a list of ftu_cffi_found buffers free for use

# Bound once: a first access to an attribute of lib builds it, which can fail for want of
# memory, and these are used where a failure would strand an object.
_get1 = lib.ftu_cffi_quick_map_get1
_lookup = lib.ftu_cffi_quick_map_lookup
_lookup_n = lib.ftu_cffi_quick_map_lookup_n
_scan_n = lib.ftu_cffi_quick_map_scan_n
_scan = lib.ftu_cffi_quick_map_scan
_insert = lib.ftu_cffi_quick_map_insert
_replace = lib.ftu_cffi_quick_map_replace
_remove = lib.ftu_cffi_quick_map_remove
_add = lib.ftu_cffi_quick_map_add
_swap = lib.ftu_cffi_quick_map_swap
_drop = lib.ftu_cffi_quick_map_drop
_cursor_of = lib.ftu_cffi_quick_map_cursor_of
_put_in = lib.ftu_cffi_quick_put_in
_took_out = lib.ftu_cffi_quick_took_out
_get_word = lib.ftu_cffi_quick_map_get_word
_size = lib.ftu_cffi_quick_map_size
_put_word = lib.ftu_cffi_quick_map_put_word
_put_word_done = lib.ftu_cffi_quick_map_put_word_done
_undo_put = lib.ftu_cffi_quick_map_undo_put
_OK = lib.FTU_OK
_NO_MEMORY = lib.FTU_NO_MEMORY
_AT_ONCE = lib.FTU_MAP_RELEASE_AT_ONCE
_unpack = ffi.unpack
_first, _second = itemgetter(0), itemgetter(1)
_chain = chain.from_iterable
_hash_and_pair, _pair = itemgetter(0, 3), itemgetter(3)
# No closures, comprehensions over locals or generators in these methods: on CPython 3.11
# a call that cannot allocate its cells (or a generator's frame) keeps its arguments,
# `self` among them (a leak seen with every allocation failing in turn).


# An exact int key k with -2**62 <= k < 2**62 has a key word of its own, which stands for
# it in the core whatever path stored it: k + 2**62 for k >= 0, else k. Tickets count up
# from 1 and never get near 2**62, and no key word is 0 (FTU_MAP_ANY_KEY). The core then
# compares such keys itself (two exact ints are equal if and only if their words are), so
# d[k] = v (ftu_cffi_quick_map_put_word) and del d[k] (ftu_cffi_quick_map_get_word) find
# the entry with no comparison in Python; keys of other types, and an int stored while an
# equal key of another type (1.0, True) holds its place, go through the comparisons.
_INT_WORDS = 1 << 62


def _key_word(key):
    """The key word of a new entry for key: its own for an exact int in range, else a
    new ticket."""
    if type(key) is int and -_INT_WORDS <= key < _INT_WORDS:
        return key + _INT_WORDS if key >= 0 else key
    return next(TICKETS)


def _check_scaling(scaling):
    if isinstance(scaling, bool) or not hasattr(type(scaling), "__index__"):
        raise TypeError(f"ConcurrentDict() scaling must be an int, not {type(scaling).__name__}")
    scaling = scaling.__index__()
    if not 1 <= scaling <= MAX_SCALING:
        raise ValueError(f"ConcurrentDict() scaling must be between 1 and {MAX_SCALING}, not {scaling}")
    return scaling


def _arguments(scaling=DEFAULT_SCALING, dictionary=None):
    return _check_scaling(scaling), dictionary


def _no_memory():
    return MemoryError("cannot grow the ConcurrentDict")


def _stranded(vt):
    """A value ticket that the table held before and after its pair was found missing:
    held all along (a ticket enters the table once and leaves it once), so its pair is
    lost. No write can do that; a reader raises this rather than look again forever."""
    return RuntimeError(f"ConcurrentDict: the entry of value ticket {vt} has no (key, value) pair "
                        "(an internal error of the cffi backend: please report it)")


def _found_buffer():
    """A ftu_cffi_found buffer of this thread's, free for one lookup (each nested call made
    by a key's __eq__ gets its own); give it back with _FREE(buffer) where _FREE is the
    list it came from."""
    try:
        free = _scratch.found
    except AttributeError:
        free = _scratch.found = []
    return free, (free.pop() if free else ffi.new("ftu_cffi_found *"))


def _entries(m, h):
    """(version, [(key ticket, value ticket), ...]) of the entries with hash h: copied out
    of the C buffer before anything else runs (a key's __eq__ may use this dict again)."""
    free, found = _found_buffer()
    n = _lookup(m, h, found)
    if n == 0:  # a new key: nothing to copy
        version = found.version
        free.append(found)
        return version, ()
    if 0 < n <= _FOUND_CAP:
        pairs = list(zip(_unpack(found.keys, n), _unpack(found.values, n)))
        version = found.version
        free.append(found)
        return version, pairs
    free.append(found)
    if n < 0:
        raise _no_memory()
    while True:  # many keys share this hash: buffers of the right size
        cap = n * 2
        keys, values, version = ffi.new("int64_t[]", cap), ffi.new("int64_t[]", cap), ffi.new("int64_t *")
        n = _lookup_n(m, h, keys, values, cap, version)
        if n < 0:
            raise _no_memory()
        if n <= cap:
            return version[0], list(zip(_unpack(keys, n), _unpack(values, n)))


class _Iterator:
    """Iterator over the keys, a batch at a time in the table's order (see
    ConcurrentDict.__iter__).

    Threads may share it. The current batch is one immutable tuple (generation, keys,
    an itertools.count handing out their positions, where the next batch starts, whether
    it is the last): next() on a count is atomic, so each key of a batch is handed out
    once, without a lock. The thread that finds the batch used up fetches the next one
    and installs it only if the generation cell still holds the batch's generation, in
    one C-level step with the swap of the cell (no lock a signal handler could leave
    held); so each batch is walked once.
    """

    __slots__ = ("_dict", "_state", "_generation")

    def __init__(self, d):
        self._dict = d
        self._state = (0, (), count(), 0, False)
        self._generation = ffi.new("int64_t *")

    def __iter__(self):
        return self

    def __next__(self):
        while True:
            state = self._state
            generation, keys, positions, cursor, last = state
            pos = next(positions)
            if pos < len(keys):
                return keys[pos]
            d = self._dict
            if last or d is None:
                self._dict = None
                raise StopIteration
            batch, cursor, last = d._batch(cursor)
            fresh = (generation + 1, tuple(map(_first, map(_second, batch))), count(), cursor, last)
            del batch
            # installs `fresh` if no other thread installed a batch since `state`
            deque(map(setattr, compress((self,), map(lib.ftu_cffi_i64_cas, (self._generation,), (generation,),
                                                     (generation + 1,))), ("_state",), (fresh,)), 0)


@document
class ConcurrentDict:
    __slots__ = ("_ftu_map", "_ftu_objects", "_ftu_scaling", "_ftu_pop_hint", "__weakref__")

    # The arguments go to __new__ and __init__ as dict's do (see new_takes_arguments):
    # __new__ makes the table for scaling (sized for the initial contents), __init__
    # stores the contents. A subclass whose __init__ takes arguments of its own gets the
    # default scaling (its super().__init__(scaling) only checks it), unless it overrides
    # __new__ too.
    def __new__(cls, *args, **kwargs):
        scaling, size = DEFAULT_SCALING, 0
        if new_takes_arguments(cls, ConcurrentDict):
            scaling, dictionary = _arguments(*args, **kwargs)
            if dictionary is not None:
                # a hint only, capped: a length that lies (or an iterable of the wrong kind,
                # which update then refuses) must not make a huge table
                try:
                    size = min(operator.length_hint(dictionary), _MAX_SIZE_HINT)
                except Exception:
                    size = 0
        self = object.__new__(cls)
        self._ftu_scaling = scaling
        self._ftu_objects = {}
        self._ftu_pop_hint = 0
        m = lib.ftu_map_new(size, scaling, _AT_ONCE)
        if m == ffi.NULL:
            raise MemoryError("cannot allocate a ConcurrentDict")
        self._ftu_map = owned(m, lib.ftu_cffi_map_free)
        return self

    def __init__(self, *args, **kwargs):
        if init_takes_arguments(type(self), ConcurrentDict):
            scaling, dictionary = _arguments(*args, **kwargs)
            if dictionary is not None:
                ConcurrentDict.update(self, dictionary)

    __new__.__signature__ = __init__.__signature__ = inspect.signature(
        lambda cls, scaling=DEFAULT_SCALING, dictionary=None: None)

    @property
    def scaling(self):
        return self._ftu_scaling

    # ---- finding a key ---------------------------------------------------------------

    def _find(self, key, h):
        """(key ticket, value ticket, (key, value), version) of the entry equal to key, or
        (None, None, None, version) if there is none."""
        m, objects = self._ftu_map, self._ftu_objects
        missed = None  # the value ticket whose pair the last round found gone
        while True:
            free, found = _found_buffer()
            n = _lookup(m, h, found)
            if n == 0:  # absent
                version = found.version
                free.append(found)
                return None, None, None, version
            if n == 1:  # the common case, without lists
                kt, vt, version = found.keys[0], found.values[0], found.version
                free.append(found)
                pair = objects.get(vt)
                if pair is None:  # replaced or removed since the lookup: look again
                    if vt == missed:
                        raise _stranded(vt)
                    missed = vt
                    continue
                stored = pair[0]
                if stored is key or stored == key:
                    return kt, vt, pair, version
                return None, None, None, version
            free.append(found)
            version, entries = _entries(m, h)  # several keys share the hash (or no memory)
            for kt, vt in entries:
                pair = objects.get(vt)
                if pair is None:  # replaced or removed since the lookup: look again
                    if vt == missed:
                        raise _stranded(vt)
                    missed = vt
                    break
                stored = pair[0]
                if stored is key or stored == key:
                    return kt, vt, pair, version
            else:
                return None, None, None, version

    def _get_pair(self, key):
        """The (key, value) pair of key, or None."""
        h = hash(key)
        vt = _get1(self._ftu_map, h)
        if vt > 0:  # the one entry with this hash
            pair = self._ftu_objects.get(vt)
            if pair is not None:
                stored = pair[0]
                return pair if stored is key or stored == key else None
        elif vt == 0:
            return None
        return self._find(key, h)[2]  # several entries, or the one changed meanwhile

    # ---- reads (no lock) ---------------------------------------------------------------

    def __getitem__(self, key):
        pair = self._get_pair(key)
        if pair is None:
            return self._missing(key)
        return pair[1]

    def _missing(self, key):
        # As dict does: a subclass's __missing__, looked up on the type and bound.
        cls = type(self)
        if cls is not ConcurrentDict:
            for klass in cls.__mro__:
                missing = klass.__dict__.get("__missing__", MISSING)
                if missing is not MISSING:
                    bind = getattr(type(missing), "__get__", None)
                    return (missing if bind is None else bind(missing, self, cls))(key)
        raise KeyError(key)

    def __contains__(self, key):
        return self._get_pair(key) is not None

    def __len__(self):
        return _size(self._ftu_map)

    def get(self, key, default=None, /):
        pair = self._get_pair(key)
        return default if pair is None else pair[1]

    # ---- writes -------------------------------------------------------------------------

    def _store(self, key, value, h, only_if_absent=False, expected=MISSING):
        """Stores value under key; with only_if_absent, only if key is absent (returns the
        value found, or MISSING if it stored); with expected, only if key's value is
        expected (returns True or False)."""
        m, objects = self._ftu_map, self._ftu_objects
        while True:
            kt, vt, pair, version = self._find(key, h)
            if pair is not None:
                if only_if_absent:
                    return pair[1]
                if expected is not MISSING and pair[1] is not expected:
                    return False
            elif expected is not MISSING:
                return False
            record = a_record()
            new = next(TICKETS)
            try:
                if pair is not None:
                    objects[new] = (pair[0], value)  # the stored key stays, as in a dict
                    # the core replaces vt by new only if the entry still holds vt
                    status = _replace(m, h, kt, vt, new, record)
                    if status == _OK:
                        objects.pop(vt, None)
                else:
                    kt = _key_word(key)
                    objects[new] = (key, value)
                    status = _insert(m, h, kt, new, version, record)
                if status != _OK:
                    del objects[new]
            except BaseException:
                self._settle(record, new, vt)
                raise
            give_back(record)
            if status == _OK:
                return MISSING if only_if_absent else True
            if status == _NO_MEMORY:
                raise _no_memory()
            # else the entry or its stripe changed since the lookup: look again

    def _settle(self, record, new, vt):
        """After an exception in a write (interrupted, or out of memory): new's pair stays
        only if the write's record says the core took new, and vt's pair leaves if it says
        the write let vt go."""
        objects = self._ftu_objects
        if new is not None and not _put_in(record, new):
            objects.pop(new, None)
        if vt is not None and _took_out(record, vt):
            objects.pop(vt, None)

    def _remove_entry(self, h, kt, vt):
        """Removes the entry kt if it still holds vt: the pair removed, or None."""
        record = a_record()
        try:
            status = _remove(self._ftu_map, h, kt, vt, record)
            if status == _OK:
                removed = self._ftu_objects.pop(vt)
        except BaseException:
            self._settle(record, None, vt)
            raise
        give_back(record)
        if status == _OK:
            return removed
        if status == _NO_MEMORY:
            raise _no_memory()
        return None

    def _take(self, key, h, expected=MISSING):
        """Removes key (only if its value is expected, if given): the (key, value) pair
        removed, or None."""
        while True:
            kt, vt, pair, version = self._find(key, h)
            if pair is None or (expected is not MISSING and pair[1] is not expected):
                return None
            del pair
            removed = self._remove_entry(h, kt, vt)
            if removed is not None:
                return removed

    def __setitem__(self, key, value):
        # The common cases first. An exact int key in one call of the core, which finds
        # its entry by the key's own word (put_word). Another key in two: its entry found
        # as the one of its hash (compared here), absent (add) or stored (swap). Anything
        # else (keys sharing a hash, the table changing meanwhile) takes the general
        # path, _store.
        h = hash(key)
        m = self._ftu_map
        objects = self._ftu_objects
        if type(key) is int and -_INT_WORDS <= key < _INT_WORDS:
            # One call: the core finds the entry by the key's own word. Its arguments are
            # one tuple, made before anything changes, so that the exception handler's
            # calls (the same arguments) allocate nothing.
            record = a_record()
            args = (m, h, key + _INT_WORDS if key >= 0 else key, next(TICKETS), record)
            new = args[3]
            try:
                objects[new] = (key, value)
                done = _put_word(*args)
                if done > 0:
                    let_go = record.out  # an int made after the write (see below)
                    if let_go:
                        objects.pop(let_go, None)
                else:
                    del objects[new]
            except BaseException as error:
                # As _settle, but the ticket the write let go is in the record only, and
                # the one step after the write that can fail for want of memory is making
                # its int. So after a MemoryError the write is taken back, and the dict
                # is left as it was, unless another write changed the entry since (then
                # the write happened, and if the int still cannot be made, the pair it
                # let go stays in the ticket dict, held until the dict goes). After any
                # other exception (a signal handler's) the write stands.
                if not _put_word_done(*args):
                    objects.pop(new, None)
                elif type(error) is MemoryError and _undo_put(*args):
                    objects.pop(new, None)
                else:
                    let_go = record.out
                    if let_go:
                        objects.pop(let_go, None)
                raise
            give_back(record)
            if done > 0:
                return
            if done < 0:
                raise _no_memory()
            return self._store(key, value, h)  # keys of the same hash, of other types
        else:
            vt = _get1(m, h)
            if vt > 0:
                pair = objects.get(vt)
                if pair is None:
                    vt = -1  # replaced or removed since the lookup
                else:
                    stored = pair[0]
                    if stored is key or stored == key:
                        key = stored  # the stored key stays, as in a dict
                    else:
                        vt = -1  # another key of the same hash
                    del stored
                del pair
        if vt >= 0:
            record = a_record()
            new = next(TICKETS)
            try:
                objects[new] = (key, value)
                if vt == 0:
                    status = _add(m, h, next(TICKETS), new, record)
                else:
                    status = _swap(m, h, vt, new, record)
                    if status == _OK:
                        objects.pop(vt, None)
                if status != _OK:
                    del objects[new]
            except BaseException:
                self._settle(record, new, vt or None)
                raise
            give_back(record)
            if status == _OK:
                return
            if status == _NO_MEMORY:
                raise _no_memory()
        self._store(key, value, h)

    def __delitem__(self, key):
        # The common case first: the key's entry found as the one of its hash (compared
        # here) or by the key's word (an exact int), removed if it still holds what was
        # found, in a second call of the core.
        h = hash(key)
        m = self._ftu_map
        objects = self._ftu_objects
        if type(key) is int and -_INT_WORDS <= key < _INT_WORDS:
            vt = _get_word(m, h, key + _INT_WORDS if key >= 0 else key)
        else:
            vt = _get1(m, h)
            if vt > 0:
                pair = objects.get(vt)
                if pair is None or not (pair[0] is key or pair[0] == key):
                    vt = -1  # changed meanwhile, or another key of the same hash
                del pair
        if vt > 0:
            record = a_record()
            try:
                status = _drop(m, h, vt, record)
                if status == _OK:
                    objects.pop(vt)
            except BaseException:
                self._settle(record, None, vt)
                raise
            give_back(record)
            if status == _OK:
                return
            if status == _NO_MEMORY:
                raise _no_memory()
        elif vt == 0:
            raise KeyError(key)
        if self._take(key, h) is None:
            raise KeyError(key)

    def pop(self, key, /, *default):
        if len(default) > 1:
            raise TypeError(f"pop expected 1 or 2 arguments, got {1 + len(default)}")
        removed = self._take(key, hash(key))
        if removed is not None:
            return removed[1]
        if default:
            return default[0]
        raise KeyError(key)

    def setdefault(self, key, default=None, /):
        h = hash(key)
        pair = self._get_pair(key)  # the common case: the key is there
        if pair is not None:
            return pair[1]
        found = self._store(key, default, h, only_if_absent=True)
        return default if found is MISSING else found

    def compare_and_set(self, key, expected, value, /):
        return self._store(key, value, hash(key), expected=expected)

    def compare_and_delete(self, key, expected, /):
        return self._take(key, hash(key), expected) is not None

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
        store = self._store
        for key, value in source.items():
            store(key, value, hash(key))

    def popitem(self, /):
        # From where the last popitem() took its item, then from the start: emptying a
        # dict with popitem() does not walk the emptied part of the table again each time.
        hint = self._ftu_pop_hint
        for start in (hint, 0) if hint else (0,):
            scan = ffi.new("ftu_cffi_scan *")
            scan.cursor = start
            while not scan.done:
                for h, kt, vt, pair in self._scan(scan):
                    while pair is not None:
                        gone = self._remove_entry(h, kt, vt)
                        if gone is not None:
                            self._ftu_pop_hint = _cursor_of(h)
                            return gone
                        vt, pair = self._current(h, kt)  # replaced meanwhile; None if removed
        raise KeyError("popitem(): dictionary is empty")

    @classmethod
    def fromkeys(cls, iterable, value=None, /):
        result = cls()
        for key in iterable:
            result[key] = value  # as dict.fromkeys: through __setitem__
        return result

    def __or__(self, other):
        if not isinstance(other, (dict, ConcurrentDict, Mapping)):
            return NotImplemented
        result = self.copy()
        result.update(other)
        return result

    def __ror__(self, other):
        if not isinstance(other, (dict, Mapping)):
            return NotImplemented
        result = ConcurrentDict(self._ftu_scaling, other)
        result.update(self)
        return result

    def __ior__(self, other):
        self.update(other)
        return self

    def clear(self, /):
        # What clear() removes is kept until it is done: finalizers run after clear() (a
        # write they make is not wiped by it).
        removed = []
        for h, kt, vt, pair in self._walk():
            while pair is not None:
                gone = self._remove_entry(h, kt, vt)
                if gone is not None:
                    removed.append(gone)
                    break
                vt, pair = self._current(h, kt)  # replaced meanwhile: remove what it holds now
        del removed

    # ---- walking the table ---------------------------------------------------------------

    def _current(self, h, kt):
        """(value ticket, pair) of the entry whose key ticket is kt, or (None, None)."""
        objects = self._ftu_objects
        missed = None
        while True:
            for key_ticket, vt in _entries(self._ftu_map, h)[1]:
                if key_ticket == kt:
                    pair = objects.get(vt)
                    if pair is not None:
                        return vt, pair
                    if vt == missed:
                        raise _stranded(vt)
                    missed = vt
                    break  # replaced again meanwhile: look again
            else:
                return None, None

    def _batch(self, cursor):
        """The entries of the table from cursor on, a batch in the table's order (weakly
        consistent): ([(hash, (key, value)), ...], the next cursor, whether it was the last)."""
        scan = ffi.new("ftu_cffi_scan *")
        scan.cursor = cursor
        entries = self._scan(scan)
        return list(map(_hash_and_pair, entries)), scan.cursor, bool(scan.done)

    def _scan(self, scan):
        """[(hash, key ticket, value ticket, pair), ...] of one scan call."""
        m, objects = self._ftu_map, self._ftu_objects
        n = _scan(m, scan)
        if n == -1:
            raise _no_memory()
        if n < -1:  # more keys share one hash than a batch holds
            cap = -n * 2
            hashes, keys, values = ffi.new("int64_t[]", cap), ffi.new("int64_t[]", cap), ffi.new("int64_t[]", cap)
            cursor, done = ffi.new("int64_t *", scan.cursor), ffi.new("int *", scan.done)
            n = _scan_n(m, cursor, done, hashes, keys, values, cap)
            if n < 0:
                raise _no_memory()
            scan.cursor, scan.done = cursor[0], done[0]
        else:
            hashes, keys, values = scan.hashes, scan.keys, scan.values
        raw = list(zip(_unpack(hashes, n), _unpack(keys, n), _unpack(values, n)))
        entries = []
        for h, kt, vt in raw:
            pair = objects.get(vt)
            if pair is None:  # replaced or removed since the scan
                vt, pair = self._current(h, kt)
            if pair is not None:
                entries.append((h, kt, vt, pair))
        return entries

    def _walk(self):
        """[(hash, key ticket, value ticket, (key, value)), ...] of every entry, weakly
        consistent. (A list, not a generator: on CPython 3.11 a generator cut short by a
        MemoryError was seen to keep its frame, and the dict, alive.)"""
        scan = ffi.new("ftu_cffi_scan *")
        batches = []
        while not scan.done:
            batches.append(self._scan(scan))
        # not `entries += batch`: on CPython 3.11 extending an empty list by a list keeps a
        # reference to the latter when its allocation fails
        return list(_chain(batches))

    def _pairs(self):
        return list(map(_pair, self._walk()))

    def as_dict(self, /):
        return dict(self._pairs())

    def copy(self, /):
        copy = ConcurrentDict.__new__(ConcurrentDict, self._ftu_scaling)
        for h, kt, vt, (key, value) in self._walk():
            copy._store(key, value, h)
        return copy

    def keys(self, /):
        return list(map(_first, self._pairs()))

    def values(self, /):
        return list(map(_second, self._pairs()))

    def items(self, /):
        return self._pairs()

    def __iter__(self):
        # A batch at a time: never "changed size during iteration".
        return _Iterator(self)

    # Not reversible: the order is the table's, there is no insertion order to reverse.
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
        return (copyreg.__newobj__, (cls, self._ftu_scaling), state, None, iter(self.items()))

    __class_getitem__ = classmethod(GenericAlias)
