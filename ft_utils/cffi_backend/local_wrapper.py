"""LocalWrapper on the cffi backend: a Python proxy with the native type's behaviour.

Every attribute but ``wrapped`` is looked up on the wrapped object, and every special
method forwards to it; binary operators unwrap a wrapper on either side. The wrapper
never changes after construction: an in-place operator returns a new wrapper around the
result (or the same wrapper when the result is the wrapped object itself).
"""

import operator

from ft_utils.cffi_backend._api import document


@document
class LocalWrapper:
    __class_getitem__ = classmethod(type(list[int]))  # types.GenericAlias, as for list (PEP 585)
    __slots__ = ("_LocalWrapper__wrapped", "__weakref__")

    def __new__(cls, wrapped):
        self = object.__new__(cls)
        _slot.__set__(self, wrapped)
        return self

    def __init_subclass__(cls, **kwargs):
        raise TypeError("type 'ft_utils.local.LocalWrapper' is not an acceptable base type")

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

    def __bytes__(self):
        return bytes(_slot.__get__(self))

    def __hash__(self):
        return hash(_slot.__get__(self))

    def __bool__(self):
        return bool(_slot.__get__(self))

    def __call__(self, *args, **kwargs):
        return _slot.__get__(self)(*args, **kwargs)

    def __len__(self):
        return len(_slot.__get__(self))

    def __getitem__(self, key):
        return _slot.__get__(self)[key]

    def __setitem__(self, key, value):
        _slot.__get__(self)[key] = value

    def __delitem__(self, key):
        del _slot.__get__(self)[key]

    def __contains__(self, item):
        return item in _slot.__get__(self)

    def __iter__(self):
        return iter(_slot.__get__(self))

    def __next__(self):
        return next(_slot.__get__(self))

    def __reversed__(self):
        return reversed(_slot.__get__(self))

    def __enter__(self):
        return _slot.__get__(self).__enter__()

    def __exit__(self, *args):
        return _slot.__get__(self).__exit__(*args)

    def __round__(self, *args):
        return _slot.__get__(self).__round__(*args)

    def __trunc__(self):
        return _slot.__get__(self).__trunc__()

    def __floor__(self):
        return _slot.__get__(self).__floor__()

    def __ceil__(self):
        return _slot.__get__(self).__ceil__()

    def __pow__(self, other, modulo=None):
        return pow(_slot.__get__(self), _unwrap(other), _unwrap(modulo))

    def __rpow__(self, other, modulo=None):
        return pow(_unwrap(other), _slot.__get__(self), _unwrap(modulo))

    def __ipow__(self, other, modulo=None):
        if modulo is not None:  # as for any type: three-argument pow has no in-place form
            return NotImplemented
        return _rewrap(self, operator.ipow(_slot.__get__(self), _unwrap(other)))


_slot = LocalWrapper.__dict__["_LocalWrapper__wrapped"]


def _unwrap(obj):
    return _slot.__get__(obj) if type(obj) is LocalWrapper else obj


def _rewrap(wrapper, result):
    return wrapper if result is _slot.__get__(wrapper) else LocalWrapper(result)


def _forward_unary(function):
    def method(self):
        return function(_slot.__get__(self))

    return method


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
    "neg": operator.neg, "pos": operator.pos, "abs": operator.abs, "invert": operator.invert,
    "int": int, "float": float, "index": operator.index,
}.items():
    setattr(LocalWrapper, f"__{_name}__", _forward_unary(_function))

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

del _name, _function, _method, _reflected, _inplace
