"""The docstrings and signatures of the public API: one source for both backends.

The cffi classes take their ``__doc__`` from here at import time; ``setup.py`` turns
this table into ``ftu_docstrings.h`` for the native extension, with the signature in
CPython's ``__text_signature__`` form. The parity test checks both backends against it.

Keys are ``"Class"`` (the signature is the constructor's) and ``"Class.method"``.
"""

DOCSTRINGS: dict[str, tuple[str, str]] = {
    # ---- AtomicInt64 ------------------------------------------------------------------
    "AtomicInt64": (
        "(value=0)",
        "A signed 64-bit integer that threads can read and update atomically.\n\n"
        "Every method and in-place operator is one atomic step. A value or result\n"
        "outside [-2**63, 2**63 - 1] raises OverflowError and leaves the stored value\n"
        "unchanged. Non-in-place operators return plain ints.",
    ),
    "AtomicInt64.get": ("(self, /)", "Return the current value."),
    "AtomicInt64.set": ("(self, value, /)", "Store value (an integer in the int64 range)."),
    "AtomicInt64.incr": ("(self, /)", "Add 1 atomically and return the new value."),
    "AtomicInt64.decr": ("(self, /)", "Subtract 1 atomically and return the new value."),
    "AtomicInt64.add": ("(self, value, /)", "Add value atomically and return the new value."),
    "AtomicInt64.exchange": ("(self, value, /)", "Store value atomically and return the previous value."),
    "AtomicInt64.compare_exchange": (
        "(self, expected, value, /)",
        "If the current value equals expected, replace it with value.\n\n"
        "Atomic. Return True if the value was replaced, False otherwise.",
    ),
    # ---- AtomicReference --------------------------------------------------------------
    "AtomicReference": (
        "(obj=None)",
        "A reference to an object that threads can read and replace atomically.",
    ),
    "AtomicReference.get": ("(self, /)", "Return the current object."),
    "AtomicReference.set": ("(self, obj, /)", "Replace the current object with obj."),
    "AtomicReference.exchange": (
        "(self, obj, /)",
        "Replace the current object with obj atomically and return the previous one.",
    ),
    "AtomicReference.compare_exchange": (
        "(self, expected, obj, /)",
        "If the current object is expected (identity, not ==), replace it with obj.\n\n"
        "Atomic. Return True if the object was replaced, False otherwise.",
    ),
    # ---- AtomicFlag -------------------------------------------------------------------
    "AtomicFlag": (
        "(value=False)",
        "A boolean flag that threads can read and set atomically.\n\n"
        "bool(flag) reads it; set(value) stores the truth value of value.",
    ),
    "AtomicFlag.set": ("(self, value, /)", "Store the truth value of value."),
}


def doc(key: str) -> str:
    """The docstring for key, as Python code shows it."""
    return DOCSTRINGS[key][1]


def c_docstring(key: str) -> str:
    """The docstring for key with CPython's text signature prefix, for C types."""
    signature, text = DOCSTRINGS[key]
    name = key.rsplit(".", 1)[-1]
    if "." in key:
        signature = signature.replace("(self", "($self", 1)
    return f"{name}{signature}\n--\n\n{text}"
