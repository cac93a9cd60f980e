"""Subclasses of every type, on every backend, the way users write them: an __init__ with
arguments of its own that passes ours on to super().__init__(), a __new__ of its own, and
copies and pickles that keep the instance's attributes (as for dict subclasses: rebuilt
without calling __init__). And an AtomicReference that holds itself copies and pickles
as a list that holds itself does.
"""

import copy
import pickle

import pytest

COPIES = {
    "copy.copy": copy.copy,
    "copy.deepcopy": copy.deepcopy,
    "pickle": lambda x: pickle.loads(pickle.dumps(x)),
    "pickle protocol 0": lambda x: pickle.loads(pickle.dumps(x, 0)),
}

# class name -> (constructor argument, what the instance reads back)
VALUE_TYPES = {
    "AtomicInt64": (5, lambda x: x.get()),
    "AtomicReference": ("five", lambda x: x.get()),
    "AtomicFlag": (True, bool),
}


@pytest.fixture
def public(backend, monkeypatch):
    """backend, its classes published as ft_utils.concurrency's for the test, so that
    pickle finds the plain classes of a backend that is not the loaded one."""
    import ft_utils.concurrency

    for name in ("AtomicInt64", "AtomicReference", "AtomicFlag"):
        monkeypatch.setattr(ft_utils.concurrency, name, getattr(backend, name))
    return backend


def module_level(cls, base, label):
    """cls, findable by pickle: a module attribute named after its base and backend."""
    name = f"{label}_{base.__module__.replace('.', '_')}_{base.__name__}_{id(base)}"
    cls.__name__ = cls.__qualname__ = name
    globals()[name] = cls
    return cls


def named_subclass(base):
    class Named(base):
        def __init__(self, value, name):
            super().__init__(value)
            self.name = name
            self.inits = getattr(self, "inits", 0) + 1

    return module_level(Named, base, "Named")


@pytest.mark.parametrize("class_name", VALUE_TYPES)
def test_init_with_arguments_of_its_own(backend, class_name):
    value, read = VALUE_TYPES[class_name]
    cls = named_subclass(getattr(backend, class_name))
    x = cls(value, "counter")
    assert read(x) == value and x.name == "counter"
    x.__init__(value, "again")  # as set(): called again, it sets again
    assert read(x) == value and x.name == "again"


@pytest.mark.parametrize("class_name", VALUE_TYPES)
def test_new_of_its_own(backend, class_name):
    value, read = VALUE_TYPES[class_name]
    base = getattr(backend, class_name)

    class Made(base):
        def __new__(cls, label):
            self = super().__new__(cls, value)
            self.label = label
            return self

    x = Made("made")
    assert read(x) == value and x.label == "made"


@pytest.mark.parametrize("how", COPIES)
@pytest.mark.parametrize("class_name", VALUE_TYPES)
def test_copies_keep_value_and_attributes_without_calling_init(backend, class_name, how):
    value, read = VALUE_TYPES[class_name]
    x = named_subclass(getattr(backend, class_name))(value, "kept")
    x.extra = [1, 2]
    y = COPIES[how](x)
    assert type(y) is type(x) and y is not x
    assert read(y) == value and y.name == "kept" and y.extra == [1, 2]
    assert y.inits == 1  # copied, not re-initialised


@pytest.mark.parametrize("how", COPIES)
@pytest.mark.parametrize("class_name", VALUE_TYPES)
def test_copies_keep_slots(backend, class_name, how):
    value, read = VALUE_TYPES[class_name]

    class Slotted(getattr(backend, class_name)):
        __slots__ = ("tag", "__private")

        def __init__(self, value, tag):
            super().__init__(value)
            self.tag = tag
            self.__private = tag * 2

        def private(self):  # noqa: D401
            return self.__private

    base = getattr(backend, class_name)
    Slotted = module_level(Slotted, base, "Slotted")
    y = COPIES[how](Slotted(value, "t"))
    assert read(y) == value and y.tag == "t" and y.private() == "tt"


@pytest.mark.parametrize("class_name", VALUE_TYPES)
def test_a_subclass_state_of_its_own(backend, class_name):
    value, read = VALUE_TYPES[class_name]

    class Stateful(getattr(backend, class_name)):
        def __getstate__(self):
            return {"restored": True}

        def __setstate__(self, state):
            self.restored = state["restored"]

    Stateful = module_level(Stateful, getattr(backend, class_name), "Stateful")
    y = pickle.loads(pickle.dumps(Stateful(value)))
    assert read(y) == value and y.restored is True


@pytest.mark.parametrize("class_name", VALUE_TYPES)
def test_plain_copies(public, class_name):
    value, read = VALUE_TYPES[class_name]
    x = getattr(public, class_name)(value)
    for how, make in COPIES.items():
        y = make(x)
        assert type(y) is type(x) and read(y) == value, how


@pytest.mark.parametrize("how", COPIES)
def test_a_reference_that_holds_itself(public, how):
    """Its __reduce__ used to pass the referent as a constructor argument: RecursionError."""
    direct = public.AtomicReference()
    direct.set(direct)
    y = COPIES[how](direct)
    if how == "copy.copy":
        assert y.get() is direct  # shallow: the same referent
    else:
        assert y.get() is y
    through_list = public.AtomicReference()
    through_list.set([through_list])
    z = COPIES[how](through_list)
    if how != "copy.copy":
        assert z.get()[0] is z


@pytest.mark.parametrize("class_name", ["ConcurrentQueue", "StdConcurrentQueue", "ConcurrentGatheringIterator"])
def test_containers_take_init_arguments_of_their_own(backend, class_name):
    base = getattr(backend, class_name)

    class Named(base):
        def __init__(self, name, *args):
            super().__init__(*args)
            self.name = name

    assert Named("n").name == "n"
    with pytest.raises((TypeError, ValueError)):
        Named("n", "x")  # scaling / maxsize checked by super().__init__()
    if class_name == "StdConcurrentQueue":
        assert Named("n", 3).maxsize == 3


def test_a_dict_subclass_takes_init_arguments_of_its_own(backend):
    """As a dict subclass may: __init__ takes its own arguments and passes scaling and the
    contents on to super().__init__() (scaling is checked there; the table keeps the
    default one unless __new__ is overridden too)."""

    class Tagged(backend.ConcurrentDict):
        def __init__(self, tag, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.tag = tag

    plain = Tagged("t")
    assert plain.tag == "t" and len(plain) == 0 and plain.scaling == 17
    filled = Tagged("u", 4, {"a": 1})
    assert filled.tag == "u" and filled == {"a": 1}
    assert Tagged("v", dictionary=[("b", 2)]) == {"b": 2}
    with pytest.raises(TypeError, match="scaling must be an int"):
        Tagged("w", "x")

    class Four(backend.ConcurrentDict):
        def __init__(self, a, b, c, d):
            super().__init__()
            self.args = (a, b, c, d)

    assert Four(1, 2, 3, 4).args == (1, 2, 3, 4)

    class Sized(backend.ConcurrentDict):  # both overridden: __new__ chooses the scaling
        def __new__(cls, tag):
            return super().__new__(cls, 4)

        def __init__(self, tag):
            super().__init__()
            self.tag = tag

    assert Sized("s").scaling == 4 and Sized("s").tag == "s"


def test_setstate_refuses_another_state(backend):
    for class_name in VALUE_TYPES:
        with pytest.raises(TypeError, match="__setstate__"):
            getattr(backend, class_name)().__setstate__(5)


@pytest.mark.parametrize("class_name", VALUE_TYPES)
def test_a_failed_setstate_changes_nothing(backend, class_name):
    value, read = VALUE_TYPES[class_name]
    x = getattr(backend, class_name)(value)
    other = {"AtomicInt64": 9, "AtomicReference": "nine", "AtomicFlag": False}[class_name]
    with pytest.raises(TypeError, match="attributes"):
        x.__setstate__((other, "not attributes"))
    assert read(x) == value


@pytest.mark.parametrize("name", ["_cell", "_obj", "_lock", "_queue", "_count", "_shards", "_locks", "_gather"])
def test_subclass_attributes_never_touch_the_internals(backend, name):
    """A subclass may use any attribute name: ours do not collide with it (the cffi
    backend's internals once were plain `_obj`, `_lock`, `_cell`...)."""
    made = {
        "AtomicInt64": lambda cls: cls(5),
        "AtomicReference": lambda cls: cls("five"),
        "AtomicFlag": lambda cls: cls(True),
        "ConcurrentDict": lambda cls: cls(),
        "ConcurrentQueue": lambda cls: cls(),
        "StdConcurrentQueue": lambda cls: cls(),
        "ConcurrentGatheringIterator": lambda cls: cls(),
    }
    for class_name, make in made.items():
        sub = type("Sub", (getattr(backend, class_name),), {})
        x = make(sub)
        setattr(x, name, "user data")
        if class_name == "AtomicInt64":
            assert x.incr() == 6
        elif class_name == "AtomicReference":
            x.set("six")
            assert x.get() == "six"
        elif class_name == "AtomicFlag":
            x.set(False)
            assert not x
        elif class_name == "ConcurrentDict":
            x[1] = 2
            assert x[1] == 2 and len(x) == 1
        elif class_name == "ConcurrentQueue":
            x.push(1)
            assert x.pop() == 1
        elif class_name == "StdConcurrentQueue":
            x.put(1)
            assert x.get() == 1
        else:
            x.insert(0, "a")
            assert list(x.iterator(0)) == ["a"]
        assert getattr(x, name) == "user data"
