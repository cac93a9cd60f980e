"""Typical user code: `mypy --strict` must accept it and it must run, on every backend
(tests/test_typing.py). It runs on Python 3.9 too, so annotations that are evaluated
(module level, signatures) use typing.Optional rather than `X | None`."""

import threading
from typing import Dict, List, Optional, Tuple

import ft_utils
from ft_utils.concurrency import (
    AtomicFlag,
    AtomicInt64,
    AtomicReference,
    ConcurrentDict,
    ConcurrentGatheringIterator,
    ConcurrentQueue,
    Empty,
    Full,
    ShutDown,
    StdConcurrentQueue,
)
from ft_utils.local import LocalWrapper

# Evaluated at import: every generic class must be subscriptable at run time.
jobs: ConcurrentQueue[int] = ConcurrentQueue()
squares: ConcurrentDict[str, int] = ConcurrentDict(scaling=4)
latest: AtomicReference[Optional[str]] = AtomicReference(None)
gatherer: ConcurrentGatheringIterator[str] = ConcurrentGatheringIterator()
mailbox: StdConcurrentQueue[Tuple[int, str]] = StdConcurrentQueue(maxsize=1)
shared_list: LocalWrapper[List[int]] = LocalWrapper([1, 2, 3])
processed = AtomicInt64()
stopping = AtomicFlag()


def worker() -> None:
    while True:
        try:
            job = jobs.pop(timeout=30.0)
        except ShutDown:
            return
        processed.incr()
        squares[f"job{job}"] = job * job
        gatherer.insert(job, str(job))
        latest.set(f"job{job}")


def use_queue_dict_and_gatherer() -> None:
    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for job in range(10):
        jobs.push(job)
    in_order: List[str] = []
    for value in gatherer.iterator(9):
        in_order.append(value.upper())
    jobs.shutdown()
    for thread in threads:
        thread.join()
    assert in_order == [str(i) for i in range(10)]
    assert processed.get() == 10 and len(squares) == 10 and jobs.empty() and jobs.size() == 0

    nine: Optional[int] = squares.get("job3")
    missing: int = squares.get("nope", -1)
    assert nine == 9 and missing == -1 and "job3" in squares
    zero: int = squares.pop("job0")
    assert zero == 0 and squares.pop("job0", None) is None
    stored = squares.setdefault("extra", 1000)
    assert squares.compare_and_set("extra", stored, stored + 1)
    assert squares.compare_and_delete("extra", squares["extra"])
    squares.update({"a": 1}, b=2)
    squares.update([("c", 3)])
    snapshot: Dict[str, int] = squares.as_dict()
    keys: List[str] = [key.upper() for key in squares]
    total = sum(value for _, value in squares.items())
    assert len(keys) == len(snapshot) == 12 and total == sum(snapshot.values())
    del squares["a"]
    copy: ConcurrentDict[str, int] = squares.copy()
    assert copy == squares and squares.scaling == 4
    last = latest.get()
    assert last is not None and last.startswith("job")
    assert latest.compare_exchange(last, None) and latest.exchange("done") is None

    try:
        jobs.pop(timeout=0.01)
    except ShutDown:
        pass
    small: ConcurrentQueue[int] = ConcurrentQueue(lock_free=True)
    small.push(42)
    local: LocalWrapper[int] = small.pop_local(timeout=1.0)
    assert local.wrapped == 42 and local + 1 == 43
    try:
        small.pop(timeout=0.01)
    except Empty:
        pass
    small.shutdown(immediate=True)


def use_std_queue() -> None:
    mailbox.put((1, "one"), timeout=1.0)
    try:
        mailbox.put((2, "two"), block=True, timeout=0.01)
    except Full:
        pass
    else:
        raise AssertionError("the queue holds 1 item at most")
    number, name = mailbox.get(timeout=1.0)
    assert (number, name.title()) == (1, "One")
    mailbox.task_done()
    try:
        mailbox.get(block=False)
    except Empty:
        pass
    mailbox.put_nowait((3, "three"))
    assert mailbox.full() and mailbox.qsize() == 1 and mailbox.get_nowait()[0] == 3
    mailbox.task_done()
    mailbox.join()
    mailbox.maxsize = 2
    assert mailbox.unfinished_tasks == 0 and mailbox.empty() and not mailbox.is_shutdown
    mailbox.shutdown()


def use_atomics() -> None:
    counter = AtomicInt64(10)
    counter += 5
    counter -= 1
    counter *= 2
    counter //= 3
    counter %= 100
    counter <<= 1
    counter >>= 1
    counter |= 1
    counter &= 0xFF
    counter ^= 0
    counter **= 1
    as_int: int = counter + 1
    reflected: int = 2 * counter
    ratio: float = counter / 4
    assert (as_int, reflected, ratio) == (10, 18, 2.25)
    assert counter == 9 and counter < 10 and counter >= 9 and int(counter) == 9 and -counter == -9
    assert counter.compare_exchange(9, 12) and counter.exchange(0) == 12 and not counter
    assert counter.add(3) == 3 and counter.decr() == 2 and counter.incr() == 3
    assert f"{counter:03d}" == "003" and round(counter) == 3 and divmod(counter, 2) == (1, 1)
    assert ["x", "y", "z", "w"][counter] == "w" and hex(counter) == "0x3"
    counter.set(7)
    stopping.set(True)
    assert stopping and bool(stopping)


def use_local_wrapper() -> None:
    shared_list.append(4)
    assert len(shared_list) == 4 and shared_list[0] == 1 and 3 in shared_list
    assert [n * 2 for n in shared_list] == [2, 4, 6, 8] and list(reversed(shared_list))[0] == 4
    number = LocalWrapper(6)
    assert -number == -6 and number + 1 == 7 and 1 + number == 7 and number * number == 36
    assert number ** 2 == 36 and number << 1 == 12 and number & 3 == 2 and divmod(number, 4) == (1, 2)
    assert number < 7 and int(number) == 6 and float(number) == 6.0 and number.bit_length() == 3
    number += 1
    assert number == 7
    lock = LocalWrapper(threading.Lock())
    with lock:
        assert lock.locked()
    assert bytes(LocalWrapper(b"ab")) == b"ab"


use_queue_dict_and_gatherer()
use_std_queue()
use_atomics()
use_local_wrapper()
print("ok", ft_utils.backend)
