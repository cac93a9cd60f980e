"""Helpers shared by the cffi classes: the core module and the docstring table."""

from ft_utils._cffi import ffi, lib  # noqa: F401  (re-exported)
from ft_utils._docstrings import doc

PUBLIC_MODULE = "ft_utils.concurrency"


def document(cls):
    """Class decorator: take the class's and its methods' docstrings from the shared
    table, and present the class under the public module, as the native types do."""
    cls.__doc__ = doc(cls.__name__)
    cls.__module__ = PUBLIC_MODULE
    for name, value in vars(cls).items():
        key = f"{cls.__name__}.{name}"
        if callable(value) and not name.startswith("_"):
            value.__doc__ = doc(key)
    return cls
