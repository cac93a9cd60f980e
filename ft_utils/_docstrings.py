"""The docstrings and signatures of the public API: one source for both backends.

The cffi classes take their ``__doc__`` from here at import time; ``setup.py`` turns
this table into ``ftu_docstrings.h`` for the native extension, with the signature in
CPython's ``__text_signature__`` form. The parity test checks both backends against it.

Keys are ``"Class"`` (the signature is the constructor's) and ``"Class.method"``; a
property has an empty signature.
"""

DOCSTRINGS: dict[str, tuple[str, str]] = {
    # ---- AtomicInt64 ------------------------------------------------------------------
    "AtomicInt64": (
        "(value=0)",
        "A signed 64-bit integer that threads can read and update atomically.\n\n"
        "Every method and in-place operator is one atomic step. A value or result\n"
        "outside [-2**63, 2**63 - 1] raises OverflowError and leaves the stored value\n"
        "unchanged. Other operators read the value once and then give exactly what\n"
        "that int gives, with any operand (ints, floats, Fractions, Decimals, ...).",
    ),
    "AtomicInt64.get": ("(self, /)", "Return the current value."),
    "AtomicInt64.set": ("(self, value, /)", "Store value (an integer in the int64 range)."),
    "AtomicInt64.incr": ("(self, /)", "Add 1 atomically and return the new value."),
    "AtomicInt64.decr": ("(self, /)", "Subtract 1 atomically and return the new value."),
    "AtomicInt64.add": ("(self, value, /)", "Add value atomically and return the new value."),
    "AtomicInt64.exchange": ("(self, value, /)", "Store value atomically and return the previous value."),
    "AtomicInt64.compare_exchange": (
        "(self, expected, value, /)",
        "If the current value equals expected, replace it with value.\n\n"
        "Atomic. Return True if the value was replaced, False otherwise.",
    ),
    "AtomicInt64.numerator": ("", "The value (as int.numerator): an AtomicInt64 is a numbers.Integral."),
    "AtomicInt64.denominator": ("", "1 (as int.denominator)."),
    "AtomicInt64.real": ("", "The value (as int.real)."),
    "AtomicInt64.imag": ("", "0 (as int.imag)."),
    "AtomicInt64.conjugate": ("(self, /)", "Return the value (as int.conjugate())."),
    # ---- AtomicReference --------------------------------------------------------------
    "AtomicReference": (
        "(obj=None)",
        "A reference to an object that threads can read and replace atomically.",
    ),
    "AtomicReference.get": ("(self, /)", "Return the current object."),
    "AtomicReference.set": ("(self, obj, /)", "Replace the current object with obj."),
    "AtomicReference.exchange": (
        "(self, obj, /)",
        "Replace the current object with obj atomically and return the previous one.",
    ),
    "AtomicReference.compare_exchange": (
        "(self, expected, obj, /)",
        "If the current object is expected (identity, not ==), replace it with obj.\n\n"
        "Atomic. Return True if the object was replaced, False otherwise.",
    ),
    # ---- AtomicFlag -------------------------------------------------------------------
    "AtomicFlag": (
        "(value=False)",
        "A boolean flag that threads can read and set atomically.\n\n"
        "bool(flag) reads it; set(value) stores the truth value of value.",
    ),
    "AtomicFlag.set": ("(self, value, /)", "Store the truth value of value."),
    # ---- ConcurrentDict ---------------------------------------------------------------
    "ConcurrentDict": (
        "(scaling=17, dictionary=None)",
        "A dict that many threads can read and write at once.\n\n"
        "A concurrent hash table in C: reads take no lock, and a write locks a small\n"
        "stripe of the table only for the instant of the change, so threads working on\n"
        "different keys rarely wait for each other. `scaling` is a sizing hint: about\n"
        "how many threads will write at once. `dictionary` (a mapping, a ConcurrentDict\n"
        "or an iterable of pairs) gives the initial contents. Single operations,\n"
        "setdefault, pop, compare_and_set and compare_and_delete are atomic. Iteration is\n"
        "weakly consistent: it never fails because other threads write, and sees every\n"
        "key present throughout exactly once.",
    ),
    "ConcurrentDict.scaling": ("", "The sizing hint given to the constructor (threads expected to write at once)."),
    "ConcurrentDict.get": (
        "(self, key, default=None, /)",
        "Return the value for key if key is present, else default.",
    ),
    "ConcurrentDict.pop": (
        "(self, key, /, *default)",
        "Remove key and return its value; if key is absent, return default if given,\n"
        "else raise KeyError.\n\n"
        "Atomic: when threads pop the same key, exactly one of them gets the value.",
    ),
    "ConcurrentDict.popitem": (
        "(self, /)",
        "Remove some (key, value) pair and return it; raise KeyError if the dict is empty.\n\n"
        "Atomic: when threads pop items at once, each pair goes to exactly one of them.\n"
        "Which pair is not specified (there is no insertion order: not the last one added).",
    ),
    "ConcurrentDict.fromkeys": (
        "(cls, iterable, value=None, /)",
        "Create a new dict (of this class) with keys from iterable, each mapped to value.",
    ),
    "ConcurrentDict.setdefault": (
        "(self, key, default=None, /)",
        "Return the value for key; if key is absent, insert default first and return it.\n\n"
        "Atomic: when threads race to insert the same key, one value wins and every\n"
        "caller gets that value.",
    ),
    "ConcurrentDict.compare_and_set": (
        "(self, key, expected, value, /)",
        "If key is present and its value is expected (identity, not ==), store value.\n\n"
        "Atomic. Return True if value was stored, False otherwise (also when key is\n"
        "absent). A retry loop on it updates a key without losing concurrent updates.",
    ),
    "ConcurrentDict.compare_and_delete": (
        "(self, key, expected, /)",
        "If key is present and its value is expected (identity, not ==), remove key.\n\n"
        "Atomic. Return True if key was removed, False otherwise.",
    ),
    "ConcurrentDict.update": (
        "(self, other=(), /, **kwargs)",
        "Store the pairs of other (a mapping or an iterable of key, value pairs) and of\n"
        "kwargs, as dict.update does. Each pair is stored atomically, not the whole update.\n"
        "As in a dict subclass, the pairs do not go through an overriding __setitem__.",
    ),
    "ConcurrentDict.clear": ("(self, /)", "Remove every key (one entry at a time: not atomic as a whole)."),
    "ConcurrentDict.copy": ("(self, /)", "Return a new ConcurrentDict with the same pairs and scaling."),
    "ConcurrentDict.as_dict": (
        "(self, /)",
        "Return a built-in dict with the pairs of this one.\n\n"
        "Safe while other threads write; the table is walked a few entries at a time, so\n"
        "keys present throughout are exact and others may or may not be there.",
    ),
    "ConcurrentDict.keys": ("(self, /)", "Return a list of the keys (a snapshot, like as_dict())."),
    "ConcurrentDict.values": ("(self, /)", "Return a list of the values (a snapshot, like as_dict())."),
    "ConcurrentDict.items": (
        "(self, /)",
        "Return a list of the (key, value) pairs (a snapshot, like as_dict()).",
    ),
    # ---- LocalWrapper -----------------------------------------------------------------
    "LocalWrapper": (
        "(wrapped)",
        "A proxy that forwards every operation to the object it wraps.\n\n"
        "Attribute access, comparisons, str, repr, arithmetic and every protocol of the\n"
        "wrapped object's type (calls, items, iteration, len, bool, hash, conversions,\n"
        "with, ...) act on the wrapped object; protocols its type lacks, the wrapper\n"
        "lacks too. In-place operators return a wrapper around the result. A thread that\n"
        "keeps a wrapper around a shared object works on the wrapper's reference count\n"
        "instead of contending for the shared object's.",
    ),
    "LocalWrapper.wrapped": ("", "The wrapped object (read-only)."),
    # ---- ConcurrentQueue --------------------------------------------------------------
    "ConcurrentQueue": (
        "(scaling=None, lock_free=False)",
        "An unbounded first-in first-out queue for many producer and consumer threads.\n\n"
        "A consumer that finds it empty sleeps until an item arrives (lock_free=True:\n"
        "spins briefly first, for lower latency on busy queues). A pop that times out\n"
        "or is interrupted takes nothing. scaling is accepted for compatibility and\n"
        "checked (None or an int >= 1); the queue needs no tuning. lock_free is fixed\n"
        "when the queue is created (by __new__). Not copied or pickled (TypeError).",
    ),
    "ConcurrentQueue.push": (
        "(self, value, /)",
        "Add value at the end. Raises ShutDown after shutdown().",
    ),
    "ConcurrentQueue.pop": (
        "(self, /, timeout=None)",
        "Remove and return the first value, waiting for one if the queue is empty.\n\n"
        "timeout: None waits for ever; a number of seconds raises Empty when it passes.\n"
        "Raises ShutDown once the queue is shut down and empty (at once after\n"
        "shutdown(immediate=True)).",
    ),
    "ConcurrentQueue.pop_local": (
        "(self, /, timeout=None)",
        "As pop(), but return the value wrapped in a LocalWrapper.",
    ),
    "ConcurrentQueue.shutdown": (
        "(self, /, immediate=False)",
        "Shut the queue down: push raises ShutDown from now on; pop returns what is left,\n"
        "then raises ShutDown. With immediate=True, pop raises ShutDown at once and the\n"
        "values left are released. Wakes every waiting thread.",
    ),
    "ConcurrentQueue.size": ("(self, /)", "Return the number of values in the queue."),
    "ConcurrentQueue.empty": ("(self, /)", "Return True if the queue holds no value."),
    # ---- StdConcurrentQueue -----------------------------------------------------------
    "StdConcurrentQueue": (
        "(maxsize=0)",
        "A drop-in replacement for queue.Queue that scales with threads.\n\n"
        "Same methods, arguments, exceptions and shutdown behaviour as queue.Queue\n"
        "(Python 3.13); FIFO order and maxsize are exact. maxsize <= 0: unbounded.\n"
        "Not copied or pickled (TypeError), as queue.SimpleQueue.",
    ),
    "StdConcurrentQueue.put": (
        "(self, /, item, block=True, timeout=None)",
        "Put item into the queue, waiting for a free place if it is full (block=True),\n"
        "at most timeout seconds (then raise Full). block=False raises Full at once.\n"
        "As in queue.Queue, block and timeout are looked at only if the queue is\n"
        "bounded. Raises ShutDown if the queue is shut down.",
    ),
    "StdConcurrentQueue.get": (
        "(self, /, block=True, timeout=None)",
        "Remove and return an item, waiting for one if the queue is empty (block=True),\n"
        "at most timeout seconds (then raise Empty). block=False raises Empty at once.\n"
        "Raises ShutDown if the queue is shut down and empty, or shut down immediately.",
    ),
    "StdConcurrentQueue.put_nowait": ("(self, /, item)", "put(item, block=False)."),
    "StdConcurrentQueue.get_nowait": ("(self, /)", "get(block=False)."),
    "StdConcurrentQueue.qsize": ("(self, /)", "Return the number of items in the queue."),
    "StdConcurrentQueue.empty": ("(self, /)", "Return True if the queue is empty."),
    "StdConcurrentQueue.full": ("(self, /)", "Return True if the queue holds maxsize items (never if unbounded)."),
    "StdConcurrentQueue.task_done": (
        "(self, /)",
        "Tell the queue that a task taken with get() is complete.\n\n"
        "Raises ValueError if called more times than items were put.",
    ),
    "StdConcurrentQueue.join": (
        "(self, /)",
        "Wait until every item put has been taken and marked done with task_done().",
    ),
    "StdConcurrentQueue.shutdown": (
        "(self, /, immediate=False)",
        "Shut the queue down, as queue.Queue.shutdown does: put raises ShutDown; get\n"
        "returns what is left, then raises ShutDown. immediate=True also empties the\n"
        "queue (ending the tasks of the removed items) so get raises at once.",
    ),
    "StdConcurrentQueue.maxsize": (
        "",
        "The maxsize given, as given. A number; the queue holds at most maxsize items\n"
        "(<= 0: unbounded). Can be changed.",
    ),
    "StdConcurrentQueue.unfinished_tasks": ("", "The number of items put and not yet marked done."),
    "StdConcurrentQueue.is_shutdown": ("", "True once shutdown() has been called."),
    # ---- ConcurrentGatheringIterator --------------------------------------------------
    "ConcurrentGatheringIterator": (
        "(scaling=None)",
        "Gathers values that threads insert under keys 0, 1, 2, ... and yields them in\n"
        "key order, waiting for each next key to arrive.\n\n"
        "If an insert fails (bad or repeated key), iterators raise RuntimeError, since\n"
        "the values can then not all arrive. scaling is accepted and checked (None or an\n"
        "int >= 1); the structure needs no tuning.",
    ),
    "ConcurrentGatheringIterator.insert": (
        "(self, key, value, /)",
        "Insert value under key (an int >= 0, inserted once). Safe from any thread.",
    ),
    "ConcurrentGatheringIterator.iterator": (
        "(self, /, max_key, clear=True)",
        "Return an iterator over the values of keys 0 to max_key inclusive, in key\n"
        "order, waiting for each key to be inserted. clear=True removes each value as it\n"
        "is yielded.",
    ),
    "ConcurrentGatheringIterator.iterator_local": (
        "(self, /, max_key, clear=True)",
        "As iterator(), but yield each value wrapped in a LocalWrapper.",
    ),
}


def doc(key: str) -> str:
    """The docstring for key, as Python code shows it."""
    return DOCSTRINGS[key][1]


def c_docstring(key: str) -> str:
    """The docstring for key with CPython's text signature prefix, for C types."""
    signature, text = DOCSTRINGS[key]
    if not signature:  # a property: no signature
        return text
    name = key.rsplit(".", 1)[-1]
    if "." in key:
        signature = signature.replace("(self", "($self", 1).replace("(cls", "($cls", 1)
    return f"{name}{signature}\n--\n\n{text}"
