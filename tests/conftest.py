"""Test configuration: the backend fixture, hypothesis profiles, the report header.

Every behaviour test takes the ``backend`` fixture and runs once per backend this
interpreter has (native, cffi). FT_UTILS_TEST_BACKENDS=native (or cffi) narrows that to
one; scripts/run_tests.sh uses it to count results per interpreter and backend.
"""

import os
import sys

import pytest
from hypothesis import HealthCheck, settings

from ft_utils import _backend

settings.register_profile("default", max_examples=100, deadline=None)
# CI (make test with CI set): twice the examples. 300 cost about 6 minutes more than 100
# over the four interpreter/backend suites, and .ci/run must stay under 40 minutes with
# make test-tsan after it.
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

FREE_THREADED = hasattr(sys, "_is_gil_enabled") and not sys._is_gil_enabled()


def _backends_under_test():
    names = _backend.available()
    wanted = os.environ.get("FT_UTILS_TEST_BACKENDS")
    if wanted:
        wanted_names = [n.strip() for n in wanted.split(",") if n.strip()]
        missing = [n for n in wanted_names if n not in names]
        if missing:
            raise pytest.UsageError(
                f"FT_UTILS_TEST_BACKENDS asks for {missing}, not available here (available: {names})"
            )
        names = wanted_names
    return names


BACKENDS = _backends_under_test()


@pytest.fixture(params=BACKENDS, scope="session")
def backend(request):
    """The module of one backend: backend.AtomicInt64, backend.AtomicReference, ..."""
    return _backend.load(request.param)


def pytest_report_header(config):
    gil = "n/a" if not hasattr(sys, "_is_gil_enabled") else sys._is_gil_enabled()
    return [
        f"ft_utils backends under test: {BACKENDS} (available: {_backend.available()})",
        f"interpreter: {sys.implementation.name} {sys.version.split()[0]}, GIL enabled: {gil}",
    ]


# ---- --threaded-only: the tests that start threads (make test-tsan) ----------------------

# Calls that start a thread, here or in a child interpreter's script.
THREAD_STARTERS = ("Thread", "run_threads", "run_bounded", "ThreadPoolExecutor", "start_new_thread",
                   "start_joinable_thread", "Timer")


def pytest_addoption(parser):
    parser.addoption("--threaded-only", action="store_true",
                     help="run only the tests whose code (or a function or child script it uses, "
                          "two levels deep) starts a thread")


def _starts_threads(code, namespaces, depth):
    """Whether a code object names a thread starter, directly, in a nested function, in a
    string (a child interpreter's script), or in a function or script it uses by name from
    one of the namespaces (its module, its test class)."""
    for const in code.co_consts:
        if isinstance(const, str) and any(f"{name}(" in const for name in THREAD_STARTERS):
            return True
        if hasattr(const, "co_names") and _starts_threads(const, namespaces, depth):
            return True
    for name in code.co_names:
        if name in THREAD_STARTERS:
            return True
        for namespace in namespaces:
            used = namespace.get(name)
            if isinstance(used, str) and any(f"{starter}(" in used for starter in THREAD_STARTERS):
                return True
            if depth > 0 and hasattr(used, "__code__") and _starts_threads(used.__code__, namespaces, depth - 1):
                return True
    return False


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--threaded-only"):
        return
    keep, drop = [], []
    for item in items:
        function = getattr(item, "function", None)
        namespaces = [function.__globals__] if function is not None else []
        for cls in getattr(item.cls, "__mro__", ()):
            namespaces.append(vars(cls))
        threaded = function is not None and _starts_threads(function.__code__, namespaces, 2)
        (keep if threaded else drop).append(item)
    items[:] = keep
    config.hook.pytest_deselected(items=drop)
