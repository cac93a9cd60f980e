"""python -m ft_utils.bench runs and prints what docs/benchmarks.md describes (a quick
smoke run of the small suites; the figures themselves are not checked here)."""

import re

import pytest

from ft_utils.bench.__main__ import main


@pytest.mark.parametrize("suite", ["atomics", "dicts"])
def test_suite_prints_machine_line_and_ratios(suite, capsys):
    assert main(["--only", suite, "--repeats", "2", "--ops", "300", "--threads", "1,2"]) == 0
    out = capsys.readouterr().out
    # one probe before each of the 2 repeats and one after the last
    machine = re.search(rf"^{suite}: machine: a cache line moves between two CPUs in ((?:\d+ ?)+) ns", out, re.M)
    assert machine, out
    assert len(machine.group(1).split()) == 3
    assert re.search(r"\d+\.\d\dx ", out), out  # ratios against the baselines


def test_bad_arguments_are_usage_errors(capsys):
    with pytest.raises(SystemExit):
        main(["--repeats", "0"])
    with pytest.raises(SystemExit):
        main(["--threads", "1,x"])
    assert "must be" in capsys.readouterr().err
