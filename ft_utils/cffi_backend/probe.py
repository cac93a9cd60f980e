"""The machine probe of csrc/ftu_probe.c, for the benchmark (see ft_utils._native)."""

from operator import index

from ft_utils.cffi_backend._api import lib


def _probe_line_transfer_ns(hops, budget_ns):
    """Nanoseconds for a CPU to get a cache line another has just written; None if it
    could not measure."""
    hops, budget_ns = index(hops), index(budget_ns)
    if hops < 4 or budget_ns <= 0:
        raise ValueError("_probe_line_transfer_ns() needs hops >= 4 and budget_ns > 0")
    ns = lib.ftu_probe_line_transfer_ns(hops, budget_ns)
    return None if ns < 0 else ns
