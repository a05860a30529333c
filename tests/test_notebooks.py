"""Every notebook executes under papermill in quick mode, and stops at its first cell on a
parameter of the wrong type."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from papermill import execute_notebook
from papermill.exceptions import PapermillExecutionError

from seqmnist.errors import SeqMnistError

ROOT = Path(__file__).resolve().parents[1]
TASK_NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
CACHED_NOTEBOOKS = ("prediction", "inpainting")  # those with a use_cache parameter


@pytest.fixture(autouse=True)
def venv_python_first(monkeypatch):
    """The `python3` kernel spec runs plain `python`: make that this interpreter."""
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def run(path, tmp_path, **parameters):
    return execute_notebook(str(path), str(tmp_path / f"{path.stem}.out.ipynb"),
                            parameters=parameters, kernel_name="python3", progress_bar=False,
                            cwd=str(ROOT))


@pytest.mark.parametrize("name", TASK_NOTEBOOKS + ["report"])
def test_committed_without_outputs_and_with_parameters(name):
    path = ROOT / "report.ipynb" if name == "report" else ROOT / "notebooks" / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


@pytest.fixture(scope="module")
def quick_build(tmp_path_factory):
    """Every task notebook in quick mode, then the report over their outputs."""
    build = tmp_path_factory.mktemp("build")
    executed = {}
    for name in TASK_NOTEBOOKS:
        extra = {"use_cache": False} if name in CACHED_NOTEBOOKS else {}  # compute, not recall
        executed[name] = run(ROOT / "notebooks" / f"{name}.ipynb", build, quick=True,
                             output_dir=str(build / name), **extra)
    executed["report"] = run(ROOT / "report.ipynb", build, build_dir=str(build))
    return build, executed


@pytest.mark.parametrize("name", TASK_NOTEBOOKS + ["report"])
def test_notebook_runs_in_quick_mode(quick_build, name):
    build, executed = quick_build
    cells = executed[name].cells
    assert not any(o.get("output_type") == "error" for c in cells for o in c.get("outputs", []))
    if name != "report":
        manifest = json.loads((build / name / "manifest.json").read_text())
        assert manifest["items"], f"{name} produced no tables or figures"


def test_theory_results(quick_build):
    build, _ = quick_build
    results = json.loads((build / "theory" / "theory_results.json").read_text())
    assert results["q2"]["lstm"]["max_drift"] < 1e-3
    counter = results["q3_counterexample"]["rows"][-1]
    assert counter["fit_max_abs"] >= counter["bound_max_abs"] > 0.2


def test_report_collects_the_tables(quick_build):
    build, executed = quick_build
    text = "\n".join(o.get("data", {}).get("text/markdown", "") for c in executed["report"].cells
                     for o in c.get("outputs", []))
    assert "Testing Accuracy" in text and "no output named" not in text


@pytest.mark.parametrize("name", TASK_NOTEBOOKS)
def test_wrong_type_parameter_stops_at_the_check(tmp_path, name):
    with pytest.raises(PapermillExecutionError) as info:
        run(ROOT / "notebooks" / f"{name}.ipynb", tmp_path, seed="x",
            output_dir=str(tmp_path / "never"))
    assert info.value.ename == "ConfigError"
    assert "notebook parameter 'seed' must be int, got str 'x'" in info.value.evalue
    assert info.value.exec_count <= 3  # papermill injects a parameters cell after the tagged one
    assert not (tmp_path / "never").exists()


@pytest.mark.requires_programs("xelatex", "pandoc", "pdftotext")
def test_report_converts_to_pdf_with_its_tables(quick_build, tmp_path):
    from seqmnist.report import convert

    build, executed = quick_build
    source = tmp_path / "report.ipynb"
    nbformat.write(executed["report"], source)
    pdf = convert(source, "pdf", tmp_path)
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Testing Accuracy" in text and "Training Loss" in text


def table_notebook():
    """One code cell whose outputs are a captioned Markdown table (header, rule, 2 rows), then
    Markdown without a table."""
    table = "**A caption**\n\n| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n"
    cell = nbformat.v4.new_code_cell("", outputs=[
        nbformat.v4.new_output("display_data", {"text/markdown": table}),
        nbformat.v4.new_output("display_data", {"text/markdown": "*no table here*"})])
    return nbformat.v4.new_notebook(cells=[cell])


def keep_markdown(source, from_format, to_format, extra_args=None):
    """Stands in for nbconvert's ``convert_pandoc`` filter: the Markdown as it is, so the
    template's rule is tested where pandoc is not installed."""
    return source


def test_latex_asks_room_for_each_table_before_it_starts(tmp_path):
    """templates/report: a Markdown output with a table first makes sure that its caption and
    rows fit on the page (a new page if not); other outputs are left alone."""
    from seqmnist.report import convert, latex_exporter

    exporter = latex_exporter(filters={"convert_pandoc": keep_markdown}, exclude_input=True)
    tex, _ = exporter.from_notebook_node(table_notebook())
    assert "\\newcommand{\\seqmnistneedlines}" in tex
    assert tex.count("\\seqmnistneedlines{") == 1  # the one table
    needs = tex.index("\\seqmnistneedlines{8}")  # header, rule, 2 rows (4 lines) and 4 spare
    assert needs < tex.index("A caption") < tex.index("| 3 | 4 |") < tex.index("no table here")
    with pytest.raises(SeqMnistError, match="cannot convert to 'docx'"):
        convert(tmp_path / "tables.ipynb", "docx", tmp_path)


@pytest.mark.requires_programs("pandoc")
def test_latex_through_pandoc_asks_room_before_the_longtable(tmp_path):
    """The same rule on nbconvert's command line (``report.convert``), with pandoc's table."""
    from seqmnist.report import convert

    source = tmp_path / "tables.ipynb"
    nbformat.write(table_notebook(), source)
    tex = convert(source, "latex", tmp_path).read_text()
    assert tex.count("\\seqmnistneedlines{") == 1
    needs = tex.index("\\seqmnistneedlines{8}")
    assert needs < tex.index("A caption") < tex.index("\\begin{longtable}")
