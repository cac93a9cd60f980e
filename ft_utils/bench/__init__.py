"""Benchmarks of ft_utils against the standard library, run by ``python -m ft_utils.bench``.

Each workload runs its threads behind a barrier, verifies its result (so a broken
structure cannot look fast), and is repeated; the report gives the median ops/s and the
ratio against the stdlib baseline measured in the same run, with repeats interleaved so
that the noise of a shared machine hits both alike.
"""
