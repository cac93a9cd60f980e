"""The machine probe the benchmark prints (csrc/ftu_probe.c), on every backend."""

import time

import pytest

from ft_utils.bench import harness


def test_measures_a_plausible_transfer(backend):
    start = time.monotonic()
    ns = backend._probe_line_transfer_ns(20_000, 2_000_000_000)
    assert isinstance(ns, int)
    assert ns > 0  # milliseconds on a loaded machine, where the threads wait for CPUs
    assert time.monotonic() - start < 3


def test_stops_at_its_budget(backend):
    start = time.monotonic()
    ns = backend._probe_line_transfer_ns(2**62, 50_000_000)  # far more hops than 50 ms allow
    assert ns is None or ns > 0  # None: the other thread did not start in time (loaded machine)
    assert time.monotonic() - start < 1


@pytest.mark.parametrize("hops, budget_ns", [(3, 10**9), (-1, 10**9), (1000, 0), (1000, -5)])
def test_bad_arguments_are_value_errors(backend, hops, budget_ns):
    with pytest.raises(ValueError, match="hops >= 4 and budget_ns > 0"):
        backend._probe_line_transfer_ns(hops, budget_ns)


@pytest.mark.parametrize("hops, budget_ns", [("many", 10**9), (1000, None), (1000.0, 10**9)])
def test_non_integers_are_type_errors(backend, hops, budget_ns):
    with pytest.raises(TypeError):
        backend._probe_line_transfer_ns(hops, budget_ns)


def test_harness_reports_the_median_of_its_probes():
    ns = harness.line_transfer_ns(probes=3)
    assert ns is not None and ns > 0
