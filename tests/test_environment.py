"""environment.yml (conda) must pin exactly what requirements.txt pins, plus the package itself;
the Makefile refuses a Python older than pyproject.toml's requires-python in one line."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def requirement_lines(text: str) -> list[str]:
    """Non-empty, non-comment lines of a requirements file, inline comments removed."""
    lines = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def environment_pip_lines(text: str) -> list[str]:
    """The items under ``- pip:`` in a conda environment file (a small line parser, no yaml)."""
    items, indent = [], None
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        depth = len(raw) - len(raw.lstrip())
        if indent is None:
            if re.fullmatch(r"-\s*pip\s*:", raw.strip()):
                indent = depth
            continue
        if depth <= indent:
            break
        match = re.fullmatch(r"-\s+(.+?)(\s+#.*)?", raw.strip())
        assert match, f"unexpected line in the pip section: {raw!r}"
        items.append(match.group(1).strip().strip("'\""))
    assert indent is not None, "environment.yml has no '- pip:' section"
    return items


def test_pip_pins_match_requirements():
    requirements = requirement_lines((ROOT / "requirements.txt").read_text())
    pip_items = environment_pip_lines((ROOT / "environment.yml").read_text())
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[^=\s]+", r) for r in requirements), requirements
    assert "-e ." in pip_items
    assert [i for i in pip_items if i != "-e ."] == requirements


def test_environment_header():
    text = (ROOT / "environment.yml").read_text()
    assert re.search(r"^name:\s*seqmnist\s*$", text, re.M)
    assert re.search(r"^\s*-\s*python=3\.11\s*$", text, re.M)
    assert re.search(r"^\s*-\s*pip\s*$", text, re.M)


def test_yaml_agrees_with_line_parser():
    yaml = pytest.importorskip("yaml")
    text = (ROOT / "environment.yml").read_text()
    spec = yaml.safe_load(text)
    assert spec["name"] == "seqmnist"
    pip = [d for d in spec["dependencies"] if isinstance(d, dict)]
    assert len(pip) == 1 and pip[0]["pip"] == environment_pip_lines(text)


def fake_python(path: Path, version: tuple) -> Path:
    """An interpreter that reports ``version``: it runs ``-c CODE`` on this one with
    sys.version_info replaced, and refuses anything else (venv, pip) with exit status 99."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""#!/bin/sh
[ "$1" = "-c" ] || {{ echo "fake python: refused $*" >&2; exit 99; }}
exec "{sys.executable}" -c "import sys; sys.version_info = {version + ('final', 0)}; exec(sys.argv[1])" "$2"
""")
    path.chmod(0o755)
    return path


def make_setup(tmp_path, *args):
    """``make setup`` in ``tmp_path``, on a copy of the files its set-up rule reads."""
    for name in ("Makefile", "requirements.txt", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(["make", "--no-print-directory", "-C", str(tmp_path), *args, "setup"],
                          capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.requires_programs("make")
def test_make_refuses_an_old_python_before_making_the_venv(tmp_path):
    old = fake_python(tmp_path / "bin" / "python3", (3, 10, 12))
    done = make_setup(tmp_path, f"PYTHON={old}")
    assert done.returncode != 0
    assert done.stderr.splitlines()[0] == (
        f"error: seqmnist needs Python >= 3.11; found 3.10.12 at {old} (set PYTHON=...)")
    assert not (tmp_path / ".venv").exists()
    missing = make_setup(tmp_path, f"PYTHON={tmp_path / 'none'}")
    assert missing.returncode != 0
    assert f"found no Python at {tmp_path / 'none'} (set PYTHON=...)" in missing.stderr


@pytest.mark.requires_programs("make")
def test_make_refuses_an_old_venv_and_lets_a_new_python_through(tmp_path):
    fake_python(tmp_path / ".venv" / "bin" / "python", (3, 10, 12))  # left by an earlier attempt
    done = make_setup(tmp_path)
    assert done.returncode != 0
    assert "found 3.10.12 at .venv/bin/python (delete .venv and set PYTHON=...)" in done.stderr
    assert "refused" not in done.stderr  # stopped before pip
    shutil.rmtree(tmp_path / ".venv")
    new = fake_python(tmp_path / "bin" / "python3", (3, 11, 0))
    done = make_setup(tmp_path, f"PYTHON={new}")
    assert "error: seqmnist needs" not in done.stderr
    assert "fake python: refused -m venv .venv" in done.stderr  # on to making the venv
