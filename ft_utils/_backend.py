"""Backend selection: which implementation of the public classes this process uses.

``FT_UTILS_BACKEND`` chooses: ``auto`` (the default: native if it loads, else cffi),
``native`` (the CPython extension ft_utils._native) or ``cffi`` (ft_utils.cffi_backend
over the cffi module ft_utils._cffi). Asking for a backend that cannot load is an
ImportError that says why.
"""

import importlib
import os
import platform
import sys
import sysconfig

BACKENDS = ("native", "cffi")
PUBLIC_NAMES = (
    "AtomicInt64",
    "AtomicReference",
    "AtomicFlag",
    "ConcurrentDict",
    "ConcurrentQueue",
    "StdConcurrentQueue",
    "ConcurrentGatheringIterator",
    "LocalWrapper",
)
#: The public module each class is presented under.
PUBLIC_MODULES = {name: "ft_utils.concurrency" for name in PUBLIC_NAMES}
PUBLIC_MODULES["LocalWrapper"] = "ft_utils.local"

_MODULES = {"native": "ft_utils._native", "cffi": "ft_utils.cffi_backend"}


def _hint(name: str) -> str:
    implementation = platform.python_implementation()
    if name == "native" and implementation != "CPython":
        return f"the native backend is a CPython extension and this is {implementation}"
    if name == "cffi" and sysconfig.get_config_var("Py_GIL_DISABLED") and sys.version_info < (3, 14):
        return "cffi does not support free-threaded CPython 3.13, so ft_utils._cffi is not built here"
    if name == "cffi":
        return "ft_utils._cffi is built only when cffi is installed at build time"
    return "ft_utils._native was not built for this interpreter"


def load(name: str):
    """Import and return the module that implements backend ``name``."""
    if name not in _MODULES:
        raise ImportError(f"ft_utils: unknown backend {name!r}: expected one of {', '.join(BACKENDS)}")
    try:
        module = importlib.import_module(_MODULES[name])
    except ImportError as exc:
        raise ImportError(f"ft_utils: the {name} backend cannot be loaded: {exc} ({_hint(name)})") from exc
    missing = [n for n in PUBLIC_NAMES if not hasattr(module, n)]
    if missing:
        raise ImportError(f"ft_utils: the {name} backend lacks {', '.join(missing)}: rebuild ft_utils")
    return module


def available() -> list:
    """The names of the backends that load in this interpreter, in preference order."""
    names = []
    for name in BACKENDS:
        try:
            load(name)
        except ImportError:
            continue
        names.append(name)
    return names


def select():
    """(name, module) of the backend FT_UTILS_BACKEND asks for."""
    wanted = os.environ.get("FT_UTILS_BACKEND", "auto").strip().lower() or "auto"
    if wanted == "auto":
        errors = []
        for name in BACKENDS:
            try:
                return name, load(name)
            except ImportError as exc:
                errors.append(str(exc))
        raise ImportError("ft_utils: no backend can be loaded: " + "; ".join(errors))
    if wanted not in BACKENDS:
        raise ImportError(
            f"ft_utils: FT_UTILS_BACKEND={wanted!r} is not a backend: expected auto, {', '.join(BACKENDS)}"
        )
    return wanted, load(wanted)
