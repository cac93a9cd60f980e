"""Objects in a core queue, for the cffi queue classes.

cffi cannot keep a reference to a Python object in C memory, so each pushed object gets
a ticket (an int) that goes through the core queue, and the object waits in a dict under
its ticket until a pop hands the ticket back. Ticket numbers and single dict operations
are atomic on the interpreters this backend serves.
"""

import itertools

from ft_utils._exceptions import Empty, Full, ShutDown
from ft_utils.cffi_backend._api import ffi, lib
from ft_utils.cffi_backend._blocking import NO_WAIT, call_blocking


class ObjectQueue:
    __slots__ = ("queue", "objects", "tickets")

    def __init__(self, capacity, flags):
        queue = lib.ftu_queue_new(capacity, flags)
        if queue == ffi.NULL:
            raise MemoryError("cannot allocate a queue")
        self.queue = ffi.gc(queue, lib.ftu_queue_free)
        self.objects = {}
        self.tickets = itertools.count(1)

    def push(self, value, deadline_ns):
        ticket = next(self.tickets)
        self.objects[ticket] = value
        queue = self.queue
        status = call_blocking(lambda deadline: lib.ftu_queue_push(queue, ticket, deadline), deadline_ns)
        if status == lib.FTU_OK:
            return
        del self.objects[ticket]
        if status == lib.FTU_TIMEOUT:
            raise Full
        if status == lib.FTU_SHUTDOWN:
            raise ShutDown
        raise MemoryError("cannot grow the queue")

    def pop(self, deadline_ns):
        word = ffi.new("uint64_t *")
        queue = self.queue
        status = call_blocking(lambda deadline: lib.ftu_queue_pop(queue, word, deadline), deadline_ns)
        if status == lib.FTU_OK:
            return self.objects.pop(word[0])
        if status == lib.FTU_TIMEOUT:
            raise Empty
        raise ShutDown

    def shutdown(self, immediate):
        lib.ftu_queue_shutdown(self.queue, 1 if immediate else 0)
        if immediate:
            self.release_all()

    def release_all(self):
        word = ffi.new("uint64_t *")
        while lib.ftu_queue_drain(self.queue, word) == lib.FTU_OK:
            self.objects.pop(word[0], None)

    def size(self):
        return lib.ftu_queue_size(self.queue)


__all__ = ["ObjectQueue", "NO_WAIT"]
