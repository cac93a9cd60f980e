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
# ffi.gc frees a core object (a queue, a gatherer) when cffi's handle for it is finalized.
# The cyclic garbage collector finalizes every object of a dead cycle before it clears any,
# in no set order: in a cycle through a queue, a value's __del__ that pushes to or pops
# from that queue could run after the queue's memory was freed (a use after free, seen as
# a hang). So a core object whose handle dies during a collection is freed when that
# collection is over (gc.callbacks); one that dies by reference counting, at once. PyPy
# has no gc.callbacks, and finalizes an object before those it refers to: at once there.

import gc as _gc

_collecting = False
_pending = []  # (free, pointer) to free when the collection in progress ends


def _on_collection(phase, info):
    global _collecting
    _collecting = phase == "start"
    while not _collecting and _pending:
        free, pointer = _pending.pop()
        free(pointer)


def _freer(free):
    def release(pointer):
        if _collecting:
            _pending.append((free, pointer))
        else:
            free(pointer)

    return release


if hasattr(_gc, "callbacks"):
    _gc.callbacks.append(_on_collection)

    def owned(pointer, free):
        """pointer, freed by free(pointer) once nothing can use it any more."""
        return ffi.gc(pointer, _freer(free))
else:
    def owned(pointer, free):
        """pointer, freed by free(pointer) once nothing can use it any more."""
        return ffi.gc(pointer, free)


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
