"""Objects in a core queue, for the cffi queue classes.

cffi cannot keep a reference to a Python object in C memory, so each pushed object gets
a ticket (an int) that goes through the core queue, and the object waits in a dict under
its ticket until a pop hands the ticket back (see _blocking.py for why the steps are cut
the way they are). Single dict operations are atomic on the interpreters this backend
serves.

The common case, a push or a pop with nothing to wait for, makes one call into the core,
which keeps the GIL (see cffi_build.py):

- push: the object goes into the dict under a new ticket, then the ticket into the core
  queue (ftu_cffi_quick_queue_push, which never waits). Only if that fails (a bounded
  queue is full, or it is shut down) does the slow part (push_rest) run.
- pop: the ticket of the head must be an int before the take, so that nothing is
  allocated between the take and the hand-over (a MemoryError there would lose the
  value). The queue keeps a hint, the ticket believed to be at the head, whose int it
  already holds: ftu_cffi_quick_queue_take takes the head only if it is that ticket, and
  answers the ticket now at the head, the next hint. A push into a queue whose hint is
  spent (0) makes its own ticket the hint. A wrong hint costs one call that takes
  nothing; then the head is peeked (next_head), waiting if there is none, and tried.

A Python-level call costs about as much here as the call into the core, so the public
methods that make this common case are not thin wrappers around a shared function: each
is made from the one template below (PUSH, POP) with its own signature and its own way
of reading its arguments (method()).
"""

import linecache
from functools import partial
from itertools import compress

from ft_utils._exceptions import Empty, Full, ShutDown
from ft_utils.cffi_backend._api import ffi, give_record, lib, new_record, owned, take_record
from ft_utils.cffi_backend._blocking import (  # noqa: F401  (FOREVER, deadline: used by the templates)
    FOREVER, MISSING, MISSING_ARGS, NO_WAIT, TICKETS, call_blocking, deadline, wait)

# Bound once: a first access to an attribute of lib builds it, which can fail for want of
# memory, and these are used where a failure would strand or lose an object.
_peek = lib.ftu_cffi_quick_queue_peek
_take_if = lib.ftu_cffi_queue_take_if
_take = lib.ftu_cffi_quick_queue_take
_took = lib.ftu_cffi_quick_queue_took
_put_in = lib.ftu_cffi_quick_put_in
_drain = lib.ftu_cffi_queue_drain
_push_now = lib.ftu_cffi_quick_queue_push
_push = lib.ftu_cffi_queue_push
_wait_pop = lib.ftu_queue_wait_pop
_state = lib.ftu_queue_state
_OK = lib.FTU_OK
_TIMEOUT = lib.FTU_TIMEOUT
_SHUTDOWN = lib.FTU_SHUTDOWN
_OPEN = lib.FTU_QUEUE_OPEN
_SHUT_IMMEDIATE = lib.FTU_QUEUE_SHUT_IMMEDIATE

# A push. {prologue} may hand the call to another method (arguments that need more than
# the common case); {queue} is the ObjectQueue; {deadline} is evaluated only if the first
# try failed. The try covers every step from the dict's insertion to the end of the slow
# part: an exception anywhere in it (a signal handler's, between any two steps) leaves
# the object in the dict only if the call's record says its ticket went into the core,
# where a pop will look (see _api.py, "records": given back after the try only).
PUSH = '''
def {name}({parameters}):
    {prologue}
    queue = {queue}
    objects = queue.objects
    try:
        record = take_record()
    except IndexError:
        record = new_record()
    ticket = next(TICKETS)
    try:
        objects[ticket] = {value}
        status = _push_now(queue.queue, ticket, record)
        if status:  # not FTU_OK (0)
            return queue.push_rest(objects, ticket, status, {deadline}, record)
    except BaseException:
        queue.forget(objects, ticket, record)
        raise
    try:
        give_record(record)
    except MemoryError:
        pass
    if not queue.hint:  # the queue was empty, or its hint was spent
        queue.hint = ticket
'''

# A pop. {deadline} reads the arguments (and rejects bad ones) before anything is taken.
# Each round tries one ticket whose int is made: the take is one call, and what may fail
# after it is the making of the next head's int only. After such a MemoryError, or an
# exception a signal handler raised right after the call, the call's record says whether
# it took the ticket: if it did, the object is handed over after a MemoryError (only
# the hint was lost), and dropped (released, not kept alive out of sight) after another
# exception, as a result struck on its way back to the caller is lost. The arguments of
# the take are one tuple made before it: a call with *args allocates nothing, so the
# handler's call cannot fail for want of memory. The record is given back once the
# object has left the dict, after the try.
POP = '''
def {name}({parameters}):
    deadline_ns = {deadline}
    queue = {queue}
    objects = queue.objects
    expected = queue.hint
    try:
        record = take_record()
    except IndexError:
        record = new_record()
    while True:
        args = (queue.queue, expected, record)
        try:
            following = _take(*args)
            if following >= 0:
                queue.hint = following
                value = objects.pop(expected)
                break
        except MemoryError:
            if not _took(*args):
                raise
            value = objects.pop(expected, MISSING)
            if value is MISSING:
                raise
            queue.hint = 0
            return value
        except BaseException:
            if _took(*args):
                objects.pop(expected, None)
            raise
        expected = queue.next_head(deadline_ns)
    try:
        give_record(record)
    except MemoryError:
        pass
    return value
'''


def method(template, qualname, parameters, prologue="", queue="self._ftu_queue", value="value",
           deadline="FOREVER"):
    """The function that `template` makes with these parts, named `qualname`."""
    name = qualname.rpartition(".")[2]
    source = template.format(name=name, parameters=parameters, prologue=prologue or "pass", queue=queue,
                             value=value, deadline=deadline)
    filename = f"<ft_utils.cffi_backend {qualname}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)  # for tracebacks
    namespace = {}
    exec(compile(source, filename, "exec"), globals(), namespace)
    function = namespace[name]
    function.__qualname__ = qualname
    return function


class ObjectQueue:
    """The core queue of tickets, and the objects by ticket.

    hint: the ticket believed to be at the head of the queue (0: none known). Any thread
    may set it at any time: a wrong hint costs a pop the call that finds it wrong, never a
    value."""

    __slots__ = ("queue", "objects", "hint", "_queue_args")

    def __init__(self, capacity, flags):
        queue = lib.ftu_queue_new(capacity, flags)
        if queue == ffi.NULL:
            raise MemoryError("cannot allocate a queue")
        self.queue = owned(queue, lib.ftu_cffi_queue_free)
        self.objects = {}
        self.hint = 0
        self._queue_args = (self.queue,)

    # push(value, deadline_ns): waits until the deadline for room in a full bounded queue
    push = method(PUSH, "ObjectQueue.push", "self, value, deadline_ns", queue="self", deadline="deadline_ns")

    def push_rest(self, objects, ticket, status, deadline_ns, record):
        """After a first try that failed with status: waits for room until the deadline,
        or takes the object out of the dict and raises. Called inside PUSH's try (which
        keeps the record)."""
        if status == _TIMEOUT and deadline_ns != NO_WAIT:
            # partial, not a lambda: no closure cells (see take_prepared)
            status = call_blocking(partial(_push, self.queue, ticket, record), deadline_ns)
        if status == _OK:
            return
        del objects[ticket]
        if status == _TIMEOUT:
            raise Full
        if status == _SHUTDOWN:
            raise ShutDown
        raise MemoryError("cannot grow the queue")

    def forget(self, objects, ticket, record):
        """After an exception in a push: keep the object only if the push's record says
        its ticket went in."""
        if not _put_in(record, ticket):
            objects.pop(ticket, None)

    def next_head(self, deadline_ns):
        """The ticket at the head, not taken (a take may find it gone: call again), waiting
        for one until the deadline; Empty or ShutDown."""
        queue = self.queue
        timed_out = False
        while True:
            ticket = _peek(queue)  # 0: none, or shut down immediately
            if ticket:
                return ticket
            state = _state(queue)
            if state != _OPEN:
                if state != _SHUT_IMMEDIATE:
                    ticket = _peek(queue)  # shut: what was pushed before it is still there
                    if ticket:
                        return ticket
                raise ShutDown
            if timed_out or deadline_ns == NO_WAIT:
                raise Empty
            timed_out = wait(partial(_wait_pop, queue), deadline_ns) == _TIMEOUT

    def take_prepared(self, prepare):
        """The head object, made into prepare(it), or MISSING if there is none.

        Nothing is taken until everything that can fail is done: the head's ticket is
        peeked (making its int can fail), its object looked up and prepared (a
        LocalWrapper), then the ticket is taken if it is still the head (another consumer
        may have been first: look again) and the object leaves the dict in the same
        C-level step, which allocates nothing (see cffi_build.py). A failure, for want of
        memory or in a signal handler, so leaves the object in the queue.

        No closures in the methods on this path: on CPython 3.11 a call that cannot make
        its closure cells keeps its arguments (a leak)."""
        queue, objects, queue_args = self.queue, self.objects, self._queue_args
        while True:
            ticket = _peek(queue)
            if not ticket:
                return MISSING
            ticket_args = (ticket,)
            value = objects.get(ticket, MISSING)
            if value is MISSING:
                continue  # taken by another consumer meanwhile
            result = prepare(value)
            del value
            # compress, not filter with a functools.partial: PyPy's partial is Python code,
            # where a signal handler can run between the take and the dict's pop
            taken = next(map(objects.pop, compress(ticket_args, map(_take_if, queue_args, ticket_args))), MISSING)
            if taken is not MISSING:
                return result
            # else taken by another consumer meanwhile: look again

    def pop_prepared(self, deadline_ns, prepare):
        """prepare(the head object), waiting until the deadline; Empty or ShutDown."""
        while True:
            value = self.take_prepared(prepare)
            if value is not MISSING:
                return value
            self.next_head(deadline_ns)

    def shutdown(self, immediate):
        lib.ftu_queue_shutdown(self.queue, 1 if immediate else 0)
        if immediate:
            self.release_all()
            # Nothing can enter the dict any more. PyPy's dict was seen to keep references
            # to values already popped from it until it is written again (1 run in 10 of
            # test_threads_immediate_shutdown_loses_nothing_silently): a new dict lets
            # them go at the next collection. Threads still inside push or pop hold the
            # old one and finish with it.
            self.objects = {}

    def release_all(self):
        pop, args = self.objects.pop, self._queue_args
        while next(map(pop, map(_drain, args), MISSING_ARGS)) is not MISSING:
            pass

    def size(self):
        return lib.ftu_queue_size(self.queue)


__all__ = ["ObjectQueue", "NO_WAIT", "PUSH", "POP", "method"]
