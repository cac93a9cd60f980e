"""Helpers shared by the cffi classes: the core module and the docstring table."""

from ft_utils._backend import PUBLIC_MODULES
from ft_utils._cffi import ffi, lib  # noqa: F401  (re-exported)
from ft_utils._docstrings import doc


def document(cls):
    """Class decorator: take the class's, its methods' and its properties' docstrings
    from the shared table, and present the class under its public module, as the native
    types do."""
    cls.__doc__ = doc(cls.__name__)
    cls.__module__ = PUBLIC_MODULES[cls.__name__]
    for name, value in list(vars(cls).items()):
        if name.startswith("_"):
            continue
        key = f"{cls.__name__}.{name}"
        if isinstance(value, property):
            setattr(cls, name, property(value.fget, value.fset, value.fdel, doc(key)))
        elif isinstance(value, classmethod):  # its __doc__ was copied from the function when made
            value.__func__.__doc__ = doc(key)
            setattr(cls, name, classmethod(value.__func__))
        elif callable(value):
            value.__doc__ = doc(key)
    return cls


# ---- freeing core objects ---------------------------------------------------------------
# owned() ties a core object (a queue, a gatherer, a map) to a cffi handle, ffi.gc(pointer,
# free): the Python object keeps the handle and passes it to the core, and free runs when
# the handle goes. Whatever can use the core object holds the handle, so the memory must
# go when the handle is really gone, and not before.
#
# CPython finalizes a handle (its tp_finalize runs free) as soon as the cyclic collector
# finds it in a dead cycle: before the other finalizers of that collection have run, and
# before it knows whether one of them resurrects the cycle. Freeing there was a use after
# free twice over: a value's __del__ that used the queue of its own cycle ran on freed
# memory (a hang), and an object saved by a __del__ (a ConcurrentDict resurrected by its
# own value) went on with freed memory (a crash). Deferring the free to the end of the
# collection cured the first only: by then the handle is finalized and nothing tells
# whether it was resurrected (weak references to it are cleared before any finalizer
# runs, resurrected or not).
#
# So the collector never finalizes a handle: while a collection runs, every handle it
# examines is held from here (_pins), which makes it reachable for the collector. An
# object of a dead cycle still lets go of its handle in the clearing that ends the
# collection; the pins go when it is over (gc.callbacks "stop"), and a handle that nobody
# else holds then goes at once and frees. A resurrected object keeps its handle, still
# armed. A handle that goes by reference counting frees at once, in a collection or not:
# nothing can use it any more.
#
# Which handles: those of the generations the collection examines. _generations mirrors
# where the collector keeps each handle (CPython up to 3.13 with the GIL: a new object is
# in generation 0; a collection of generation g examines 0..g and moves what survives to
# g + 1, or keeps it in 2; an object made while a collection runs stays in 0). The mirror
# may only lag behind (a handle pinned for nothing), never run ahead: a handle made during
# a collection waits in _born and enters generation 0 when it is over. Elsewhere every
# collection pins every handle. A pinned handle costs a list slot per collection.
#
# free is the C function itself: no Python code runs when a handle goes, so a signal
# handler that raises (KeyboardInterrupt) cannot skip a free. The gc callback is Python
# code that a signal handler can interrupt at any step (the collector then reports the
# exception and goes on): it is registered twice, and each copy does only what the other
# has not done, so one interruption leaves nothing unpinned and nothing unmoved. Each step
# is one C-level call, none loses an entry if it is the last one done: an interrupted
# "stop" keeps dead handles until the next one, an interrupted move leaves a handle in a
# younger generation. A handle made while a collection runs (by a finalizer, by another
# thread) pins itself.
#
# PyPy has no gc.callbacks, and finalizes an object before those it refers to, once any
# resurrection is settled: ffi.gc's free runs when the handle is really gone there.
#
# At exit CPython runs a last collection without gc.callbacks (in finalize_modules): a
# handle dead in the same garbage as an object whose __del__ uses its queue would be
# freed first. So the frees (ftu_cffi_*_free, see cffi_build.py) do nothing once the
# atexit function below has run: what is left is the process's to reclaim.

import atexit as _atexit
import gc as _gc
import sys as _sys
import weakref as _weakref
from itertools import chain as _chain, filterfalse as _filterfalse


_atexit.register(lib.ftu_cffi_exiting)


def _generational():
    """Whether the collector keeps the generations the mirror assumes."""
    if _sys.implementation.name != "cpython" or _sys.version_info >= (3, 14):
        return False
    if _sys.version_info >= (3, 13):
        import sysconfig

        return not sysconfig.get_config_var("Py_GIL_DISABLED")
    return True


if hasattr(_gc, "callbacks"):
    _GENERATIONAL = _generational()
    # Weak references to the handles, by the generation the collector is known to have
    # moved each to at least. A reference whose handle went is dropped when its
    # generation is next collected (or at once if it is still in generation 0).
    _generations = (set(), set(), set())
    _born = []  # weak references to the handles made during the current collection
    _pins = []  # during a collection: the handles it examines, and those made meanwhile
    _collecting = False  # from a collection's "start" until its "stop" is done
    _pinned = False  # _pins holds this collection's handles
    _deref = _weakref.ref.__call__

    def _on_collection(phase, info):
        global _collecting, _pinned
        g = info["generation"] if _GENERATIONAL else 2
        if phase == "start":
            _collecting = True  # before the snapshot: a handle made from now on pins itself
            if not _pinned:
                _pins.extend(map(_deref, list(_chain(*_generations[:g + 1], _born))))
                _pinned = True
            return
        if _collecting:  # (not yet done by the other copy)
            older = _generations[min(g + 1, 2)]
            for younger in _generations[:g + 1]:
                moved = list(younger)
                if younger is older:  # a full collection: drop the references that died
                    older.difference_update(list(_filterfalse(_deref, moved)))
                else:
                    older.update(filter(_deref, moved))
                    younger.difference_update(moved)
            born = _born[:]
            _generations[0].update(filter(_deref, born))
            del _born[:len(born)]  # (another thread may append meanwhile)
            _collecting = _pinned = False
        _pins.clear()  # the handles that nobody else holds go, and free their objects

    _gc.callbacks.append(_on_collection)
    _gc.callbacks.append(_on_collection)  # the spare (see above)

    def owned(pointer, free):
        """pointer, freed by free(pointer) once nothing can use it any more."""
        handle = ffi.gc(pointer, free)
        young = _generations[0]
        ref = _weakref.ref(handle, young.discard)
        hash(ref)  # now: a weak reference can only be hashed while its object lives
        if _collecting:
            _born.append(ref)
            _pins.append(handle)
        else:
            young.add(ref)
        return handle
else:
    def owned(pointer, free):
        """pointer, freed by free(pointer) once nothing can use it any more."""
        return ffi.gc(pointer, free)


# ---- records of calls ----------------------------------------------------------------------
# A call into the core that changes a container (a push, a pop, an insert, a dict write)
# gets a record of its own (ftu_cffi_record, see cffi_build.py), in which the core writes
# the ticket it put in and the one it took out. The call's exception handler reads it to
# learn whether the change was made (an exception can strike right after the core
# returns: a signal handler's, or a MemoryError making the result). No other call writes
# to it meanwhile, however many a finalizer or a signal handler of the same thread makes
# before raising: each takes a record of its own. So a record is given back to RECORDS
# only once its call's handler can no longer read it (after the call's try statement);
# one an exception skips is left to the garbage collector. The list is shared by the
# threads: pop and append are atomic, and a record popped belongs to its call alone.
# Used as record = a_record(); ... the call and its try statement ...; give_back(record).
# The queues' templates inline both (there a Python-level call costs as much as the call
# into the core):
#
#     try:
#         record = take_record()
#     except IndexError:
#         record = new_record()
#     ... the call and its try statement ...
#     try:
#         give_record(record)
#     except MemoryError:  # growing the list: the change is made, the record is not needed
#         pass
RECORDS = []
take_record = RECORDS.pop
give_record = RECORDS.append


def new_record():
    return ffi.new("ftu_cffi_record *")


def a_record():
    """A record for one call: from the free list, or a new one."""
    try:
        return take_record()
    except IndexError:
        return new_record()


def give_back(record):
    """Gives a call's record back, once its exception handler can no longer read it."""
    try:
        give_record(record)
    except MemoryError:  # growing the free list: the call is done all the same
        pass


# ---- construction ------------------------------------------------------------------------
# The arguments of a call to a class go to __new__ and __init__ alike. As object.__new__
# and object.__init__ do, each of ours takes them as its own unless a subclass overrides
# the other one only: then they are that method's (a subclass's __init__ may take
# arguments of its own and pass ours on through super().__init__()).


def new_takes_arguments(cls, base):
    return cls.__new__ is not base.__new__ or cls.__init__ is base.__init__


def init_takes_arguments(cls, base):
    return cls.__init__ is not base.__init__ or cls.__new__ is base.__new__


def allocate_lock(factory):
    """factory(), a new lock; MemoryError, as for any other allocation, where CPython
    raises RuntimeError("can't allocate lock")."""
    try:
        return factory()
    except RuntimeError as error:
        if "allocate" not in str(error):
            raise
        raise MemoryError("cannot allocate a lock") from None


def parse_state(state, type_name):
    """The (value, attributes) of an atomic's __setstate__ (see ft_utils._reconstruct)."""
    if not isinstance(state, tuple) or len(state) != 2:
        raise TypeError(f"{type_name}.__setstate__() takes a (value, attributes) tuple, not {type(state).__name__}")
    return state
