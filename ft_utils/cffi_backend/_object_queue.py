"""Objects in a core queue, for the cffi queue classes.

cffi cannot keep a reference to a Python object in C memory, so each pushed object gets
a ticket (an int) that goes through the core queue, and the object waits in a dict under
its ticket until a pop hands the ticket back (see _blocking.py for why the steps are cut
the way they are). Single dict operations are atomic on the interpreters this backend
serves.
"""

from functools import partial
from itertools import compress

from ft_utils._exceptions import Empty, Full, ShutDown
from ft_utils.cffi_backend._api import ffi, lib, owned
from ft_utils.cffi_backend._blocking import MISSING, MISSING_ARGS, NO_WAIT, TICKETS, call_blocking, wait

# Bound once: a first access to an attribute of lib builds it, which can fail for want of
# memory, and these are used where a failure would strand or lose an object.
_peek = lib.ftu_cffi_queue_peek
_take_if = lib.ftu_cffi_queue_take_if
_drain = lib.ftu_cffi_queue_drain
_push = lib.ftu_cffi_queue_push
_pushed = lib.ftu_cffi_queue_pushed
_wait_pop = lib.ftu_queue_wait_pop
_OK = lib.FTU_OK
_TIMEOUT = lib.FTU_TIMEOUT
_SHUTDOWN = lib.FTU_SHUTDOWN
_OPEN = lib.FTU_QUEUE_OPEN
_SHUT_IMMEDIATE = lib.FTU_QUEUE_SHUT_IMMEDIATE


class ObjectQueue:
    __slots__ = ("queue", "objects", "_queue_args")

    def __init__(self, capacity, flags):
        queue = lib.ftu_queue_new(capacity, flags)
        if queue == ffi.NULL:
            raise MemoryError("cannot allocate a queue")
        self.queue = owned(queue, lib.ftu_queue_free)
        self.objects = {}
        self._queue_args = (self.queue,)

    def push(self, value, deadline_ns):
        ticket = next(TICKETS)
        objects = self.objects
        queue = self.queue
        objects[ticket] = value
        try:
            status = _push(queue, ticket, NO_WAIT)
            if status == _TIMEOUT and deadline_ns != NO_WAIT:
                # partial, not a lambda: no closure cells (see take)
                status = call_blocking(partial(_push, queue, ticket), deadline_ns)
            if status != _OK:
                del objects[ticket]
        except BaseException:
            # Interrupted (a signal handler raised): keep the object only if its ticket
            # went in, where a pop will look for it.
            if not _pushed(queue, ticket):
                objects.pop(ticket, None)
            raise
        if status == _OK:
            return
        if status == _TIMEOUT:
            raise Full
        if status == _SHUTDOWN:
            raise ShutDown
        raise MemoryError("cannot grow the queue")

    def take(self, prepare=None):
        """The head object, or prepare(it) if prepare is given, or MISSING if there is none.

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
            if prepare is not None:
                value = objects.get(ticket, MISSING)
                if value is MISSING:
                    continue  # taken by another consumer meanwhile
                result = prepare(value)
                del value
            # With nothing to prepare the object comes straight out of the dict (holding it
            # meanwhile would keep alive one an immediate shutdown releases).
            # compress, not filter with a functools.partial: PyPy's partial is Python code,
            # where a signal handler can run between the take and the dict's pop
            taken = next(map(objects.pop, compress(ticket_args, map(_take_if, queue_args, ticket_args))), MISSING)
            if taken is not MISSING:
                return taken if prepare is None else result
            # else taken by another consumer meanwhile: look again

    def pop(self, deadline_ns, prepare=None):
        """The head object (prepare(it), if given), waiting until the deadline; Empty or
        ShutDown."""
        value = self.take(prepare)
        if value is not MISSING:
            return value
        queue = self.queue
        timed_out = False
        while True:
            state = lib.ftu_queue_state(queue)
            if state != _OPEN:
                if state == _SHUT_IMMEDIATE:
                    raise ShutDown
                value = self.take(prepare)  # shut: what was pushed before it is still there
                if value is MISSING:
                    raise ShutDown
                return value
            if timed_out or deadline_ns == NO_WAIT:
                raise Empty
            timed_out = wait(partial(_wait_pop, queue), deadline_ns) == _TIMEOUT
            value = self.take(prepare)
            if value is not MISSING:
                return value

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


__all__ = ["ObjectQueue", "NO_WAIT"]
