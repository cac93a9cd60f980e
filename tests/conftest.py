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
settings.register_profile(
    "ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
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
