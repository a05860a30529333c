"""``make report``: data, cached evaluation, the four task notebooks and report.ipynb executed
headless with papermill, then HTML and PDF with nbconvert, all into the git-ignored build folder.

The task notebooks' tables and figures for the report go to ``build/report/<notebook>/``
(``outputs_dir``), where report.ipynb reads them: a notebook run by hand writes to its own default,
``build/<notebook>/``, and cannot replace the report's outputs with quick or interactive ones.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .data import load_mnist
from .errors import SeqMnistError
from .masks import prepare_inpainting_sets
from .paths import ROOT, build_dir

NOTEBOOKS = ("theory", "classification", "prediction", "inpainting")
TEX_PACKAGES = ("texlive-xetex", "texlive-fonts-recommended", "texlive-plain-generic", "pandoc")
TEMPLATES = Path(__file__).parent / "templates"
REPORT_TEMPLATE = "report"  # templates/report: nbconvert's LaTeX template plus a rule per table
OUTPUTS = "report"  # the report's own folder of the task notebooks' outputs, under build/


def outputs_dir(out: Path | None = None) -> Path:
    """Where ``build`` has the task notebooks write what report.ipynb collects."""
    return (Path(out) if out is not None else build_dir()) / OUTPUTS


def notebook_parameters(name: str, out: Path | None = None, quick: bool = False) -> dict:
    """The papermill parameters ``build`` runs task notebook ``name`` with."""
    return {"quick": quick, "output_dir": str(outputs_dir(out) / name)}


def report_parameters(out: Path | None = None) -> dict:
    """report.ipynb's: the folder the task notebooks wrote to."""
    return {"build_dir": str(outputs_dir(out))}


def _stage(message: str, started: float) -> None:
    print(f"[report {time.time() - started:6.1f}s] {message}", flush=True)


def execute_notebook(source: Path, target: Path, parameters: dict) -> None:
    """Run one notebook with papermill (the kernel is this interpreter's own ``python3``)."""
    import papermill

    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(str(source), str(target), parameters=parameters,
                                   kernel_name="python3", progress_bar=False, cwd=str(ROOT))
    except papermill.PapermillExecutionError as error:
        raise SeqMnistError(f"{source.name} failed in cell {error.exec_count}: {error.ename}: "
                            f"{error.evalue} (executed copy with the traceback: {target})") from None


def latex_available() -> bool:
    return shutil.which("xelatex") is not None and shutil.which("pandoc") is not None


def ensure_latex() -> bool:
    """Install the TeX packages nbconvert's PDF export needs, where we can (Debian, as root)."""
    if latex_available():
        return True
    command = "apt-get install -y --no-install-recommends " + " ".join(TEX_PACKAGES)
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        print(f"[report] installing LaTeX for the PDF: {command}", flush=True)
        quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["apt-get", "update", "-qq"], **quiet)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(command.split(), env=env, **quiet)
        return latex_available()
    print(f"[report] no LaTeX: the PDF needs `sudo {command}` (the HTML is still written)", flush=True)
    return False


def convert(notebook: Path, to: str, output_dir: Path) -> Path:
    """nbconvert ``notebook`` to html, pdf or latex without code cells; pdf and latex through
    templates/report, which keeps a table whole where it fits on a page."""
    suffixes = {"html": ".html", "pdf": ".pdf", "latex": ".tex"}
    if to not in suffixes:
        raise SeqMnistError(f"cannot convert to {to!r}: one of {', '.join(suffixes)}")
    template = [] if to == "html" else [
        f"--TemplateExporter.extra_template_basedirs={TEMPLATES}", "--template", REPORT_TEMPLATE]
    command = [sys.executable, "-m", "nbconvert", "--to", to, *template, "--no-input",
               "--output-dir", str(output_dir), str(notebook)]
    result = subprocess.run(command, capture_output=True, text=True)
    target = output_dir / (notebook.stem + suffixes[to])
    if result.returncode != 0 or not target.exists():
        raise SeqMnistError(f"nbconvert --to {to} failed for {notebook}: {result.stderr.strip()[-800:]}")
    return target


def latex_exporter(**options):
    """nbconvert's LaTeX exporter set up as ``convert`` sets up its command line, for rendering in
    this process (a test gives it a stand-in for pandoc through ``filters``)."""
    from nbconvert import LatexExporter

    return LatexExporter(extra_template_basedirs=[str(TEMPLATES)], template_name=REPORT_TEMPLATE,
                         **options)


def build(quick: bool = False, pdf: bool = True, out: Path | None = None,
          notebooks=NOTEBOOKS) -> dict:
    """Build the whole report; returns the paths written."""
    started = time.time()
    out = Path(out) if out is not None else build_dir()
    executed = out / "notebooks"
    mnist = load_mnist(verbose=True)
    prepare_inpainting_sets(mnist)
    _stage("data ready", started)
    if not quick:  # a subprocess, which starts with the fast allocator (see runtime.py)
        done = subprocess.run([sys.executable, "-m", "seqmnist", "evaluate", "--progress", "--quiet"])
        if done.returncode:
            raise SeqMnistError("evaluating the shipped weights failed (messages above)")
        _stage("shipped weights evaluated (cached by weights, data and evaluation code hashes)",
               started)
    written = {}
    for name in notebooks:
        target = executed / f"{name}.ipynb"
        execute_notebook(ROOT / "notebooks" / f"{name}.ipynb", target,
                         notebook_parameters(name, out, quick))
        written[name] = target
        _stage(f"notebooks/{name}.ipynb executed", started)
    report = executed / "report.ipynb"
    execute_notebook(ROOT / "report.ipynb", report, report_parameters(out))
    written["report"] = report
    _stage("report.ipynb executed", started)
    written["html"] = convert(report, "html", out)
    _stage(f"HTML written: {written['html']}", started)
    if pdf and ensure_latex():
        written["pdf"] = convert(report, "pdf", out)
        _stage(f"PDF written: {written['pdf']}", started)
    return written
