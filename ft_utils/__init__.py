"""ft_utils: concurrency primitives that scale on free-threaded Python.

The public classes live in :mod:`ft_utils.concurrency`. They come from one of two
backends built from the same C core: ``native`` (a CPython extension) or ``cffi`` (for
other interpreters such as PyPy). :data:`backend` says which one this process loaded;
the environment variable ``FT_UTILS_BACKEND`` (``auto``, ``native``, ``cffi``) chooses.
"""

from ft_utils._backend import select as _select

try:
    from importlib.metadata import version as _version

    __version__ = _version("ft_utils")
except Exception:  # not installed as a distribution (e.g. a source tree on sys.path)
    __version__ = "unknown"

#: The backend this process uses: "native" or "cffi".
backend, _implementation = _select()

__all__ = ["backend", "__version__"]
