"""AtomicFlag on every backend: the spec's behaviour and many threads flipping it."""

import copy

import pytest

from threading_helpers import run_threads, writes_before_publishing_are_seen


def test_spec_example(backend, capsys):
    flag = backend.AtomicFlag(True)
    print(flag)
    flag.set(False)
    print(flag)
    assert capsys.readouterr().out == "True\nFalse\n"


def test_truth_values(backend):
    assert bool(backend.AtomicFlag(True)) is True
    assert bool(backend.AtomicFlag(False)) is False
    assert bool(backend.AtomicFlag()) is False
    f = backend.AtomicFlag(0)
    f.set([1])  # any object: its truth value is stored
    assert f
    f.set("")
    assert not f
    assert f.set(1) is None


def test_repr_str_copy(backend):
    f = backend.AtomicFlag(True)
    assert repr(f) == "AtomicFlag(True)" and str(f) == "True"
    g = copy.copy(f)
    g.set(False)
    assert f and not g


def test_truth_value_errors_propagate(backend):
    class Bad:
        def __bool__(self):
            raise RuntimeError("no truth")

    f = backend.AtomicFlag(True)
    with pytest.raises(RuntimeError, match="no truth"):
        f.set(Bad())
    assert f, "a failed set() leaves the flag unchanged"
    with pytest.raises(RuntimeError):
        backend.AtomicFlag(Bad())


@pytest.mark.stress
def test_threads_set_and_read(backend):
    """Many threads setting and reading: every read is a bool, and the final value is
    the one the last writer (after a barrier) stored."""
    f = backend.AtomicFlag(False)

    def work(index):
        for i in range(5000):
            f.set((i + index) % 2)
            assert bool(f) in (True, False)

    run_threads(8, work)
    f.set(True)
    assert f


@pytest.mark.stress
def test_threads_writes_before_set_are_seen_by_who_sees_the_flag(backend):
    """What a thread wrote before flag.set(True) is visible to a thread that then finds
    the flag true (one flag per message: the "done" marker pattern)."""
    flags = [backend.AtomicFlag(False) for _ in range(5000)]
    following = [0]

    def receive():
        i = following[0]
        if not flags[i]:
            return None
        following[0] = i + 1
        return i

    assert writes_before_publishing_are_seen(lambda i: flags[i].set(True), receive, count=len(flags)) == []
