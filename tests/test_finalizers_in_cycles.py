"""A value whose __del__ uses the queue or gatherer that holds it, when the cyclic garbage
collector collects the two together: the container must still work inside that __del__.

The collector finalizes every object of a dead cycle before it clears any, in no set
order. The cffi backend used to free the core queue from its handle's finalizer, so a
value finalized after it pushed into freed memory and the process hung (5 of 5 runs).
Each case runs in a child interpreter with a deadline, so that a hang or a crash is a
failure here, not a stuck test run.
"""

import os
import subprocess
import sys

import pytest

from conftest import BACKENDS

SCRIPT = r"""
import faulthandler, gc, os, sys, weakref
from ft_utils.concurrency import ConcurrentQueue, StdConcurrentQueue, ConcurrentGatheringIterator
faulthandler.dump_traceback_later(20, exit=True)
kind = os.environ["KIND"]
results = []


class Value:
    def __init__(self, container):
        self.container = container

    def __del__(self):
        junk = [bytearray(n) for n in range(1, 2000)]  # reuses memory just freed, if any
        c = self.container
        # (The container may still hold this very object: finalizers run before the
        # collector clears anything.)
        if kind == "gatherer":
            for k in range(1, 3000):
                c.insert(k, k)
            results.append(list(c.iterator(2999))[1:])
        else:
            put = c.push if kind == "queue" else c.put
            get = c.pop if kind == "queue" else c.get
            for n in range(3000):
                put(n)
            got = []
            try:
                while True:
                    got.append(get(timeout=0))
            except Exception:
                pass
            results.append([n for n in got if n is not self])


for round in range(20):
    container = {"queue": ConcurrentQueue, "std": StdConcurrentQueue, "gatherer": ConcurrentGatheringIterator}[kind]()
    if kind == "gatherer":
        container.insert(0, Value(container))
    else:
        (container.push if kind == "queue" else container.put)(Value(container))
    ref = weakref.ref(container)
    del container
    gc.collect()
    gc.collect()
    assert ref() is None, "the cycle was not collected"
expected = list(range(1, 3000)) if kind == "gatherer" else list(range(3000))
assert len(results) == 20 and all(r == expected for r in results), results[:3]
print("ok")
"""


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("kind", ["queue", "std", "gatherer"])
def test_a_value_finalized_with_its_container_can_still_use_it(backend_name, kind):
    env = dict(os.environ, FT_UTILS_BACKEND=backend_name, KIND=kind)
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "ok", (result.stdout + result.stderr)[-3000:]
