"""environment.yml (conda) must pin exactly what requirements.txt pins, plus the package itself."""

import re
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
