"""What the queue tests share: every kind of queue of a backend, and a push and a pop
that work on each."""


def queues(backend):
    """A ConcurrentQueue (locked and lock-free) and a StdConcurrentQueue (unbounded and
    bounded)."""
    return [backend.ConcurrentQueue(), backend.ConcurrentQueue(lock_free=True), backend.StdConcurrentQueue(),
            backend.StdConcurrentQueue(1000)]


def put(q, value):
    (q.push if hasattr(q, "push") else q.put)(value)


def get(q):
    """The head value, without waiting (queue.Empty if there is none)."""
    return (q.pop if hasattr(q, "pop") else q.get)(timeout=0)


class Box:
    """A value that weak references can follow."""

    def __init__(self, n):
        self.n = n
