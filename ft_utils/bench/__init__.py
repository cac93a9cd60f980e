"""Benchmarks of ft_utils against the standard library and peers, run by
``python -m ft_utils.bench`` (see docs/benchmarks.md).

Each run of a workload starts its threads behind a barrier and verifies its result (so a
broken structure cannot look fast). The variants of a workload (baselines, ours on every
backend, peers) run in paired rounds, back to back in a rotating order; the report gives
the median of the per-round ratios with their spread, and marks the rounds taken while
the machine's cache-line probe read a slow phase.
"""
