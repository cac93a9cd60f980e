"""Ctrl-C reaches a main thread blocked in a queue or gathering-iterator wait: the wait
ends with KeyboardInterrupt within half a second of the signal (in a subprocess, so the
signal cannot disturb the test run)."""

import os
import select
import signal
import subprocess
import sys
import time

import pytest

from conftest import BACKENDS

SCRIPT = r"""
import os, signal, sys
# Ctrl-C raises KeyboardInterrupt, as in a terminal, even if this test runs in a background
# job of a shell (which starts its children with SIGINT ignored, and Python then leaves it so).
signal.signal(signal.SIGINT, signal.default_int_handler)
from ft_utils.concurrency import ConcurrentQueue, StdConcurrentQueue, ConcurrentGatheringIterator
blocking = {
    "ConcurrentQueue.pop": lambda: ConcurrentQueue().pop(),
    "ConcurrentQueue(lock_free).pop": lambda: ConcurrentQueue(lock_free=True).pop(),
    "ConcurrentQueue.pop(timeout)": lambda: ConcurrentQueue().pop(timeout=60),
    "StdConcurrentQueue.get": lambda: StdConcurrentQueue().get(),
    "StdConcurrentQueue.put": lambda: (lambda q: (q.put(1), q.put(2)))(StdConcurrentQueue(1)),
    "StdConcurrentQueue.join": lambda: (lambda q: (q.put(1), q.join()))(StdConcurrentQueue()),
    "ConcurrentGatheringIterator": lambda: list(ConcurrentGatheringIterator().iterator(3)),
    "ConcurrentQueue.pop_local": lambda: ConcurrentQueue().pop_local(),
    "ConcurrentGatheringIterator.iterator_local": lambda: list(ConcurrentGatheringIterator().iterator_local(3)),
}[os.environ["WHAT"]]
print("ready", flush=True)
try:
    blocking()
except KeyboardInterrupt:
    print("interrupted", flush=True)
else:
    print("returned", flush=True)
"""

WHATS = [
    "ConcurrentQueue.pop",
    "ConcurrentQueue(lock_free).pop",
    "ConcurrentQueue.pop(timeout)",
    "StdConcurrentQueue.get",
    "StdConcurrentQueue.put",
    "StdConcurrentQueue.join",
    "ConcurrentGatheringIterator",
    "ConcurrentQueue.pop_local",
    "ConcurrentGatheringIterator.iterator_local",
]


def read_line(process, seconds):
    """The child's next line of output, or None if none comes within `seconds`."""
    ready, _, _ = select.select([process.stdout], [], [], seconds)
    return process.stdout.readline().strip() if ready else None


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("what", WHATS)
def test_ctrl_c_interrupts_a_blocked_wait(backend_name, what):
    # The signal comes from outside the process, as a Ctrl-C from the terminal does.
    env = dict(os.environ, FT_UTILS_BACKEND=backend_name, WHAT=what)
    process = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)
    try:
        assert read_line(process, 60) == "ready", process.stderr.read() if process.poll() is not None else ""
        time.sleep(0.3)  # well into the wait
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        line = read_line(process, 30)
        elapsed = time.monotonic() - sent
        assert line == "interrupted", f"the child printed {line!r}"
        assert elapsed < 0.5, f"KeyboardInterrupt came {elapsed:.3f} s after the signal"
        assert process.wait(timeout=30) == 0, process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()


# A signal can arrive while a wait is still on its way to sleep: spinning (lock_free),
# yielding, taking a lock. It then interrupts no system call, and the wait must still
# notice it soon (the main thread sleeps in slices), not at the next item or never.
RACE_SCRIPT = r"""
import gc, os, random, signal, time
from ft_utils.concurrency import ConcurrentQueue, StdConcurrentQueue
# Without the cyclic collector: on CPython the cffi backend has a gc callback, and the
# exception of a signal handler that runs inside it is reported and dropped by the
# interpreter (see docs/guarantees.md, "On PyPy and on interpreters with a GIL"). That
# is not what this test is about: the waits' own slicing is.
gc.disable()
make = {
    "ConcurrentQueue.pop": lambda: ConcurrentQueue().pop,
    "ConcurrentQueue(lock_free).pop": lambda: ConcurrentQueue(lock_free=True).pop,
    "StdConcurrentQueue.get": lambda: StdConcurrentQueue().get,
}[os.environ["WHAT"]]

class Interrupted(Exception):
    pass

armed = [False]
def handler(signum, frame):
    if armed[0]:
        armed[0] = False
        raise Interrupted

# A timer signal, so that no other Python thread is running when it arrives (PyPy may
# leave a signal that a non-main thread noticed first for the next thread switch).
signal.signal(signal.SIGALRM, handler)
random.seed(int(os.environ["SEED"]))
missed, delays = 0, []
for _ in range(int(os.environ["ROUNDS"])):
    wait = make()
    delay = random.uniform(0.00002, 0.0004)  # lands in the spin or the yields of many rounds
    armed[0] = True
    fires_at = time.monotonic() + delay
    try:
        signal.setitimer(signal.ITIMER_REAL, delay)
        wait(timeout=2)
    except Interrupted:
        delays.append(time.monotonic() - fires_at)
    except Exception:  # the wait timed out: the signal was not seen in it
        armed[0] = False
        missed += 1
        break
    armed[0] = False
print(missed, max(delays, default=0.0))
"""

RACE_WHATS = ["ConcurrentQueue.pop", "ConcurrentQueue(lock_free).pop", "StdConcurrentQueue.get"]


def race(backend_name, what, script):
    """Runs RACE_SCRIPT (through `script`) and checks that no signal was lost or late."""
    env = dict(os.environ, FT_UTILS_BACKEND=backend_name, WHAT=what, ROUNDS="60", SEED="7", RACE_SCRIPT=RACE_SCRIPT)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    missed, longest = result.stdout.split()
    assert int(missed) == 0, "a signal went unseen until the wait timed out 2 s later"
    assert float(longest) < 0.5, f"a handler ran {longest} s after its signal"


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("what", RACE_WHATS)
def test_a_signal_just_before_the_wait_sleeps_is_not_lost(backend_name, what):
    race(backend_name, what, RACE_SCRIPT)


# In a child forked from another thread, that thread is the main thread: its waits must
# be sliced too (the native backend learns the new main thread from os.register_at_fork).
FORK_SCRIPT = r"""
import os, sys, threading, warnings
warnings.simplefilter("ignore")  # fork() in a process with threads
import ft_utils.concurrency  # before the fork, so the child inherits what it learned at import

def forker():
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            exec(os.environ["RACE_SCRIPT"], {})
            code = 0
        finally:
            sys.stdout.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    exit_codes.append(os.waitstatus_to_exitcode(status))

exit_codes = []
thread = threading.Thread(target=forker)
thread.start()
thread.join()
sys.exit(exit_codes[0])
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("backend_name", BACKENDS)
def test_signals_reach_the_new_main_thread_of_a_forked_child(backend_name):
    race(backend_name, "ConcurrentQueue(lock_free).pop", FORK_SCRIPT)
