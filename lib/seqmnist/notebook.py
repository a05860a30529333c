"""What every task notebook shares: parameter checks, a switchable progress bar, and an output
folder whose manifest lets report.ipynb collect the tables and figures without recomputing them.

A notebook calls ``out = Outputs(output_dir)``, then ``out.table(...)`` / ``out.figure(...)``: each
item is shown in the notebook, written to ``output_dir`` (Markdown / PNG) and listed, in order, in
``output_dir/manifest.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .data import atomic_write_bytes
from .errors import ConfigError
from .paths import ROOT


def check_parameters(values: dict, expected: dict) -> None:
    """Stop with one clear message when a notebook parameter is missing or of the wrong type,
    when ``output_dir`` cannot be written, or when ``device`` is not one this torch can use.

    ``expected`` maps names to a type or a tuple of types; ``bool`` is never accepted where only
    ``int`` is expected (papermill's ``-p`` guesses types, so a typo gives the wrong one).
    """
    for name, kinds in expected.items():
        if name not in values:
            raise ConfigError(f"notebook parameter {name!r} is missing")
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        value = values[name]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            wanted = " or ".join(k.__name__ for k in kinds)
            raise ConfigError(f"notebook parameter {name!r} must be {wanted}, "
                              f"got {type(value).__name__} {value!r}")
    if "seed" in expected and values["seed"] < 0:
        raise ConfigError(f"notebook parameter 'seed' must be >= 0, got {values['seed']}")
    if "output_dir" in expected:
        check_writable_folder(values["output_dir"])
    if "device" in expected:
        from .devices import resolve_device  # imports torch: only for notebooks that use it

        resolve_device(values["device"])


def check_writable_folder(path: str | Path) -> Path:
    """The resolved output folder, or a ConfigError when it cannot be created or written: the
    notebook would otherwise fail at its first table, after minutes of work. Creates nothing."""
    if not str(path).strip():
        raise ConfigError("notebook parameter 'output_dir' must be a non-empty path")
    folder = resolve(path)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        why = "is a file" if existing == folder else f"cannot be created: {existing} is a file"
        raise ConfigError(f"notebook parameter 'output_dir': {folder} {why}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"notebook parameter 'output_dir': {existing} is not writable "
                          f"(asked for {folder})")
    return folder


def check_weights(task: str, names, weights_dir: str | Path,
                  allow_missing: bool = False) -> list[str]:
    """The models in ``names`` without shipped weights under ``weights_dir``; a ConfigError naming
    the folder and the missing files unless ``allow_missing`` (a campaign still under way, whose
    tables then show n/a). A mistyped ``weights_dir`` would otherwise give a report of n/a."""
    from .weights import shipped_path

    root = resolve(weights_dir)
    missing = [name for name in names if not shipped_path(task, name, root).exists()]
    if missing and not allow_missing:
        files = ", ".join(str(shipped_path(task, name, root).relative_to(root)) for name in missing)
        where = f"{root}" if root.is_dir() else f"{root} (no such folder)"
        raise ConfigError(f"notebook parameter 'weights_dir': no shipped weights in {where} for "
                          f"{len(missing)} of {len(names)} models: {files}; set weights_dir to "
                          f"the weights folder, or allow_missing=True to skip them")
    return missing


def choose_model(requested: str, sidecars: dict,
                 purpose: str = "the figures") -> tuple[str | None, str]:
    """The model a notebook's figures use, and a sentence that says which and why.

    ``requested`` is a model name or "best" (the lowest validation loss); ``sidecars`` maps the
    models with weights to their sidecars. A requested model without weights (``allow_missing``)
    falls back to the best one. Returns (None, "") when no model has weights.
    """
    from .results import lowest_validation_loss

    best = lowest_validation_loss(sidecars)
    start = purpose[:1].upper() + purpose[1:]
    if requested in sidecars:
        return requested, f"{start} use `{requested}`, as requested."
    if best is None:
        return None, ""
    if requested == "best":
        return best, f"{start} use `{best}`, the model with the lowest validation loss."
    return best, (f"The requested model `{requested}` has no weights; {purpose} use `{best}`, "
                  "the model with the lowest validation loss, instead.")


def check_model_names(task: str, names) -> list[str]:
    """Canonical model names, or a ConfigError naming the first unknown one."""
    from .models import canonical_arch

    return [canonical_arch(name, task) for name in names]


def resolve(path: str | Path) -> Path:
    """A notebook path parameter: absolute as given, relative to the repository root otherwise."""
    path = Path(path)
    return path if path.is_absolute() else ROOT / path


def progress(iterable=None, enabled: bool = False, **kwargs):
    """tqdm when enabled (interactive use), else the bare iterable: batch exports stay clean."""
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, **kwargs)


class Outputs:
    """Tables and figures of one notebook, shown inline and saved for the report."""

    def __init__(self, output_dir: str | Path, notebook: str):
        self.dir = resolve(output_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.notebook = notebook
        self.items: list[dict] = []
        self._write_manifest()

    def _write_manifest(self) -> None:
        text = json.dumps({"notebook": self.notebook, "items": self.items}, indent=1)
        atomic_write_bytes(self.dir / "manifest.json", lambda handle: handle.write(text.encode()))

    def _add(self, kind: str, name: str, filename: str, caption: str) -> None:
        self.items = [item for item in self.items if item["name"] != name]
        self.items.append({"kind": kind, "name": name, "file": filename, "caption": caption})
        self._write_manifest()

    def table(self, name: str, markdown: str, caption: str = "", display: bool = True) -> None:
        """A Markdown table (renders in the PDF, unlike HTML tables)."""
        text = (f"**{caption}**\n\n" if caption else "") + markdown.strip() + "\n"
        atomic_write_bytes(self.dir / f"{name}.md", lambda handle: handle.write(text.encode()))
        self._add("table", name, f"{name}.md", caption)
        if display:
            from IPython.display import Markdown, display as show

            show(Markdown(text))

    def figure(self, name: str, fig, caption: str = "", display: bool = True, dpi: int = 110) -> None:
        path = self.dir / f"{name}.png"
        tmp = path.with_name(f".{path.name}.tmp.png")
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
        tmp.replace(path)
        self._add("figure", name, f"{name}.png", caption)
        if display:
            from IPython.display import display as show

            show(fig)
        import matplotlib.pyplot as plt

        plt.close(fig)

    def text(self, name: str, markdown: str, display: bool = True) -> None:
        """A paragraph whose numbers were computed (the report quotes it as it is)."""
        atomic_write_bytes(self.dir / f"{name}.md", lambda handle: handle.write(markdown.encode()))
        self._add("text", name, f"{name}.md", "")
        if display:
            from IPython.display import Markdown, display as show

            show(Markdown(markdown))

    def value(self, name: str, data) -> None:
        """A JSON value (numbers the report quotes in prose)."""
        text = json.dumps(data, indent=1, default=float)
        atomic_write_bytes(self.dir / f"{name}.json", lambda handle: handle.write(text.encode()))
        self._add("value", name, f"{name}.json", "")


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A Markdown table from a header and rows of already formatted cells.

    The separator's dashes follow each column's widest cell (headers wrap, so their longest word):
    a table too wide for the page gets those relative column widths in the PDF (pandoc's rule)
    instead of equal ones that break short cells like "lstm-1x128" over two lines.
    """
    columns = list(zip(*[map(str, row) for row in rows])) or [()] * len(header)
    widths = [max([3, *map(len, cells), *map(len, str(title).split())])
              for title, cells in zip(header, columns)]
    lines = ["| " + " | ".join(map(str, header)) + " |",
             "|" + "|".join("-" * width for width in widths) + "|"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def load_manifest(output_dir: str | Path) -> dict:
    path = resolve(output_dir) / "manifest.json"
    if not path.exists():
        raise ConfigError(f"{path}: missing; run the task notebook first (make report does)")
    return json.loads(path.read_text())


def show_outputs(build_dir: str | Path, notebook: str, names=None, exclude=()) -> None:
    """Display a task notebook's saved tables, texts and figures (all but ``exclude``, or
    ``names`` in that order; the report shows a notebook's history apart, in its appendix).

    A name the notebook did not produce is reported in the output instead of stopping the report.
    """
    from IPython.display import Image, Markdown, display

    folder = resolve(build_dir) / notebook
    items = {item["name"]: item for item in load_manifest(folder)["items"]}
    for name in names if names is not None else [n for n in items if n not in exclude]:
        item = items.get(name)
        if item is None:
            display(Markdown(f"*({notebook}: no output named `{name}`)*"))
        elif item["kind"] in ("table", "text"):
            display(Markdown((folder / item["file"]).read_text()))
        elif item["kind"] == "figure":
            display(Image(filename=str(folder / item["file"])))
            if item["caption"]:
                display(Markdown(f"*{item['caption']}*"))
