"""Builds ft_utils._cffi, the cffi out-of-line (API mode) module, from the C core.

The cdef is read from the public header csrc/ftu.h (the block between FTU_CDEF_BEGIN and
FTU_CDEF_END), so the prototypes are never copied by hand. setup.py uses ``ffibuilder``
through ``cffi_modules``; ``python cffi_build.py`` builds the module in place.
"""

import os
import re
from pathlib import Path

import cffi

ROOT = Path(__file__).resolve().parent
HEADER = ROOT / "csrc" / "ftu.h"


def read_cdef(header: Path = HEADER) -> str:
    text = header.read_text()
    match = re.search(r"/\* FTU_CDEF_BEGIN \*/(.*?)/\* FTU_CDEF_END \*/", text, re.S)
    if match is None:
        raise RuntimeError(f"{header}: no FTU_CDEF_BEGIN ... FTU_CDEF_END block")
    return match.group(1)


def _relative(path: str) -> str:
    # setuptools wants source paths relative to the project root.
    return os.path.relpath(ROOT / path, os.getcwd())


ffibuilder = cffi.FFI()
ffibuilder.cdef(read_cdef())
ffibuilder.set_source(
    "ft_utils._cffi",
    '#include "ftu.h"',
    sources=[_relative(str(p.relative_to(ROOT))) for p in sorted((ROOT / "csrc").glob("*.c"))],
    include_dirs=[_relative("csrc")],
    extra_compile_args=["-std=c11"],
    # A per-interpreter file name (not .abi3.so), so that the three test interpreters can
    # share one editable checkout without loading each other's module.
    py_limited_api=False,
)

if __name__ == "__main__":
    os.chdir(ROOT)
    ffibuilder.compile(verbose=True)
