"""The type stubs against the runtime, on every backend; mypy --strict on typical user code.

The stubs (ft_utils/concurrency.pyi, ft_utils/local.pyi) are what a type checker believes.
Nothing else checks them, so they drift: a method the runtime grew, a class the stub
calls Generic but the runtime cannot subscript (``q: ConcurrentQueue[int] = ...`` at
module level then passes mypy and fails on import). This compares them with the classes
each backend exports, by introspection, so any change on either side that is not made on
the other fails here:

* names, both ways: every public name and special method a class has at run time is in
  its stub, unless ``object`` (as typeshed declares it) already gives it the same type;
  every name in the stub exists at run time. Module names: the stub's against
  ``__all__``.
* kinds: a stub method is callable at run time, a stub property is a data descriptor
  (read-only unless the stub gives it a setter or declares a plain attribute, checked by
  assigning on an instance), ``__hash__: None`` means the runtime is unhashable.
* signatures, where the runtime exposes one (``inspect.signature``; the C types have
  ``__text_signature__`` from ft_utils/_docstrings.py): every call the stub allows binds
  on the runtime, and every call the runtime accepts binds on one of the stub's overloads.
  Special methods are called by the interpreter with positional arguments, so only
  their positional arity counts.
* a class that is Generic in the stub is subscriptable at run time (``cls[int]`` is a
  ``types.GenericAlias``) and the reverse.

ALLOWED lists the few differences that are meant, each with its reason.

The mypy part runs ``python -m mypy --strict`` once on tests/typing_samples/ (user code
that must pass, and a file whose marked lines must each be reported, and nothing else)
together with the stubs themselves; the passing sample must also run on every backend.
"""

import ast
import inspect
import os
import re
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest

import ft_utils.concurrency
import ft_utils.local
from ft_utils import _backend

from conftest import BACKENDS

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = Path(__file__).resolve().parent / "typing_samples"
STUB_FILES = {
    "ft_utils.concurrency": ROOT / "ft_utils" / "concurrency.pyi",
    "ft_utils.local": ROOT / "ft_utils" / "local.pyi",
}

# Special methods typeshed declares on `object`: a class that has them at run time needs
# no stub entry, since object's declaration already types them (the runtime's __hash__
# being None is the exception, checked on its own).
OBJECT_IN_TYPESHED = {
    "__eq__", "__ne__", "__hash__", "__str__", "__repr__", "__format__", "__getattribute__",
    "__setattr__", "__delattr__", "__reduce__", "__reduce_ex__", "__getstate__",
    "__init_subclass__", "__sizeof__", "__dir__", "__class__", "__doc__", "__module__",
    "__dict__", "__annotations__", "__slots__", "__init__", "__new__",
}
# Runtime names that are not API: the constructor is compared as inspect.signature(cls)
# against the stub's __init__; __class_getitem__ is compared with the stub's Generic.
NOT_API = {"__weakref__", "__qualname__", "__class_getitem__", "__orig_bases__", "__parameters__",
           "__abstractmethods__", "__subclasshook__", "__firstlineno__", "__static_attributes__"}

# (class, name, check) -> reason. check: "runtime-only" (no stub entry needed), "stub-only"
# (no runtime attribute of that name), "signature" (the signatures may differ).
ALLOWED = {
    **{("ConcurrentDict", name, "runtime-only"): (
        "the native type fills tp_richcompare, which shows all six comparison slots; the "
        "ordering ones return NotImplemented (TypeError), as dict's do, and typeshed's dict "
        "declares none of them either (test_allowed_differences_hold checks the TypeError)")
       for name in ("__lt__", "__le__", "__gt__", "__ge__")},
    ("LocalWrapper", "__getattr__", "stub-only"): (
        "tells a type checker that every other attribute is forwarded (typed Any); the "
        "runtime forwards in __getattribute__"),
    # LocalWrapper(obj) is an instance of a subclass made per set of special methods
    # type(obj) has, which has exactly those (so that abc checks and callable() answer as
    # for obj): the stub declares them all on LocalWrapper, so that code using a wrapper
    # the way it uses the object type-checks (test_profile_methods_exist_on_the_subclass).
    **{("LocalWrapper", name, "stub-only"): "present on LocalWrapper(obj)'s class when type(obj) has it"
       for name in ("__call__", "__len__", "__getitem__", "__setitem__", "__delitem__", "__contains__",
                    "__iter__", "__next__", "__reversed__", "__bool__", "__bytes__", "__enter__", "__exit__",
                    "__neg__", "__pos__", "__abs__", "__invert__", "__int__", "__float__", "__index__",
                    "__round__", "__trunc__", "__floor__", "__ceil__", "__hash__")},
    ("AtomicInt64", "__ipow__", "signature"): (
        "cffi's __ipow__ takes an optional modulo the interpreter never passes (`**=` has no "
        "three-argument form); the native slot and the stub take the exponent only"),
    ("LocalWrapper", "__ipow__", "signature"): (
        "cffi's __ipow__ takes an optional modulo the interpreter never passes (`**=` has no "
        "three-argument form); the native slot and the stub take the exponent only"),
}


def is_dunder(name):
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def is_public(name):
    return is_dunder(name) or not name.startswith("_")


# ---- the stubs, read with ast -------------------------------------------------------------

class StubMember:
    def __init__(self, kind):
        self.kind = kind  # "method", "property", "attribute", "none"
        self.signatures = []  # for methods: one inspect.Signature per overload
        self.writable = kind == "attribute"


class StubClass:
    def __init__(self, node):
        self.name = node.name
        self.type_params = 0
        self.bases = []
        for base in node.bases:
            if isinstance(base, ast.Subscript) and ast.unparse(base.value) in ("Generic", "typing.Generic"):
                params = base.slice.elts if isinstance(base.slice, ast.Tuple) else [base.slice]
                self.type_params = len(params)
            else:
                self.bases.append(ast.unparse(base))
        self.members = {}
        for item in node.body:
            if isinstance(item, ast.FunctionDef):
                self._function(item)
            elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                none = isinstance(item.annotation, ast.Constant) and item.annotation.value is None
                self.members[item.target.id] = StubMember("none" if none else "attribute")
            elif isinstance(item, ast.Assign):
                for target in item.targets:
                    self.members[target.id] = StubMember("attribute")

    def _function(self, node):
        decorators = [ast.unparse(d) for d in node.decorator_list]
        if f"{node.name}.setter" in decorators:
            self.members[node.name].writable = True
            return
        if "property" in decorators:
            self.members[node.name] = StubMember("property")
            return
        member = self.members.setdefault(node.name, StubMember("method"))
        member.signatures.append(stub_signature(node, drop_self="staticmethod" not in decorators))


def stub_signature(node, drop_self):
    P = inspect.Parameter
    args = node.args
    positional = [(a, P.POSITIONAL_ONLY) for a in args.posonlyargs] + [(a, P.POSITIONAL_OR_KEYWORD) for a in args.args]
    first_default = len(positional) - len(args.defaults)
    params = []
    for index, (arg, kind) in enumerate(positional):
        if arg.arg.startswith("__") and not arg.arg.endswith("__"):
            kind = P.POSITIONAL_ONLY  # the old convention for positional-only parameters
        params.append(P(arg.arg, kind, default=... if index >= first_default else P.empty))
    if drop_self:
        params = params[1:]
    if args.vararg:
        params.append(P(args.vararg.arg, P.VAR_POSITIONAL))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults):
        params.append(P(arg.arg, P.KEYWORD_ONLY, default=P.empty if default is None else ...))
    if args.kwarg:
        params.append(P(args.kwarg.arg, P.VAR_KEYWORD))
    return inspect.Signature(params)


def read_stub(module_name):
    tree = ast.parse(STUB_FILES[module_name].read_text())
    classes, names = {}, set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            classes[node.name] = StubClass(node)
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.FunctionDef):
            names.add(node.name)
    return classes, {n for n in names if not n.startswith("_")}


STUBS = {module: read_stub(module) for module in STUB_FILES}


def stub_class(class_name):
    return STUBS[_backend.PUBLIC_MODULES[class_name]][0][class_name]


# ---- the runtime, by introspection ----------------------------------------------------------

def runtime_members(cls):
    """name -> the attribute as the class (or a base other than object) defines it."""
    members = {}
    for klass in reversed(cls.__mro__):
        if klass is not object:
            members.update(vars(klass))
    return {n: v for n, v in members.items() if is_public(n) and n not in NOT_API}


def make_instance(cls):
    return cls(0) if cls.__name__ == "LocalWrapper" else cls()


def runtime_signature(cls, name):
    """The signature of cls.name without self, or None if the runtime does not expose one."""
    static = inspect.getattr_static(cls, name)
    try:
        signature = inspect.signature(getattr(cls, name))
    except (ValueError, TypeError):
        return None
    if isinstance(static, (staticmethod, classmethod, type(dict.__dict__["fromkeys"]))):
        return signature  # bound to the class, or no first argument: nothing to drop
    params = list(signature.parameters.values())
    if not params or params[0].kind not in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
        return None  # (*args, **kwargs): nothing to compare
    return signature.replace(parameters=params[1:])


def call_shapes(signature, positional_only):
    """The argument shapes a signature accepts, as (number of positional arguments,
    keyword names): each arity from the required to the most (one more with *args), each
    parameter that can be named passed by name, an unknown keyword where **kwargs takes it."""
    P = inspect.Parameter
    params = list(signature.parameters.values())
    positional = [p for p in params if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)]
    required = sum(1 for p in positional if p.default is P.empty)
    has_varargs = any(p.kind == P.VAR_POSITIONAL for p in params)
    keyword_required = [p.name for p in params if p.kind == P.KEYWORD_ONLY and p.default is P.empty]
    shapes = [(n, tuple(keyword_required))
              for n in range(required, len(positional) + has_varargs + 1)]
    if not positional_only:
        for index, p in enumerate(positional):
            if p.kind == P.POSITIONAL_OR_KEYWORD:
                later = [q.name for q in positional[index + 1:] if q.default is P.empty]
                shapes.append((index, (p.name, *later, *keyword_required)))
        for p in params:
            if p.kind == P.KEYWORD_ONLY and p.default is not P.empty:
                shapes.append((required, (*keyword_required, p.name)))
        if any(p.kind == P.VAR_KEYWORD for p in params):
            shapes.append((required, (*keyword_required, "ftu_unknown_keyword")))
    return shapes


def binds(signature, shape):
    count, keywords = shape
    try:
        signature.bind(*range(count), **dict.fromkeys(keywords, 0))
    except TypeError:
        return False
    return True


def describe(shape):
    count, keywords = shape
    return "(" + ", ".join([f"a{i}" for i in range(count)] + [f"{k}=..." for k in keywords]) + ")"


def compare_signatures(label, stub_signatures, runtime, positional_only):
    problems = []
    for stub in stub_signatures:
        for shape in call_shapes(stub, positional_only):
            if not binds(runtime, shape):
                problems.append(f"{label}: the stub {stub} allows {describe(shape)}, the runtime {runtime} refuses it")
    for shape in call_shapes(runtime, positional_only):
        if not any(binds(stub, shape) for stub in stub_signatures):
            stubs = " | ".join(str(s) for s in stub_signatures)
            problems.append(f"{label}: the runtime {runtime} accepts {describe(shape)}, the stub {stubs} does not")
    return problems


def is_writable(instance, name):
    try:
        setattr(instance, name, getattr(instance, name))
    except (AttributeError, TypeError):
        return False
    return True


def is_generic_at_runtime(cls, count):
    if not hasattr(cls, "__class_getitem__"):
        return False
    args = (int,) * max(count, 1)
    try:
        alias = cls[args if len(args) > 1 else args[0]]
    except TypeError:
        return False
    return isinstance(alias, types.GenericAlias) and typing.get_origin(alias) is cls and typing.get_args(alias) == args


def class_attribute(cls, member):
    """What the class itself defines for member (not its metaclass: type.__call__ is
    not a class's __call__), or None."""
    for klass in cls.__mro__:
        if member in vars(klass):
            return vars(klass)[member]
    return None


def mismatches(cls, stub):
    """Every difference between a runtime class and its stub, as readable lines."""
    problems = []
    name = stub.name
    runtime = runtime_members(cls)

    def allowed(member, check):
        return (name, member, check) in ALLOWED

    for member in sorted(set(runtime) - set(stub.members)):
        if member in OBJECT_IN_TYPESHED or allowed(member, "runtime-only"):
            continue
        problems.append(f"{name}.{member} exists at run time but not in the stub")
    for member in sorted(set(stub.members) - {"__init__"}):
        if not hasattr(cls, member) and not allowed(member, "stub-only"):
            problems.append(f"{name}.{member} is in the stub but not at run time")
        elif allowed(member, "stub-only") and class_attribute(cls, member) is not None:
            problems.append(f"{name}.{member} is allowed as stub-only but exists at run time: drop it from ALLOWED")

    if allowed("__hash__", "stub-only"):
        pass  # hashable where the object is (see ALLOWED)
    elif (cls.__hash__ is None) != (getattr(stub.members.get("__hash__"), "kind", None) == "none"):
        problems.append(f"{name}: hashable at run time: {cls.__hash__ is not None}; the stub says "
                        f"{'__hash__: None' if '__hash__' in stub.members else 'hashable (object)'}")

    instance = make_instance(cls)
    for member, info in sorted(stub.members.items()):
        if member == "__init__" or class_attribute(cls, member) is None or info.kind == "none":
            continue
        static = inspect.getattr_static(cls, member)
        if info.kind in ("property", "attribute"):
            if not inspect.isdatadescriptor(static):
                problems.append(f"{name}.{member} is a {info.kind} in the stub, {type(static).__name__} at run time")
            elif is_writable(instance, member) != info.writable:
                problems.append(f"{name}.{member}: writable at run time: {not info.writable}; in the stub: {info.writable}")
            continue
        if inspect.isdatadescriptor(static) or not callable(getattr(cls, member)):
            problems.append(f"{name}.{member} is a method in the stub, {type(static).__name__} at run time")
            continue
        signature = runtime_signature(cls, member)
        if signature is not None and not allowed(member, "signature"):
            problems += compare_signatures(f"{name}.{member}", info.signatures, signature,
                                           positional_only=is_dunder(member))

    constructor = stub.members.get("__init__")
    try:
        runtime_init = inspect.signature(cls)
    except (ValueError, TypeError):
        runtime_init = None
    if constructor is None:
        problems.append(f"{name}: the stub has no __init__")
    elif runtime_init is not None:
        problems += compare_signatures(f"{name}()", constructor.signatures, runtime_init, positional_only=False)

    generic = is_generic_at_runtime(cls, stub.type_params)
    if bool(stub.type_params) != generic:
        problems.append(f"{name}: Generic in the stub: {bool(stub.type_params)}; "
                        f"subscriptable at run time ({name}[int] a types.GenericAlias): {generic}")
    return problems


# ---- the tests ----------------------------------------------------------------------------

@pytest.mark.parametrize("class_name", _backend.PUBLIC_NAMES)
def test_stub_matches_runtime(backend, class_name):
    cls = getattr(backend, class_name)
    problems = mismatches(cls, stub_class(class_name))
    assert not problems, f"{len(problems)} difference(s) between the stub and {backend.__name__}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("module_name", sorted(STUB_FILES))
def test_stub_module_names_match_runtime(module_name):
    module = {"ft_utils.concurrency": ft_utils.concurrency, "ft_utils.local": ft_utils.local}[module_name]
    classes, names = STUBS[module_name]
    assert names == set(module.__all__)
    for class_name, stub in classes.items():  # e.g. ShutDown: its bases
        runtime = getattr(module, class_name)
        assert isinstance(runtime, type)
        for base in stub.bases:
            assert issubclass(runtime, eval(base, vars(module))), (class_name, base)


def test_allowed_differences_hold(backend):
    """What ALLOWED says about the runtime is so."""
    d = backend.ConcurrentDict()
    for op in ("<", "<=", ">", ">="):
        with pytest.raises(TypeError):
            eval(f"d {op} d")
    assert backend.LocalWrapper([1]).append  # attributes are forwarded (__getattr__ in the stub)
    for class_name, _, check in ALLOWED:
        assert class_name in _backend.PUBLIC_NAMES and check in ("runtime-only", "stub-only", "signature")


# Objects whose wrappers have, between them, every special method the stub declares on
# LocalWrapper beyond the base class.
class _Bytes:
    def __bytes__(self):
        return b"x"


PROFILE_SAMPLES = [lambda: 1, lambda: 1.5, lambda: [1], lambda: iter([1]), _Bytes, lambda: open(os.devnull),
                   lambda: print]


def test_profile_methods_exist_on_the_subclass(backend):
    """Each stub-only LocalWrapper method is on the class of some wrapper (and the wrapped
    object has it): the stub promises nothing no wrapper can do."""
    profiled = {member for (name, member, check), reason in ALLOWED.items()
                if name == "LocalWrapper" and check == "stub-only" and "type(obj) has it" in reason}
    found = set()
    for make in PROFILE_SAMPLES:
        obj = make()
        wrapper_type = type(backend.LocalWrapper(obj))
        for member in profiled:
            if getattr(type(obj), member, None) is not None:
                assert getattr(wrapper_type, member, None) is not None, (type(obj).__name__, member)
                found.add(member)
        if hasattr(obj, "close"):
            obj.close()
    assert found == profiled, f"no sample shows {sorted(profiled - found)}"


def test_stub_checker_sees_differences(backend):
    """The checker itself: a stub that lost a method, gained one, changed a signature or
    its genericity is reported."""
    source = STUB_FILES["ft_utils.concurrency"].read_text()
    node = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == "ConcurrentQueue")
    cls = backend.ConcurrentQueue
    assert mismatches(cls, StubClass(node)) == mismatches(cls, stub_class("ConcurrentQueue"))
    edits = {
        "lost": lambda body: [n for n in body if getattr(n, "name", None) != "size"],
        "gained": lambda body: body + ast.parse("def frobnicate(self) -> None: ...").body,
        "renamed keyword": lambda body: [ast.parse("def pop(self, /, wait: float | None = None) -> _T: ...").body[0]
                                         if getattr(n, "name", None) == "pop" else n for n in body],
        "extra argument": lambda body: [ast.parse("def push(self, value: _T, block: bool, /) -> None: ...").body[0]
                                        if getattr(n, "name", None) == "push" else n for n in body],
    }
    for label, edit in edits.items():
        changed = ast.parse(source)
        target = next(n for n in changed.body if isinstance(n, ast.ClassDef) and n.name == "ConcurrentQueue")
        target.body = edit(target.body)
        assert len(mismatches(cls, StubClass(target))) > len(mismatches(cls, stub_class("ConcurrentQueue"))), label

    def generic_problems(stub):
        return [p for p in mismatches(cls, stub) if "Generic" in p]

    flipped = StubClass(node)
    flipped.type_params = 0 if flipped.type_params else 1
    assert bool(generic_problems(flipped)) != bool(generic_problems(stub_class("ConcurrentQueue")))


# ---- mypy ---------------------------------------------------------------------------------

def expected_errors(path):
    """{(line, code)} of the lines of a sample whose comment is "E: code"."""
    found = set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        match = re.search(r"#\s*E:\s*([\w-]+)", line)
        if match:
            found.add((number, match.group(1)))
    return found


def test_mypy_strict_on_user_code(tmp_path):
    """mypy --strict accepts typical user code, reports each marked line of the error
    sample with the marked code, and reports nothing else (in the stubs neither)."""
    try:
        import mypy  # noqa: F401
    except ImportError:
        pytest.fail("mypy is not installed: it is one of the test tools (scripts/bootstrap.sh installs it)")
    config = tmp_path / "mypy.ini"
    # Like an installed package: the implementation modules (ft_utils/__init__.py,
    # _backend.py) are followed silently; the stubs are checked as sources below.
    config.write_text("[mypy]\nstrict = True\n\n[mypy-ft_utils.*]\nfollow_imports = silent\n")
    tag = sys.implementation.cache_tag + getattr(sys, "abiflags", "")
    cache = ROOT / "build" / "mypy-cache" / tag  # warm after the first run on this interpreter
    good, bad = SAMPLES / "user_code.py", SAMPLES / "type_errors.py"
    command = [sys.executable, "-m", "mypy", "--config-file", str(config), "--cache-dir", str(cache),
               "--no-color-output", "--no-error-summary", "--show-error-codes", "--hide-error-context",
               str(good), str(bad), *(str(p) for p in STUB_FILES.values())]
    env = dict(os.environ, MYPYPATH=str(ROOT))
    result = subprocess.run(command, capture_output=True, text=True, cwd=str(ROOT), env=env, timeout=600)
    # 1: errors found (the error sample has some); 0 would mean it found none, 2 that
    # mypy itself failed.
    assert result.returncode == 1 and not result.stderr, result.stdout + result.stderr
    reported = set()
    other = []
    for line in result.stdout.splitlines():
        match = re.match(r"(.+?):(\d+): error: .*\[([\w-]+)\]$", line)
        if match and Path(match.group(1)).name == bad.name:
            reported.add((int(match.group(2)), match.group(3)))
        elif ": error:" in line:
            other.append(line)
    assert not other, "mypy --strict reports errors outside the error sample:\n" + "\n".join(other)
    expected = expected_errors(bad)
    assert len(expected) >= 5
    assert reported == expected, (
        f"missed: {sorted(expected - reported)}, unexpected: {sorted(reported - expected)}\n{result.stdout}")


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_user_code_runs(backend_name):
    """The sample mypy accepts also runs: its module-level annotations subscript the
    generic classes, which the runtime must allow."""
    env = dict(os.environ, FT_UTILS_BACKEND=backend_name)
    result = subprocess.run([sys.executable, str(SAMPLES / "user_code.py")], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ok {backend_name}"
