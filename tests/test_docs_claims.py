"""What the user documentation says that its examples cannot check.

The pages are read by people who installed the package: they have no spec, and no csrc/
or tests/ directory unless they fetch the source tree. On PyPy nothing is freed the moment
it is let go of, so a sentence that promises a release must say when that happens there.
And each class lives where the pages say (tests/test_docs.py runs their examples).

docs/guarantees.md is the one page whose purpose is to cite tests: it may name tests/ paths
once it has said, near its top, that the tests are in the source tree, and every test it
cites must exist, so that its links cannot rot.
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


GUARANTEES = ROOT / "docs" / "guarantees.md"
TOP_LINES = 12  # "near its top": where guarantees.md must say that the tests are in the source tree


def cites_tests_from_the_source_tree(page):
    """True for the page that cites tests (guarantees.md) when, within its first lines, it
    says that they are in the source tree."""
    if page.name != GUARANTEES.name:
        return False
    top = " ".join(line for number, line in prose(page) if number <= TOP_LINES)
    return "source tree" in top and "tests/" in top


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_spec_and_no_repository_paths(page):
    problems = []
    tests_allowed = cites_tests_from_the_source_tree(page)
    for number, line in prose(page):
        if re.search(r"\bthe spec\b|\bspec's\b|\bspec of\b", line, re.IGNORECASE):
            problems.append(f"{page.name}:{number}: refers to a spec users do not have: {line.strip()}")
        for path in re.findall(r"\b(?:csrc|tests)/[\w./]*", line):
            if tests_allowed and path.startswith("tests/"):
                continue
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


# A cited test: a Markdown link whose text is the test's name and whose target is its file,
# [test_name](../tests/test_file.py), or a pytest node id, tests/test_file.py::test_name[id].
# A C test of the core is cited the same way (tests/c/test_queue.c and its function).
LINK = re.compile(r"\[`?(?P<name>\w+)(?:\[[^\]]*\])?`?\]\(\.\./(?P<file>tests/[\w/]+\.(?:py|c))(?:#[^)]*)?\)")
NODE = re.compile(r"\b(?P<file>tests/[\w/]+\.(?:py|c))::(?P<name>\w+)(?:\[[^\]]*\])?")
PENDING = re.compile(r"<!-- link: [\w-]+ -->")  # a test still being written elsewhere


def cited_tests(page):
    """(line number, file, test name) of every test the page cites."""
    for number, line in prose(page):
        for pattern in (LINK, NODE):
            for match in pattern.finditer(line):
                yield number, match.group("file"), match.group("name")


def defines(path, name):
    text = path.read_text()
    if path.suffix == ".py":
        return re.search(rf"^\s*def {name}\(", text, re.MULTILINE) is not None
    return re.search(rf"^(?:static )?(?:void|int) {name}\(", text, re.MULTILINE) is not None


def test_guarantees_page_cites_from_the_source_tree():
    assert cites_tests_from_the_source_tree(GUARANTEES), (
        f"guarantees.md must say within its first {TOP_LINES} lines that the tests it cites "
        "(tests/...) are in the source tree")


def test_every_test_cited_in_guarantees_exists():
    citations = list(cited_tests(GUARANTEES))
    assert len(citations) >= 50, "guarantees.md cites its tests as [test_name](../tests/test_file.py)"
    problems = []
    for number, file, name in citations:
        path = ROOT / file
        if not path.is_file():
            problems.append(f"guarantees.md:{number}: {file} does not exist")
        elif not defines(path, name):
            problems.append(f"guarantees.md:{number}: {file} defines no test {name}")
    assert not problems, "\n".join(problems)


def test_every_guarantee_in_a_table_cites_a_test():
    """Each row of guarantees.md's tables is a statement: it names at least one test, or
    says with an HTML comment which test still being written will show it."""
    problems = []
    for number, line in prose(GUARANTEES):
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or set("".join(cells)) <= set("-: ") or cells[-1] == "shown by":
            continue
        if not (LINK.search(line) or NODE.search(line) or PENDING.search(line)):
            problems.append(f"guarantees.md:{number}: no test cited: {line.strip()[:100]}")
    assert not problems, "\n".join(problems)
