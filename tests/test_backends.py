"""Backend selection and parity: both backends present the same public API, with the
same names, signatures and docstrings (checked against the shared table)."""

import inspect
import os
import subprocess
import sys

import pytest

import ft_utils
from ft_utils import _backend, _docstrings

from conftest import BACKENDS, FREE_THREADED


def run_python(code, **env):
    environment = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=60)


def test_backend_attribute():
    assert ft_utils.backend in _backend.BACKENDS
    wanted = os.environ.get("FT_UTILS_BACKEND", "auto")
    if wanted != "auto":
        assert ft_utils.backend == wanted


def test_public_modules_export_selected_backend():
    import importlib

    module = _backend.load(ft_utils.backend)
    for name in _backend.PUBLIC_NAMES:
        public = importlib.import_module(_backend.PUBLIC_MODULES[name])
        assert getattr(public, name) is getattr(module, name)
        assert name in public.__all__


@pytest.mark.parametrize("name", ["native", "cffi"])
def test_env_var_selects_backend(name):
    result = run_python("import ft_utils; print(ft_utils.backend)", FT_UTILS_BACKEND=name)
    if name in _backend.available():
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == name
    else:
        assert result.returncode != 0
        assert "ImportError" in result.stderr and f"the {name} backend cannot be loaded" in result.stderr


def test_unknown_backend_is_a_clear_import_error():
    result = run_python("import ft_utils", FT_UTILS_BACKEND="turbo")
    assert result.returncode != 0
    assert "ImportError" in result.stderr and "FT_UTILS_BACKEND='turbo'" in result.stderr


def test_auto_prefers_native():
    result = run_python("import ft_utils; print(ft_utils.backend)", FT_UTILS_BACKEND="auto")
    assert result.stdout.strip() == _backend.available()[0]


@pytest.mark.skipif(not hasattr(sys, "_is_gil_enabled"), reason="interpreter has no sys._is_gil_enabled")
def test_import_keeps_gil_disabled():
    """Importing ft_utils (and using it) must not turn the GIL back on."""
    code = (
        "import sys; before = sys._is_gil_enabled(); import ft_utils.concurrency as c; "
        "c.AtomicInt64(1).incr(); print(before, sys._is_gil_enabled())"
    )
    result = run_python(code, PYTHON_GIL="")  # PYTHON_GIL unset-ish: the interpreter's default
    assert result.returncode == 0, result.stderr
    before, after = result.stdout.split()
    assert after == before
    if FREE_THREADED:
        assert after == "False"
        assert "GIL" not in result.stderr, result.stderr  # no "enabling the GIL" warning


@pytest.mark.skipif(not FREE_THREADED, reason="not a free-threaded interpreter")
def test_free_threaded_in_process():
    import ft_utils.concurrency  # noqa: F401

    assert sys._is_gil_enabled() is False


# ---- parity ----------------------------------------------------------------------------

PUBLIC_DUNDERS = {
    "AtomicInt64": {
        "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__floordiv__",
        "__rfloordiv__", "__truediv__", "__rtruediv__", "__mod__", "__rmod__", "__divmod__",
        "__rdivmod__", "__pow__", "__rpow__", "__lshift__", "__rlshift__", "__rshift__",
        "__rrshift__", "__and__", "__rand__", "__or__", "__ror__", "__xor__", "__rxor__",
        "__neg__", "__pos__", "__abs__", "__invert__", "__int__", "__index__", "__float__",
        "__bool__", "__format__", "__repr__", "__str__", "__eq__", "__ne__", "__lt__", "__le__",
        "__gt__", "__ge__", "__iadd__", "__isub__", "__imul__", "__ifloordiv__", "__imod__",
        "__ipow__", "__ilshift__", "__irshift__", "__iand__", "__ior__", "__ixor__",
        "__itruediv__", "__reduce__", "__round__", "__trunc__", "__floor__", "__ceil__",
        "__matmul__", "__rmatmul__", "__imatmul__",
    },
    "AtomicReference": {"__repr__", "__reduce__"},
    "AtomicFlag": {"__bool__", "__str__", "__repr__", "__reduce__"},
    "ConcurrentDict": {
        "__getitem__", "__setitem__", "__delitem__", "__contains__", "__len__", "__iter__",
        "__eq__", "__ne__", "__repr__", "__reduce__", "__class_getitem__",
    },
    "ConcurrentQueue": {"__repr__"},
    "StdConcurrentQueue": {"__repr__", "__class_getitem__"},
    "ConcurrentGatheringIterator": set(),
    # What every wrapper has; the protocols of the wrapped object's type (__len__,
    # __iter__, __hash__, __call__, ...) are on the subtype LocalWrapper(obj) makes for it
    # (tests/test_local_wrapper.py checks them against the wrapped object).
    "LocalWrapper": {
        "__getattribute__", "__setattr__", "__delattr__", "__repr__", "__str__", "__format__",
        "__dir__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__",
        *(f"__{p}{op}__" for op in ("add", "sub", "mul", "matmul", "truediv", "floordiv", "mod",
                                    "lshift", "rshift", "and", "or", "xor", "pow")
          for p in ("", "r", "i")),
        "__divmod__", "__rdivmod__",
    },
}


def public_methods(cls):
    return sorted(n for n in dir(cls) if not n.startswith("_"))


@pytest.mark.parametrize("class_name", _backend.PUBLIC_NAMES)
def test_matches_docstring_table(backend, class_name):
    """Names, signatures and docstrings of every public method equal the shared table,
    which is the single source for both backends."""
    cls = getattr(backend, class_name)
    expected_methods = sorted(k.split(".", 1)[1] for k in _docstrings.DOCSTRINGS if k.startswith(class_name + "."))
    assert public_methods(cls) == expected_methods
    assert inspect.getdoc(cls) == inspect.cleandoc(_docstrings.doc(class_name))
    assert str(inspect.signature(cls)) == _docstrings.DOCSTRINGS[class_name][0]
    assert cls.__module__ == _backend.PUBLIC_MODULES[class_name] and cls.__name__ == class_name
    for name in expected_methods:
        method = inspect.getattr_static(cls, name)
        signature, text = _docstrings.DOCSTRINGS[f"{class_name}.{name}"]
        assert inspect.getdoc(method) == inspect.cleandoc(text), name
        if signature:
            assert str(inspect.signature(getattr(cls, name))) == signature, name
        else:  # a property
            assert inspect.isdatadescriptor(method), name
    missing = {d for d in PUBLIC_DUNDERS[class_name] if getattr(cls, d, None) in (None, getattr(object, d, None))}
    assert not missing, f"{class_name} lacks {sorted(missing)}"


@pytest.mark.skipif(len(BACKENDS) < 2, reason="needs both backends in this run")
def test_backends_agree():
    native, cffi = _backend.load("native"), _backend.load("cffi")
    for name in _backend.PUBLIC_NAMES:
        a, b = getattr(native, name), getattr(cffi, name)
        assert public_methods(a) == public_methods(b)
        assert inspect.getdoc(a) == inspect.getdoc(b)
