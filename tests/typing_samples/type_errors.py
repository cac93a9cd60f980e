"""Mistakes mypy --strict must report: each line whose comment names an error code
("E: code") with that code, and nothing else in this file (tests/test_typing.py).
Never run."""

from ft_utils.concurrency import (
    AtomicInt64,
    AtomicReference,
    ConcurrentDict,
    ConcurrentGatheringIterator,
    ConcurrentQueue,
    StdConcurrentQueue,
)
from ft_utils.local import LocalWrapper

numbers: ConcurrentQueue[int] = ConcurrentQueue()
numbers.push("seven")  # E: arg-type
text: str = numbers.pop()  # E: assignment
numbers.pop(timeout="soon")  # E: arg-type
ConcurrentQueue(lock_free=0.5)  # E: arg-type

ages: ConcurrentDict[str, int] = ConcurrentDict()
ages[1] = 2  # E: index
name: str = ages.get("x", 0)  # E: assignment

counter = AtomicInt64()
counter /= 2  # E: arg-type
counter.incr(1)  # E: call-arg

ref: AtomicReference[str] = AtomicReference("a")
ref.set(1)  # E: arg-type

gathered: ConcurrentGatheringIterator[bytes] = ConcurrentGatheringIterator()
for item in gathered.iterator(3):
    item.upper() + "x"  # E: operator

mailbox: StdConcurrentQueue[int] = StdConcurrentQueue()
mailbox.put(1, timeout="soon")  # E: arg-type
ages.scaling = 8  # E: misc

wrapper = LocalWrapper(1)
wrapper.wrapped = 2  # E: misc
