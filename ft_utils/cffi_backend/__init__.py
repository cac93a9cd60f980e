"""The cffi backend: Python classes over ft_utils._cffi, the cffi module built from the
same C core as the native extension (see cffi_build.py). Same API as ft_utils._native.
"""

from ft_utils.cffi_backend.atomic_flag import AtomicFlag
from ft_utils.cffi_backend.atomic_int64 import AtomicInt64
from ft_utils.cffi_backend.atomic_reference import AtomicReference
from ft_utils.cffi_backend.concurrent_dict import ConcurrentDict
from ft_utils.cffi_backend.concurrent_gathering_iterator import ConcurrentGatheringIterator
from ft_utils.cffi_backend.concurrent_queue import ConcurrentQueue
from ft_utils.cffi_backend.local_wrapper import LocalWrapper
from ft_utils.cffi_backend.std_concurrent_queue import StdConcurrentQueue
from ft_utils.cffi_backend.probe import _probe_line_transfer_ns  # noqa: F401  (for ft_utils.bench)
from ft_utils._exceptions import Empty, Full, ShutDown

__all__ = [
    "AtomicInt64", "AtomicReference", "AtomicFlag", "ConcurrentDict", "ConcurrentQueue",
    "StdConcurrentQueue", "ConcurrentGatheringIterator", "LocalWrapper", "Empty", "Full", "ShutDown",
]
