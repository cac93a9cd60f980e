"""LocalWrapper on the cffi backend: a Python proxy with the native type's behaviour.

Every attribute but ``wrapped`` is looked up on the wrapped object, and every special
method forwards to it; binary operators unwrap a wrapper on either side. The wrapper
never changes after construction: an in-place operator returns a new wrapper around the
result (or the same wrapper when the result is the wrapped object itself).

As on the native backend, a wrapper has exactly the protocols of the object it wraps:
``LocalWrapper`` itself holds what every object has (attributes, repr, str, format, dir,
comparisons) and the binary operators, and ``LocalWrapper(obj)`` makes an instance of a
subclass that adds the special methods ``type(obj)`` has (its profile, read from the
type's MRO as the abc checks read it: a special method set to None is absent). There is
one subclass per profile, made on first use.
"""

import array
import functools
import mmap
import operator
import sys
import types
import weakref

from ft_utils.cffi_backend._api import document

_HEAPTYPE = 1 << 9
_IMMUTABLETYPE = 1 << 8
_MISSING = object()
_TOKEN = object()  # lets only this module subclass LocalWrapper


@document
class LocalWrapper:
    __class_getitem__ = classmethod(type(list[int]))  # types.GenericAlias, as for list (PEP 585)
    __slots__ = ("_LocalWrapper__wrapped", "__weakref__")

    def __new__(cls, wrapped):
        tp = type(wrapped)
        profile = _classes.get(tp)
        if profile is None:
            entry = _heap_classes.get(id(tp))
            profile = entry[1] if entry is not None and entry[0]() is tp else _profile_class(tp)
        self = object.__new__(profile)
        _slot.__set__(self, wrapped)
        return self

    def __init_subclass__(cls, _token=None, **kwargs):
        if _token is not _TOKEN:
            raise TypeError("type 'ft_utils.local.LocalWrapper' is not an acceptable base type")
        super().__init_subclass__(**kwargs)

    @property
    def wrapped(self):
        return _slot.__get__(self)

    def __getattribute__(self, name):
        if name == "wrapped":
            return _slot.__get__(self)
        return getattr(_slot.__get__(self), name)

    def __setattr__(self, name, value):
        if name == "wrapped":
            raise AttributeError("LocalWrapper.wrapped is read-only")
        setattr(_slot.__get__(self), name, value)

    def __delattr__(self, name):
        if name == "wrapped":
            raise AttributeError("LocalWrapper.wrapped is read-only")
        delattr(_slot.__get__(self), name)

    def __repr__(self):
        return repr(_slot.__get__(self))

    def __str__(self):
        return str(_slot.__get__(self))

    def __format__(self, spec):
        return format(_slot.__get__(self), spec)

    def __dir__(self):
        return dir(_slot.__get__(self))

    def __pow__(self, other, modulo=None):
        return pow(_slot.__get__(self), _unwrap(other), _unwrap(modulo))

    # CPython before 3.14 never calls __rpow__ for three-argument pow (PyPy does): there
    # pow(x, w, m) with a wrapper as x or m cannot reach this class (docs/local_wrapper.md).
    def __rpow__(self, other, modulo=None):
        return pow(_unwrap(other), _slot.__get__(self), _unwrap(modulo))

    def __ipow__(self, other, modulo=None):
        if modulo is not None:  # as for any type: three-argument pow has no in-place form
            return NotImplemented
        return _rewrap(self, operator.ipow(_slot.__get__(self), _unwrap(other)))

    # __eq__ and the other comparisons are added below; with them Python sets __hash__ to
    # None here, and a profile whose type has __hash__ defines its own.


_slot = LocalWrapper.__dict__["_LocalWrapper__wrapped"]


if sys.implementation.name == "pypy":  # the JIT makes isinstance the cheapest test there

    def _unwrap(obj):
        return _slot.__get__(obj) if isinstance(obj, LocalWrapper) else obj

else:  # CPython: a set lookup costs less than isinstance's __class__ fallback for non-wrappers

    def _unwrap(obj):
        return _slot.__get__(obj) if type(obj) in _wrapper_types else obj


def _rewrap(wrapper, result):
    return wrapper if result is _slot.__get__(wrapper) else LocalWrapper(result)


def _forward_binary(function):
    def method(self, other):
        return function(_slot.__get__(self), _unwrap(other))

    def reflected(self, other):
        return function(_unwrap(other), _slot.__get__(self))

    return method, reflected


def _forward_inplace(function):
    def method(self, other):
        return _rewrap(self, function(_slot.__get__(self), _unwrap(other)))

    return method


for _name, _function in {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "matmul": operator.matmul,
    "truediv": operator.truediv, "floordiv": operator.floordiv, "mod": operator.mod,
    "divmod": divmod, "lshift": operator.lshift, "rshift": operator.rshift,
    "and": operator.and_, "or": operator.or_, "xor": operator.xor,
}.items():
    _method, _reflected = _forward_binary(_function)
    setattr(LocalWrapper, f"__{_name}__", _method)
    setattr(LocalWrapper, f"__r{_name}__", _reflected)
    _inplace = getattr(operator, f"i{_name.rstrip('_')}", None)
    if _inplace is not None:
        setattr(LocalWrapper, f"__i{_name}__", _forward_inplace(_inplace))

for _name in ("lt", "le", "eq", "ne", "gt", "ge"):
    setattr(LocalWrapper, f"__{_name}__", _forward_binary(getattr(operator, _name))[0])
LocalWrapper.__hash__ = None

del _name, _function, _method, _reflected, _inplace


# ---- the profiles ------------------------------------------------------------------------


def _lookup(tp, name):
    """type tp's attribute ``name`` found as the interpreter finds a special method (in
    the MRO, never on the metaclass), or None."""
    for klass in tp.__mro__:
        value = klass.__dict__.get(name, _MISSING)
        if value is not _MISSING:
            return value
    return None


def _call_special(obj, name, *args):
    """Call obj's special method as the interpreter does: looked up on its type, bound."""
    method = _lookup(type(obj), name)
    if method is None:
        raise AttributeError(f"'{type(obj).__name__}' object has no attribute '{name}'")
    if isinstance(method, _UNBOUND_METHODS):  # called with self first, as the slots do
        return method(obj, *args)
    get = getattr(type(method), "__get__", None)
    return (get(method, obj, type(obj)) if get is not None else method)(*args)


_UNBOUND_METHODS = (types.FunctionType, types.WrapperDescriptorType, types.MethodDescriptorType)


def _special(name):
    def method(self, *args):
        return _call_special(_slot.__get__(self), name, *args)

    method.__name__ = name
    return method


def _complex(self):
    wrapped = _slot.__get__(self)
    if isinstance(wrapped, complex) and _lookup(type(wrapped), "__complex__") is None:
        return complex(wrapped)  # PyPy: see _features()
    return _call_special(wrapped, "__complex__")


def _descriptor_get(self, obj, objtype=None):
    wrapped = _slot.__get__(self)
    return _call_special(wrapped, "__get__", obj, objtype)


# Each feature: the special methods that bring it (any of them) and the methods a profile
# with it gets. Forwarding goes through the builtin that uses the method when there is
# one (len(), iter(), ...), else through the special method itself.
_FEATURES = [
    (("__hash__",), {"__hash__": lambda self: hash(_slot.__get__(self))}),
    (("__call__",), {"__call__": lambda self, /, *args, **kwargs: _slot.__get__(self)(*args, **kwargs)}),
    (("__iter__",), {"__iter__": lambda self: iter(_slot.__get__(self))}),
    (("__next__",), {"__next__": lambda self: next(_slot.__get__(self))}),
    (("__len__",), {"__len__": lambda self: len(_slot.__get__(self))}),
    (("__contains__",), {"__contains__": lambda self, item: item in _slot.__get__(self)}),
    (("__getitem__",), {"__getitem__": lambda self, key: _slot.__get__(self)[key]}),
    # One C slot does both: a type with either answers `del obj[k]` through it.
    (("__setitem__", "__delitem__"), {
        "__setitem__": lambda self, key, value: operator.setitem(_slot.__get__(self), key, value),
        "__delitem__": lambda self, key: operator.delitem(_slot.__get__(self), key),
    }),
    (("__bool__",), {"__bool__": lambda self: bool(_slot.__get__(self))}),
    (("__neg__",), {"__neg__": lambda self: -_slot.__get__(self)}),
    (("__pos__",), {"__pos__": lambda self: +_slot.__get__(self)}),
    (("__abs__",), {"__abs__": lambda self: abs(_slot.__get__(self))}),
    (("__invert__",), {"__invert__": lambda self: ~_slot.__get__(self)}),
    # int(), float() and operator.index() check what the method returns: forward the
    # method itself, so that the check (and any warning) happens once, on exactly that.
    (("__int__",), {"__int__": _special("__int__")}),
    (("__float__",), {"__float__": _special("__float__")}),
    (("__index__",), {"__index__": _special("__index__")}),
    (("__get__",), {"__get__": _descriptor_get}),
    (("__complex__",), {"__complex__": _complex}),
    # The buffer protocol: a class written in Python has it only from 3.12 (__buffer__);
    # bytes(w) gives the object's bytes everywhere (bytes() of the object itself).
    (("__buffer__",), {"__bytes__": lambda self: bytes(_slot.__get__(self)),
                       **({"__buffer__": lambda self, flags: memoryview(_slot.__get__(self))}
                          if sys.version_info >= (3, 12) else {})}),
    (("__set__", "__delete__"), {
        "__set__": lambda self, obj, value: _call_special(_slot.__get__(self), "__set__", obj, value),
        "__delete__": lambda self, obj: _call_special(_slot.__get__(self), "__delete__", obj),
    }),
    *(((name,), {name: _special(name)}) for name in (
        "__await__", "__aiter__", "__anext__", "__round__", "__trunc__", "__floor__", "__ceil__",
        "__bytes__", "__reversed__", "__enter__", "__exit__", "__aenter__",
        "__aexit__", "__length_hint__", "__fspath__", "__copy__", "__instancecheck__",
        "__subclasscheck__", "__set_name__",
    )),
]

_ALL_NAMES = frozenset(name for names, _ in _FEATURES for name in names)
_BITS = {name: 1 << index for index, (names, _) in enumerate(_FEATURES) for name in names}
_COMPLEX_BIT = _BITS["__complex__"]
_BUFFER_BIT = _BITS["__buffer__"]
# Before 3.12 a type shows no __buffer__; bytes and bytearray need none (their items are
# their bytes), the others would give wrong bytes through iteration.
_BUFFER_TYPES = (memoryview, array.array, mmap.mmap)
_HASH_BIT = _BITS["__hash__"]
_profiles = {}  # (features, blocked) -> subclass
_wrapper_types = set()  # the subclasses
_classes = {}  # built-in or immutable type -> subclass
# A class defined in Python, by id -> (weak reference to it, subclass): the cache never
# keeps a class alive, and a dead class's entry goes with it.
_heap_classes = {}


def _forget(ref, key=None):
    entry = _heap_classes.get(key)
    if entry is not None and entry[0] is ref:
        del _heap_classes[key]


def _protocols(tp):
    """(features, blocked): bit sets of the _FEATURES type tp has, and of those it sets to
    None ("not available": the abc checks say no, the operation raises TypeError and
    does not fall back, e.g. iteration to __getitem__). A wrapper mirrors both; a blocked
    __hash__ is simply no hash."""
    features = blocked = 0
    seen = set()
    for klass in tp.__mro__:
        namespace = klass.__dict__
        for name in _ALL_NAMES.intersection(namespace.keys()) - seen:
            seen.add(name)
            if namespace[name] is None:
                blocked |= _BITS[name]
            else:
                features |= _BITS[name]
    if issubclass(tp, _BUFFER_TYPES):
        features |= _BUFFER_BIT
    blocked &= ~(features | _HASH_BIT)  # either of two names present: the feature is
    if sys.implementation.name != "cpython" and issubclass(tp, complex) and not features & _COMPLEX_BIT:
        # PyPy's complex has no __complex__ (complex() knows its own type): without one a
        # wrapper of a complex would not convert (complex(w), cmath.sqrt(w)).
        features |= _COMPLEX_BIT
    return features, blocked


def _profile_class(tp):
    """The subclass for objects of type tp, when LocalWrapper.__new__ has not found it
    in the caches."""
    key = features, blocked = _protocols(tp)
    cls = _profiles.get(key)
    if cls is None:
        namespace = {"__slots__": (), "__module__": LocalWrapper.__module__, "__doc__": LocalWrapper.__doc__,
                     "__qualname__": "LocalWrapper"}
        for index, (_, methods) in enumerate(_FEATURES):
            if features >> index & 1:
                namespace.update(methods)
            elif blocked >> index & 1:
                namespace.update(dict.fromkeys(methods))  # None: as the type has it
        cls = type(LocalWrapper)("LocalWrapper", (LocalWrapper,), namespace, _token=_TOKEN)
        # Known as a wrapper type before it is published: if adding it failed (no memory)
        # after, the published type would never be unwrapped.
        _wrapper_types.add(cls)
        cls = _profiles.setdefault(key, cls)
    # Read once per type. Python code cannot see when a class gains or loses a special
    # method later (the native backend can, through the type's version tag): here the
    # first answer stays (docs/local_wrapper.md). Classes defined in Python are held
    # weakly, so that the cache never keeps one alive.
    flags = getattr(tp, "__flags__", _HEAPTYPE)
    if not flags & _HEAPTYPE or flags & _IMMUTABLETYPE:
        _classes[tp] = cls
    else:
        _heap_classes[id(tp)] = (weakref.ref(tp, functools.partial(_forget, key=id(tp))), cls)
    return cls
