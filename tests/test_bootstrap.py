"""scripts/bootstrap.sh on a machine whose python3 lacks what stock Debian ships apart.

On stock Debian, python3's venv support and its C headers are the separate packages
python3.X-venv and python3.X-dev (python3-venv, python3-dev), pypy3's pypy3-venv and
pypy3-dev. The script must see what the interpreter lacks and install those packages when
the interpreter is Debian's, and say clearly what is missing when it is not.

Each case runs a copy of the script in a temporary directory (its venvs land there) with
apt-get and dpkg-query replaced by stubs on PATH, and a python3 that cannot make a venv
and hides its headers: nothing on the machine is installed or changed.
"""

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEBIAN_PYTHON = Path("/usr/bin/python3")


def dpkg_owner(path):
    result = subprocess.run(["dpkg-query", "-S", os.path.realpath(path)], capture_output=True, text=True)
    return result.stdout.split(":")[0] if result.returncode == 0 else None


pytestmark = pytest.mark.skipif(
    shutil.which("dpkg-query") is None or not DEBIAN_PYTHON.exists() or dpkg_owner(DEBIAN_PYTHON) is None,
    reason="needs Debian's dpkg and its python3",
)


def write(path, text, executable=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    if executable:
        path.chmod(0o755)


@pytest.fixture
def machine(tmp_path):
    """A copy of the script, stubs for apt-get and dpkg-query, and a python3 (wrapping a
    given interpreter) that has no headers and cannot make a venv."""
    shutil.copytree(ROOT / "scripts", tmp_path / "tree" / "scripts")
    apt_log = tmp_path / "apt.log"
    stubs = tmp_path / "stubs"
    # dpkg-query -W says the packages in FAKE_MISSING are not installed; anything else is
    # asked of the real one (dpkg -S finds the interpreter's package).
    write(stubs / "dpkg-query", f"""
        #!/bin/bash
        if [ "$1" = -W ]; then
            for a in "$@"; do case " $FAKE_MISSING " in *" $a "*) echo "unknown ok not-installed"; exit 1;; esac; done
        fi
        exec {shutil.which("dpkg-query")} "$@"
        """, executable=True)
    write(stubs / "apt-get", f"""
        #!/bin/bash
        echo "apt-get $*" >> {apt_log}
        """, executable=True)
    write(tmp_path / "site" / "sitecustomize.py", """
        import sysconfig
        _get_paths = sysconfig.get_paths
        def get_paths(*args, **kwargs):
            paths = _get_paths(*args, **kwargs)
            paths["include"] = "/nonexistent/include"  # no Python.h: as without python3-dev
            return paths
        sysconfig.get_paths = get_paths
        """)

    def fake_python(real):
        write(tmp_path / "bin" / "python3", f"""
            #!/bin/bash
            # no ensurepip, as without python3-venv
            case " $* " in *" -m venv "*) echo "ensurepip is not available" >&2; exit 1;; esac
            PYTHONPATH={tmp_path / "site"} exec {real} "$@"
            """, executable=True)

    def run(name, path=None, missing=""):
        env = dict(os.environ, FAKE_MISSING=missing,
                   PATH=path or f"{stubs}:{tmp_path / 'bin'}:{os.environ['PATH']}")
        result = subprocess.run(["bash", str(tmp_path / "tree" / "scripts" / "bootstrap.sh"), name],
                                capture_output=True, text=True, env=env, timeout=300)
        installs = [line.split()[4:] for line in (apt_log.read_text().splitlines() if apt_log.exists() else [])
                    if line.startswith("apt-get install")]
        return result, installs

    machine = type("Machine", (), {})()
    machine.tmp, machine.stubs, machine.fake_python, machine.run = tmp_path, stubs, fake_python, run
    return machine


def test_debian_python3_lacking_venv_and_headers_gets_them(machine):
    machine.fake_python(DEBIAN_PYTHON)
    owner = dpkg_owner(DEBIAN_PYTHON)  # python3.11-minimal
    base = owner[: -len("-minimal")] if owner.endswith("-minimal") else owner
    result, installs = machine.run("gil", missing=f"{base}-venv {base}-dev")
    assert [f"{base}-dev", f"{base}-venv"] in installs, (installs, result.stderr)
    # The stub installed nothing, so the script must stop and say so rather than go on.
    assert result.returncode != 0 and "still will not do" in result.stderr, result.stderr
    assert not (machine.tmp / "tree" / ".venv" / "gil").exists()


def test_other_python3_lacking_them_is_a_clear_error(machine):
    # A copy of an interpreter outside any Debian package, as pyenv's or a source build.
    copy = machine.tmp / "other"
    subprocess.run([str(DEBIAN_PYTHON), "-m", "venv", "--without-pip", "--copies", str(copy)], check=True)
    assert dpkg_owner(copy / "bin" / "python3") is None
    machine.fake_python(copy / "bin" / "python3")
    result, installs = machine.run("gil")
    assert result.returncode != 0 and not installs, (installs, result.stderr)
    for words in ("not an interpreter of a Debian package", "no C headers", "virtual environment with pip"):
        assert words in result.stderr, result.stderr


@pytest.mark.parametrize("name, packages", [("gil", ["python3", "python3-venv", "python3-dev"]),
                                            ("pypy", ["pypy3", "pypy3-venv", "pypy3-dev"])])
def test_no_interpreter_installs_debians_with_venv_and_headers(machine, name, packages):
    tools = machine.tmp / "tools"  # a PATH with the script's tools and no python3 or pypy3
    tools.mkdir()
    for tool in ("bash", "dirname", "grep", "head", "cut", "sed", "tail", "mktemp", "rm", "cat", "env", "touch"):
        found = shutil.which(tool)
        if found:
            (tools / tool).symlink_to(found)
    result, installs = machine.run(name, path=f"{machine.stubs}:{tools}", missing=" ".join(packages))
    assert packages in installs, (installs, result.stderr)
    assert result.returncode != 0 and "no interpreter" in result.stderr, result.stderr
