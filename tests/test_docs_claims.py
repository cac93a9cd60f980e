"""What the user documentation says that its examples cannot check.

The pages are read by people who installed the package: they have no spec, and no csrc/
or tests/ directory unless they fetch the source tree. On PyPy nothing is freed the moment
it is let go of, so a sentence that promises a release must say when that happens there.
And each class lives where the pages say (tests/test_docs.py runs their examples).
"""

import re
from pathlib import Path

import pytest

from ft_utils import _backend

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").glob("*.md"))


def prose(page):
    """The page's lines outside code fences, with their numbers."""
    inside = False
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if line.startswith("```"):
            inside = not inside
        elif not inside:
            yield number, line


def sentences(page):
    text = " ".join(line.strip() or "\n" for _, line in prose(page))
    return [s.strip() for paragraph in text.split("\n") for s in re.split(r"(?<=[.!?])\s+(?=[A-Z`(])", paragraph)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_spec_and_no_repository_paths(page):
    problems = []
    for number, line in prose(page):
        if re.search(r"\bthe spec\b|\bspec's\b|\bspec of\b", line, re.IGNORECASE):
            problems.append(f"{page.name}:{number}: refers to a spec users do not have: {line.strip()}")
        for path in re.findall(r"\b(?:csrc|tests)/[\w./]*", line):
            if "source tree" not in line:
                problems.append(f"{page.name}:{number}: {path} is not in an installed package "
                                f"(say it is in the source tree, or leave it out)")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_release_promises_say_what_pypy_does(page):
    promises = [s for s in sentences(page)
                if re.search(r"\breleased\b", s) and re.search(r"\b(removed|shutdown|dropped)\b", s)]
    vague = [s for s in promises if "PyPy" not in s]
    assert not vague, f"{page.name}: on PyPy values are freed at the next collection; say so in:\n" + "\n".join(vague)


def test_backends_page_names_the_module_of_every_class():
    first_paragraph = (ROOT / "docs" / "backends.md").read_text().split("\n\n")[1]
    for name, module in _backend.PUBLIC_MODULES.items():
        assert f"`{module}`" in first_paragraph, (name, module)
    assert "`LocalWrapper`" in first_paragraph
