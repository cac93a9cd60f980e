"""How copies and pickles of the atomics are made and rebuilt, on both backends.

AtomicInt64, AtomicReference and AtomicFlag (and their subclasses) reduce to
``(atomic, (cls,), (value, attributes))``: pickle and copy make the object with
``cls.__new__(cls)``, without calling ``__init__`` (as for dict subclasses, whose
``__init__`` may take other arguments), remember it, and only then restore the state
through ``__setstate__``: the value, then the instance's own attributes (its ``__dict__``
and slots, or what its class's ``__getstate__`` returns). Because the value comes after
the object exists, an AtomicReference may hold itself, directly or through a list, as a
list may. A subclass with a ``__setstate__`` of its own gets what its ``__getstate__``
returns, and the value comes through the arguments instead.
"""

from types import MemberDescriptorType

_object_getstate = getattr(object, "__getstate__", None)  # from 3.11


def atomic(cls, *value):
    """cls.__new__(cls), with the value (if given) set by the ft_utils base class."""
    obj = cls.__new__(cls)
    if value:
        _base_of(cls).__setstate__(obj, (value[0], None))
    return obj


def reduce(obj, base, value):
    """obj.__reduce__() for an instance of base (an ft_utils atomic) or of a subclass."""
    cls = type(obj)
    state = attributes(obj, base)
    if cls.__setstate__ is base.__setstate__:
        return atomic, (cls,), (value, state)
    return atomic, (cls, value), state


def attributes(obj, base):
    """What an instance of a subclass of base carries beyond base's value: what its own
    __getstate__ returns, else its __dict__ and the slots its classes add (as
    object.__getstate__ gives them), or None."""
    cls = type(obj)
    if cls is base:
        return None
    getstate = getattr(cls, "__getstate__", None)
    if getstate is not None and getstate is not _object_getstate and getstate is not getattr(base, "__getstate__", None):
        return obj.__getstate__()
    state = dict(obj.__dict__) if getattr(obj, "__dict__", None) else None
    slots = {}
    for klass in cls.__mro__:
        if klass is base:
            break
        for name, member in vars(klass).items():  # a slot is a member descriptor (its name mangled)
            if isinstance(member, MemberDescriptorType) and name not in slots:
                try:
                    slots[name] = member.__get__(obj, cls)
                except AttributeError:  # not set
                    pass
    return (state, slots) if slots else state


def set_attributes(obj, state):
    """Restores what attributes() gave, as pickle restores an object's state."""
    if state is None:
        return
    slots = None
    if isinstance(state, tuple) and len(state) == 2:
        state, slots = state
    for part in (state, slots):
        if part is not None and not isinstance(part, dict):
            raise TypeError(f"{type(obj).__name__}.__setstate__(): the attributes must be a dict, "
                            f"a (dict, dict) tuple or None, not {type(part).__name__}")
    if state:
        obj.__dict__.update(state)
    if slots:
        for name, value in slots.items():
            setattr(obj, name, value)


def _base_of(cls):
    for klass in cls.__mro__:
        if klass.__module__ == "ft_utils.concurrency" and "__setstate__" in vars(klass):
            return klass
    raise TypeError(f"{cls.__name__} is not an ft_utils atomic")
