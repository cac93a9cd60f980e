"""Workloads for the queues: handing items from producer threads to consumer threads.

Throughput, in items moved per second: half the threads produce (each pushes ``ops``
items), half consume (each takes ``ops`` items); one thread pushes then pops. Every run
checks that the consumers received exactly the items sent (count and checksum).
Baselines: queue.Queue and queue.SimpleQueue (the fastest stdlib queue); ours run on
each backend measured.

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

UNIT = "items"
DESCRIPTION = "half the threads produce, half consume (one thread: put then get); items moved"
GROUP = "producers/consumers"
STDLIB = {"queue.Queue": (queue.Queue, "put", "get"), "queue.SimpleQueue": (queue.SimpleQueue, "put", "get")}


def _ours(module):
    """name -> (factory, put method, get method, baselines) of ours on one backend."""
    return {
        "ConcurrentQueue": (module.ConcurrentQueue, "push", "pop", ("queue.SimpleQueue", "queue.Queue")),
        "ConcurrentQueue lock_free": (lambda: module.ConcurrentQueue(lock_free=True), "push", "pop",
                                      ("queue.SimpleQueue", "queue.Queue")),
        "StdConcurrentQueue": (module.StdConcurrentQueue, "put", "get", ("queue.Queue", "queue.SimpleQueue")),
    }


def _throughput(name, factory, put_name, get_name):

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


def _workload(name, factory, put_name, get_name, baseline=(), backend=None):
    setup, worker, verify = _throughput(name, factory, put_name, get_name)
    return Workload(name, setup, worker, verify, baseline=baseline, unit=UNIT, done=_items_moved, group=GROUP,
                    backend=backend)


def workloads(backends, peers):
    """The variants: the stdlib baselines, then ours on each backend in ``backends``
    (name -> module). No peer has queues."""
    result = [_workload(name, *spec) for name, spec in STDLIB.items()]
    for backend, module in backends.items():
        result += [_workload(name, factory, put, get, baselines, backend)
                   for name, (factory, put, get, baselines) in _ours(module).items()]
    return result


# ---- latency, idle CPU, gathering ------------------------------------------------------------


def _queues(backends):
    """label -> (factory, put method, get method) of every queue measured: the stdlib's,
    then ours on each backend."""
    specs = dict(STDLIB)
    for backend, module in backends.items():
        specs.update({f"{name} [{backend}]": spec[:3] for name, spec in _ours(module).items()})
    return specs


def wakeup_latency_ms(spec, samples=15, gap=0.12):
    """Median ms from put to a blocked consumer holding the item, items gap s apart."""
    factory, put_name, get_name = spec
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


def idle_cpu_ms(spec, seconds=1.0, main_thread=False):
    """CPU ms used by a consumer blocked on an empty queue for `seconds`, in a thread of
    its own or in the main thread (which wakes now and then to look for signals)."""
    factory, _, get_name = spec
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


def gathering_items_per_s(module, items=400_000, inserters=2):
    g = module.ConcurrentGatheringIterator()
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


#: Sizes of the extras: full, and --quick.
EXTRAS_SIZES = {
    "full": {"latency_samples": 15, "latency_gap_s": 0.12, "idle_s": 1.0, "gather_items": 400_000},
    "quick": {"latency_samples": 5, "latency_gap_s": 0.02, "idle_s": 0.1, "gather_items": 40_000},
}


def run_extras(backends, repeats, report, size="full", progress=None):
    """Latency, idle CPU and gathering figures, medians over `repeats`; prints them with
    ``report`` and returns them (for the JSON)."""
    sizes = EXTRAS_SIZES[size]
    specs = _queues(backends)
    width = max(40, *(len(n) for n in specs))
    samples, gap, idle = sizes["latency_samples"], sizes["latency_gap_s"], sizes["idle_s"]
    result = {"sizes": sizes, "latency_ms": {}, "idle_cpu_ms": {}, "gathering_items_per_s": {}}
    if progress:
        progress(f"wake-up latency, about {len(specs) * repeats * samples * gap:.0f} s")
    for n, spec in specs.items():
        result["latency_ms"][n] = [wakeup_latency_ms(spec, samples, gap) for _ in range(repeats)]
    if progress:
        progress(f"idle CPU, about {len(specs) * repeats * 2 * idle:.0f} s")
    for n, spec in specs.items():
        result["idle_cpu_ms"][n] = {"thread": [idle_cpu_ms(spec, idle) for _ in range(repeats)],
                                    "main": [idle_cpu_ms(spec, idle, main_thread=True) for _ in range(repeats)]}
    if progress:
        progress("gathering")
    for backend, module in backends.items():
        result["gathering_items_per_s"][backend] = [gathering_items_per_s(module, sizes["gather_items"])
                                                    for _ in range(repeats)]

    latency = {n: statistics.median(v) for n, v in result["latency_ms"].items()}
    report("")
    report(f"queues: {f'wake-up latency (items {gap * 1e3:.0f} ms apart)':<{width}} {'median ms':>10}   vs queue.Queue")
    for n in specs:
        report(f"        {n:<{width}} {latency[n]:>10.3f}   {latency[n] / latency['queue.Queue']:.2f}x")
    report("")
    report(f"queues: {f'CPU of a consumer blocked {idle:g} s, median ms':<{width}} {'thread':>10} {'main':>10}")
    for n, cpu in result["idle_cpu_ms"].items():
        report(f"        {n:<{width}} {statistics.median(cpu['thread']):>10.3f} {statistics.median(cpu['main']):>10.3f}")
    report("")
    for backend, rates in result["gathering_items_per_s"].items():
        report(f"gathering: ConcurrentGatheringIterator [{backend}], 2 inserting threads: "
               f"{statistics.median(rates) / 1e6:.2f} M items/s (min-max {min(rates) / 1e6:.2f}-{max(rates) / 1e6:.2f})")
    return result
