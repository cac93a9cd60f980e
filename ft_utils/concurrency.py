"""Concurrently scalable data structures for free-threaded Python.

The classes come from the backend ``ft_utils.backend`` names; both backends present the
same API, described in each class's docstring (``help(ConcurrentQueue)``) and in the
docs/ folder of the ft_utils source tree.
"""

from ft_utils import _implementation

AtomicInt64 = _implementation.AtomicInt64
AtomicReference = _implementation.AtomicReference
AtomicFlag = _implementation.AtomicFlag
ConcurrentDict = _implementation.ConcurrentDict
ConcurrentQueue = _implementation.ConcurrentQueue
StdConcurrentQueue = _implementation.StdConcurrentQueue
ConcurrentGatheringIterator = _implementation.ConcurrentGatheringIterator

from ft_utils._exceptions import Empty, Full, ShutDown  # noqa: E402  (queue.Empty, queue.Full)

__all__ = [
    "AtomicInt64",
    "AtomicReference",
    "AtomicFlag",
    "ConcurrentDict",
    "ConcurrentQueue",
    "StdConcurrentQueue",
    "ConcurrentGatheringIterator",
    "Empty",
    "Full",
    "ShutDown",
]
