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
        elif callable(value):
            value.__doc__ = doc(key)
    return cls
