"""Thread-local helpers.

:class:`LocalWrapper` comes from the backend ``ft_utils.backend`` names (a C type on the
native backend), like the classes of :mod:`ft_utils.concurrency`.
"""

from ft_utils import _implementation

LocalWrapper = _implementation.LocalWrapper

__all__ = ["LocalWrapper"]
