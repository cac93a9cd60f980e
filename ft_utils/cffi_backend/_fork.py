"""The locks of the cffi classes in the child of a fork.

A shard lock of a ConcurrentDict (or any lock below) may be held by one thread while
another forks: under a GIL the holder may be switched out between any two bytecodes
(PyPy runs even finalizers there), and a key's __eq__ runs under the shard lock. fork()
copies only the calling thread, so in the child such a lock would stay held by a thread
that is not there, and the next call that takes it would wait for ever. So every lock
these classes make comes from here, is remembered (weakly), and is made free again in
the child (os.register_at_fork), unless the forking thread holds it itself (an RLock
knows; none of the plain Locks is held while code that could fork runs). What it guarded is
whole: the holder was stopped between two bytecodes, and every step the locks guard
keeps its data consistent at each bytecode (single dict operations).
"""

import os
import weakref
from _thread import RLock as _RLock
from _thread import allocate_lock as _allocate_lock

from ft_utils.cffi_backend._api import allocate_lock

_locks = weakref.WeakSet()
_rlocks = weakref.WeakSet()


def lock():
    """A new threading.Lock, free again in a forked child (MemoryError if none can be made)."""
    new = allocate_lock(_allocate_lock)
    _locks.add(new)
    return new


def rlock():
    """A new threading.RLock, free again in a forked child unless the forking thread
    holds it (MemoryError if none can be made)."""
    new = allocate_lock(_RLock)
    _rlocks.add(new)
    return new


def _after_fork_in_child():
    # Every plain lock, free or not: one that reads as free may have been taken by a
    # thread that had not yet marked it taken when the fork came (CPython's lock.acquire
    # takes the lock, then the GIL back, then marks it).
    for held in list(_locks):
        held._at_fork_reinit()
    for held in list(_rlocks):
        if not held._is_owned():
            held._at_fork_reinit()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
