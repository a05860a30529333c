"""The in-painting notebook in a real JupyterLab and a real browser (``make test-browser``).

JupyterLab runs on a free local port with a token; Playwright drives Debian's Chromium (never a
browser of its own). The notebook is a copy of notebooks/inpainting.ipynb with ``interactive=True``
and ``quick=True`` (one small predictor) set by papermill, run with JupyterLab's *Run All Cells*. Checked: the explorer
and the drawing pad render, answer a click and a stroke, and no "Error displaying widget" shows.
Skipped, saying why, without Chromium or Playwright (``make test-browser`` installs both).
"""

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("playwright", reason="needs playwright (make test-browser installs it)")
pytest.importorskip("jupyterlab", reason="needs jupyterlab (make test-browser installs it)")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "inpainting.ipynb"
pytestmark = pytest.mark.requires_programs("chromium")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """(url of the notebook with its token): a parameterized copy served by JupyterLab."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    folder = tmp_path_factory.mktemp("lab")
    nb = parameterize_notebook(load_notebook_node(str(NOTEBOOK)), {
        "quick": True, "interactive": True, "show_progress": False,
        "architecture": "lstm-1x32", "architectures": ["lstm-1x32"],  # one small model: fast
        "weights_dir": str(ROOT / "weights"), "output_dir": str(folder / "outputs")})
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}  # else JupyterLab asks which kernel
    nbformat.write(nb, folder / NOTEBOOK.name)
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"],
               OMP_NUM_THREADS="1", JUPYTER_CONFIG_DIR=str(folder / "config"))
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}", "--allow-root"],
        cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=open(folder / "lab.log", "w"))
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None:
                    break
                time.sleep(0.5)
        else:
            pytest.fail(f"JupyterLab did not start: {(folder / 'lab.log').read_text()[-2000:]}")
        yield f"{base}/lab/tree/{NOTEBOOK.name}?token={token}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_widgets_render_and_respond_in_jupyterlab(lab):
    from playwright.sync_api import TimeoutError, expect, sync_playwright

    with sync_playwright() as play:
        browser = play.chromium.launch(executable_path=shutil.which("chromium"),
                                       args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(lab)
            page.get_by_text("Kernel", exact=True).first.wait_for(timeout=60_000)
            expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
                   ).to_have_count(1, timeout=60_000)
            select = page.locator(".jp-Dialog").get_by_role("button", name="Select", exact=True)
            try:  # JupyterLab may still ask for the kernel of a notebook it has not run
                select.wait_for(timeout=15_000)
                select.click()
            except TimeoutError:
                pass
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_text("Run All Cells", exact=True).click()
            # the explorer: its In-paint button answers a click
            explorer = page.locator(".widget-vbox", has=page.get_by_text("left col")).first
            explorer.wait_for(timeout=180_000)
            explorer.get_by_role("button", name="In-paint").click()
            expect(explorer.get_by_text("p(most probable filling)")).to_be_visible(timeout=60_000)
            # the drawing pad: a stroke on its canvas is read by the classifier
            pad = page.locator(".widget-vbox", has=page.get_by_text("keep rows above")).first
            pad.wait_for(timeout=120_000)
            canvas = pad.locator("canvas").last
            canvas.scroll_into_view_if_needed()
            box = canvas.bounding_box()
            page.mouse.move(box["x"] + 0.5 * box["width"], box["y"] + 0.15 * box["height"])
            page.mouse.down()
            for k in range(1, 11):
                page.mouse.move(box["x"] + 0.5 * box["width"],
                                box["y"] + (0.15 + 0.07 * k) * box["height"])
            page.mouse.up()
            expect(pad.get_by_text("The classifier reads a")).to_be_visible(timeout=60_000)
            pad.get_by_role("button", name="Complete").click()
            expect(pad.get_by_text("completion(s) of rows")).to_be_visible(timeout=60_000)
            # the static copies fold into one line once the widgets are live
            expect(page.locator("details summary", has_text="needs a live kernel")
                   ).to_have_count(2, timeout=30_000)
            assert page.get_by_text("Error displaying widget").count() == 0
        except Exception:
            (ROOT / "build").mkdir(exist_ok=True)  # what the page showed, to see why
            page.screenshot(path=str(ROOT / "build" / "test-browser-failure.png"), full_page=True)
            raise
        finally:
            browser.close()
