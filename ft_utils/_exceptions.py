"""The queue exceptions, one set for both backends.

``ShutDown`` is ``queue.ShutDown`` on Python 3.13 and later; before, ft_utils defines it
(a subclass of Exception, as in 3.13), so that code written for 3.13 runs unchanged.
"""

import queue

Empty = queue.Empty
Full = queue.Full

try:
    ShutDown = queue.ShutDown
except AttributeError:  # Python < 3.13

    class ShutDown(Exception):
        """Raised by put() or get() on a queue that has been shut down."""

    ShutDown.__module__ = "ft_utils.concurrency"
