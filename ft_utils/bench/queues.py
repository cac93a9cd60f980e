"""Workloads for the queues: handing items from producer threads to consumer threads.

Throughput, in items moved per second: half the threads produce (each pushes ``ops``
items), half consume (each takes ``ops`` items); one thread pushes then pops. Every run
checks that the consumers received exactly the items sent (count and checksum).
Baselines: queue.Queue and queue.SimpleQueue (the fastest stdlib queue).

Also measured, each queue against queue.Queue:
* wake-up latency: a consumer blocked in get/pop while items arrive 120 ms apart; the
  time from put to the consumer having the item, median of the samples;
* idle CPU: the CPU time a consumer uses while blocked for 1 s on an empty queue, in a
  thread of its own and in the main thread;
* gathering: items per second through a ConcurrentGatheringIterator with 2 inserting
  threads and one iterating thread.
"""

import queue
import statistics
import threading
import time

from ft_utils.bench.harness import Workload
from ft_utils.concurrency import ConcurrentGatheringIterator, ConcurrentQueue, StdConcurrentQueue

def _factories():
    return {
        "queue.Queue": (queue.Queue, "put", "get"),
        "queue.SimpleQueue": (queue.SimpleQueue, "put", "get"),
        "ConcurrentQueue": (ConcurrentQueue, "push", "pop"),
        "ConcurrentQueue lock_free": (lambda: ConcurrentQueue(lock_free=True), "push", "pop"),
        "StdConcurrentQueue": (StdConcurrentQueue, "put", "get"),
    }


def _throughput(name):
    factory, put_name, get_name = _factories()[name]

    def setup(threads, ops):
        return {"q": factory(), "sums": [0] * threads, "counts": [0] * threads}

    def worker(state, index, ops):
        q, threads = state["q"], len(state["sums"])
        put, get = getattr(q, put_name), getattr(q, get_name)
        producers = max(1, threads // 2)
        if threads == 1:
            for i in range(ops):
                put(i)
            total = 0
            for _ in range(ops):
                total += get()
            state["sums"][0], state["counts"][0] = total, ops
            return
        consumers = threads - producers
        if index < producers:
            base = index * ops
            for i in range(base, base + ops):
                put(i)
        else:
            share = producers * ops // consumers + (1 if index - producers < producers * ops % consumers else 0)
            total = 0
            for _ in range(share):
                total += get()
            state["sums"][index], state["counts"][index] = total, share

    def verify(state, threads, ops):
        producers = max(1, threads // 2)
        sent = producers * ops
        assert sum(state["counts"]) == sent, f"{name}: {sum(state['counts'])} items received of {sent}"
        assert sum(state["sums"]) == sent * (sent - 1) // 2, f"{name}: checksum mismatch"

    return setup, worker, verify


def _items_moved(threads, ops):
    return ops if threads == 1 else max(1, threads // 2) * ops


def _workload(name, baseline=()):
    setup, worker, verify = _throughput(name)
    return Workload(name, setup, worker, verify, baseline=baseline, unit="items", done=_items_moved)


WORKLOADS = [
    _workload("queue.Queue"),
    _workload("queue.SimpleQueue"),
    _workload("ConcurrentQueue", ("queue.SimpleQueue", "queue.Queue")),
    _workload("ConcurrentQueue lock_free", ("queue.SimpleQueue", "queue.Queue")),
    _workload("StdConcurrentQueue", ("queue.Queue", "queue.SimpleQueue")),
]


# ---- latency, idle CPU, gathering ------------------------------------------------------------


def wakeup_latency_ms(name, samples=15, gap=0.12):
    """Median ms from put to a blocked consumer holding the item, items gap s apart."""
    factory, put_name, get_name = _factories()[name]
    q = factory()
    put, get = getattr(q, put_name), getattr(q, get_name)
    latencies = []

    def consumer():
        for _ in range(samples):
            sent = get()
            latencies.append(time.perf_counter() - sent)

    thread = threading.Thread(target=consumer)
    thread.start()
    for _ in range(samples):
        time.sleep(gap)
        put(time.perf_counter())
    thread.join()
    return statistics.median(latencies) * 1e3


def idle_cpu_ms(name, seconds=1.0, main_thread=False):
    """CPU ms used by a consumer blocked on an empty queue for `seconds`, in a thread of
    its own or in the main thread (which wakes now and then to look for signals)."""
    factory, _, get_name = _factories()[name]
    q = factory()
    get = getattr(q, get_name)
    used = []

    def consumer():
        start = time.thread_time()
        try:
            get(timeout=seconds)
        except queue.Empty:
            pass
        used.append(time.thread_time() - start)

    if main_thread:
        consumer()
    else:
        thread = threading.Thread(target=consumer)
        thread.start()
        thread.join()
    return used[0] * 1e3


def gathering_items_per_s(items=400_000, inserters=2):
    g = ConcurrentGatheringIterator()
    barrier = threading.Barrier(inserters + 1)

    def insert(index):
        barrier.wait()
        for key in range(index, items, inserters):
            g.insert(key, key)

    threads = [threading.Thread(target=insert, args=(i,)) for i in range(inserters)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    total = 0
    for value in g.iterator(items - 1):
        total += value
    elapsed = time.perf_counter() - start
    for t in threads:
        t.join()
    assert total == items * (items - 1) // 2, "gathering: checksum mismatch"
    return items / elapsed


def run_extras(repeats, report):
    """Latency, idle CPU and gathering figures, medians over `repeats`."""
    names = list(_factories())
    report("")
    report(f"queues: {'wake-up latency (items 120 ms apart)':<40} {'median ms':>10}   vs queue.Queue")
    latency = {n: statistics.median(wakeup_latency_ms(n) for _ in range(repeats)) for n in names}
    for n in names:
        report(f"        {n:<40} {latency[n]:>10.3f}   {latency[n] / latency['queue.Queue']:.2f}x")
    report("")
    report(f"queues: {'CPU of a consumer blocked 1 s, median ms':<40} {'thread':>10} {'main':>10}")
    for n in names:
        cpu = statistics.median(idle_cpu_ms(n) for _ in range(repeats))
        main = statistics.median(idle_cpu_ms(n, main_thread=True) for _ in range(repeats))
        report(f"        {n:<40} {cpu:>10.3f} {main:>10.3f}")
    report("")
    rates = [gathering_items_per_s() for _ in range(repeats)]
    report(f"gathering: ConcurrentGatheringIterator, 2 inserting threads: {statistics.median(rates) / 1e6:.2f} M items/s "
           f"(min-max {min(rates) / 1e6:.2f}-{max(rates) / 1e6:.2f})")
