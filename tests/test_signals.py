"""Ctrl-C reaches a main thread blocked in a queue or gathering-iterator wait: the wait
ends with KeyboardInterrupt within half a second of the signal (in a subprocess, so the
signal cannot disturb the test run)."""

import os
import subprocess
import sys

import pytest

from conftest import BACKENDS

SCRIPT = r"""
import os, signal, threading, time
from ft_utils.concurrency import ConcurrentQueue, StdConcurrentQueue, ConcurrentGatheringIterator
blocking = {
    "ConcurrentQueue.pop": lambda: ConcurrentQueue().pop(),
    "ConcurrentQueue(lock_free).pop": lambda: ConcurrentQueue(lock_free=True).pop(),
    "ConcurrentQueue.pop(timeout)": lambda: ConcurrentQueue().pop(timeout=60),
    "StdConcurrentQueue.get": lambda: StdConcurrentQueue().get(),
    "StdConcurrentQueue.put": lambda: (lambda q: (q.put(1), q.put(2)))(StdConcurrentQueue(1)),
    "StdConcurrentQueue.join": lambda: (lambda q: (q.put(1), q.join()))(StdConcurrentQueue()),
    "ConcurrentGatheringIterator": lambda: list(ConcurrentGatheringIterator().iterator(3)),
}[os.environ["WHAT"]]
sent = []
def interrupt():
    sent.append(time.monotonic())
    os.kill(os.getpid(), signal.SIGINT)
threading.Timer(0.3, interrupt).start()
try:
    blocking()
except KeyboardInterrupt:
    print("interrupted after %.3f" % (time.monotonic() - sent[0]))
else:
    print("returned")
"""

WHATS = [
    "ConcurrentQueue.pop",
    "ConcurrentQueue(lock_free).pop",
    "ConcurrentQueue.pop(timeout)",
    "StdConcurrentQueue.get",
    "StdConcurrentQueue.put",
    "StdConcurrentQueue.join",
    "ConcurrentGatheringIterator",
]


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("what", WHATS)
def test_ctrl_c_interrupts_a_blocked_wait(backend_name, what):
    env = dict(os.environ, FT_UTILS_BACKEND=backend_name, WHAT=what)
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    words = result.stdout.split()
    assert words[:2] == ["interrupted", "after"], result.stdout + result.stderr
    assert float(words[2]) < 0.5, f"KeyboardInterrupt came {words[2]} s after the signal"
