"""Plots for the report, as plain functions that return a matplotlib Figure.

Each function closes its figure in pyplot before returning it, so a notebook shows it exactly once:
put the call last in a cell (or ``display(fig)``); ``fig.savefig(...)`` works as usual.
Images may be given as (N, 784), (N, 28, 28) or one (784,) / (28, 28) image, as numpy arrays
or CPU torch tensors; binary pixels and probabilities in [0, 1] are drawn in gray (black = 0).
"""

from __future__ import annotations

import numpy as np

from .data import PIXELS, SIDE

# Colours of in-painting displays (RGB in [0, 1]).
MISSING_COLOUR = (1.0, 0.0, 0.0)  # a missing pixel not (yet) filled: pure red
FILL_TINT = (1.0, 0.0, 0.0)  # a filled value v is drawn as 50% gray v + 50% this tint


def _numpy(array) -> np.ndarray:
    if hasattr(array, "detach"):  # torch tensor
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def as_images(images) -> np.ndarray:
    """(N, 28, 28) or, for RGB input (N, 28, 28, 3), that, as float arrays."""
    array = _numpy(images).astype(np.float32)
    if array.ndim >= 3 and array.shape[-3:] == (SIDE, SIDE, 3):
        return array.reshape(-1, SIDE, SIDE, 3)
    if array.shape[-1] == PIXELS:
        return array.reshape(-1, SIDE, SIDE)
    if array.shape[-2:] == (SIDE, SIDE):
        return array.reshape(-1, SIDE, SIDE)
    raise ValueError(f"images of shape {array.shape}: "
                     f"expected (N, {PIXELS}) or (N, {SIDE}, {SIDE})")


def image_grid(images, titles=None, ncols: int = 10, cell: float = 1.1, cmap: str = "gray",
               vmin: float = 0.0, vmax: float = 1.0, suptitle: str | None = None,
               title_size: float = 8.0):
    """A grid of images (gray colour map, no axes), ``ncols`` per row; returns the Figure.

    ``titles`` gives one title per image (or None); ``cell`` is each image's size in inches.
    RGB images (N, 28, 28, 3) are drawn as they are.
    """
    import matplotlib.pyplot as plt

    images = as_images(images)
    count = len(images)
    if count == 0:
        raise ValueError("no images to show")
    if titles is not None and len(titles) != count:
        raise ValueError(f"{len(titles)} titles for {count} images")
    ncols = max(1, min(ncols, count))
    nrows = -(-count // ncols)
    extra = 0.25 if titles is not None else 0.0
    height = (cell + extra) * nrows + (0.4 if suptitle else 0.0)
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, figsize=(cell * ncols, height))
    for k, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if k >= count:
            continue
        ax.imshow(images[k], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        if titles is not None and titles[k] is not None:
            ax.set_title(str(titles[k]), fontsize=title_size)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    plt.close(fig)
    return fig


def inpainting_rgb(masked, filling=None) -> np.ndarray:
    """(N, 28, 28, 3) RGB: known pixels in gray; missing ones red, or red-tinted filled values.

    ``masked`` holds -1 at missing pixels; ``filling`` (same shape, optional) gives values in
    [0, 1] (samples or probabilities) used at the missing pixels only. A filled value v is drawn
    as 0.5 * (v, v, v) + 0.5 * FILL_TINT (dark red for 0, pink for 1).
    """
    masked = as_images(masked)
    missing = masked == -1
    gray = np.where(missing, 0.0, masked)
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    if filling is None:
        rgb[missing] = MISSING_COLOUR
    else:
        fill = np.clip(as_images(filling), 0.0, 1.0)
        if fill.shape != masked.shape:
            raise ValueError(f"filling of shape {fill.shape} for masked images {masked.shape}")
        values = fill[missing][:, None]
        rgb[missing] = 0.5 * values + 0.5 * np.asarray(FILL_TINT)
    return rgb


def show_inpainting(masked, *fillings, truth=None, labels=None, **grid_options):
    """One row per image: the masked image (missing pixels red), each filling, then the truth.

    ``fillings`` are (N, 784) arrays whose values at the missing pixels are shown red-tinted;
    ``labels`` names the columns (default "masked", "filling 1", ..., "truth").
    Extra keyword arguments go to ``image_grid``.
    """
    masked = as_images(masked)
    columns = [inpainting_rgb(masked)] + [inpainting_rgb(masked, f) for f in fillings]
    names = ["masked"] + [f"filling {k + 1}" for k in range(len(fillings))]
    if truth is not None:
        columns.append(inpainting_rgb(masked, truth))
        names.append("truth")
    if labels is not None:
        if len(labels) != len(columns):
            raise ValueError(f"{len(labels)} labels for {len(columns)} columns")
        names = list(labels)
    ncols = len(columns)
    grid = np.stack(columns, axis=1).reshape(-1, SIDE, SIDE, 3)  # row-major: image, column
    titles = [names[k % ncols] if k < ncols else None for k in range(len(grid))]
    return image_grid(grid, titles=titles, ncols=ncols, **grid_options)


def learning_curves(histories: dict, metrics=("train_loss", "val_loss"), labels: dict | None = None,
                    title: str | None = None, logy: bool = False):
    """One panel per metric, one line per run; ``histories`` maps run name -> list of epoch records
    (as in a weights sidecar's ``history``). Runs named like ``gru-1x64`` are drawn dashed, and
    runs of the same size (the part after the cell) share a colour."""
    import matplotlib.pyplot as plt

    sizes = list(dict.fromkeys(name.split("-", 1)[-1] for name in histories))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for name, history in histories.items():
            points = [(r["epoch"], r[metric]) for r in history if metric in r]
            if points:
                epochs, values = zip(*points)
                colour = colours[sizes.index(name.split("-", 1)[-1]) % len(colours)]
                ax.plot(epochs, values, marker="o", markersize=3, label=name, color=colour,
                        linestyle="--" if name.startswith("gru") else "-")
        ax.set_xlabel("epoch")
        ax.set_ylabel((labels or {}).get(metric, metric.replace("_", " ")))
        if logy:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    plt.close(fig)
    return fig


def seed_curves(runs: dict, metrics=("val_loss",)):
    """The spread of a recipe over its seeds: per model with two seeds or more (``runs`` maps a
    name to ``results.seed_runs``), the mean validation curve and a band from the lowest to the
    highest seed at each epoch; one panel per metric."""
    import matplotlib.pyplot as plt
    import numpy as np

    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.4), squeeze=False)
    shown = [(name, seeds) for name, seeds in runs.items() if len(seeds) >= 2]
    for ax, metric in zip(axes[0], metrics):
        for index, (name, seeds) in enumerate(shown):
            curves = [{r["epoch"]: r[metric] for r in run["history"] if metric in r} for run in seeds]
            epochs = sorted(set.intersection(*(set(curve) for curve in curves)))
            if not epochs:
                continue
            values = np.array([[curve[e] for e in epochs] for curve in curves])
            colour = colours[index % len(colours)]
            ax.fill_between(epochs, values.min(0), values.max(0), color=colour, alpha=0.25)
            ax.plot(epochs, values.mean(0), color=colour, label=f"{name} ({len(seeds)} seeds)",
                    linestyle="--" if name.startswith("gru") else "-")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric.replace("_", " "))
        ax.grid(alpha=0.3)
    if shown:
        axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    plt.close(fig)
    return fig


def sweep_overview(records: dict, shipped_rates: dict | None = None):
    """Every swept model in one panel: the best validation loss reached at each rate (log axis),
    the sweep's best rate ringed and the shipped run's rate marked by a cross on its curve's
    level (``records``: architecture -> ``sweep.load_sweeps`` record)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for name, record in records.items():
        points = [(c["lr"], c["best_val_loss"]) for c in record["candidates"]
                  if c["best_val_loss"] is not None]
        if not points:
            continue
        rates, losses = zip(*points)
        (line,) = ax.plot(rates, losses, marker="o", markersize=3, label=name,
                          linestyle="--" if name.startswith("gru") else "-")
        best = dict(points)[record["best_lr"]]
        ax.plot([record["best_lr"]], [best], marker="o", markersize=10, fillstyle="none",
                color=line.get_color())
        shipped = (shipped_rates or {}).get(name)
        if shipped is not None:
            ax.plot([shipped], [best], marker="x", markersize=8, color=line.get_color())
    ax.set_xscale("log")
    ax.set_xlabel("peak learning rate")
    ax.set_ylabel("best validation loss")
    ax.grid(alpha=0.3)
    if records:
        ax.legend(fontsize=7)
    fig.tight_layout()
    plt.close(fig)
    return fig


def sweep_curves(record: dict, metric: str = "val_loss"):
    """Validation curves of a learning-rate sweep record (see seqmnist.sweep), one line per rate."""
    histories = {f"lr {c['lr']:g}": c["history"] for c in record["candidates"] if c["history"]}
    title = f"learning-rate sweep: {record['task']} {record['arch']}, {record['epochs']} epochs each"
    metrics = (metric, "val_accuracy") if record["task"] == "classify" else (metric,)
    return learning_curves(histories, metrics, title=title)


# --------------------------------------------------------------------------- Task 2 / Task 3 grids


def partial_fill_rgb(masked, filling) -> np.ndarray:
    """``inpainting_rgb`` for fillings that cover only part of the missing pixels.

    Where ``filling`` is -1 (not generated, e.g. after a continuation's horizon) a missing pixel
    stays pure red (MISSING_COLOUR); elsewhere it is drawn as in ``inpainting_rgb``.
    """
    masked = as_images(masked)
    filling = as_images(filling)
    rgb = inpainting_rgb(masked, np.where(filling < 0, 0.0, filling))
    rgb[(masked == -1) & (filling < 0)] = MISSING_COLOUR
    return rgb


def image_table(rows, row_labels=None, col_labels=None, cell: float = 1.1,
                suptitle: str | None = None, label_size: float = 8.0, cmap: str = "gray"):
    """A grid of images given row by row, with a label left of each row and above each column.

    ``rows`` is a list of rows, each a list of images: (28, 28) / (784,) gray in [0, 1] or
    (28, 28, 3) RGB; None leaves a cell blank. Returns the Figure.
    """
    import matplotlib.pyplot as plt

    rows = [list(row) for row in rows]
    if not rows or not any(len(row) for row in rows):
        raise ValueError("no images to show")
    nrows, ncols = len(rows), max(len(row) for row in rows)
    if row_labels is not None and len(row_labels) != nrows:
        raise ValueError(f"{len(row_labels)} row labels for {nrows} rows")
    if col_labels is not None and len(col_labels) != ncols:
        raise ValueError(f"{len(col_labels)} column labels for {ncols} columns")
    left = 0.9 if row_labels is not None else 0.0
    top = 0.25 if col_labels is not None else 0.0
    fig, axes = plt.subplots(nrows, ncols, squeeze=False,
                             figsize=(cell * ncols + left, cell * nrows + top
                                      + (0.4 if suptitle else 0.0)))
    for r, row in enumerate(rows):
        for c in range(ncols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            image = row[c] if c < len(row) else None
            if image is not None:
                image = as_images(image)[0]
                ax.imshow(image, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
            if r == 0 and col_labels is not None and col_labels[c] is not None:
                ax.set_title(str(col_labels[c]), fontsize=label_size)
            if c == 0 and row_labels is not None and row_labels[r] is not None:
                ax.set_ylabel(str(row_labels[r]), fontsize=label_size, rotation=0,
                              ha="right", va="center")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    plt.close(fig)
    return fig


def prediction_maps(images, probs, titles=None, cell: float = 1.1):
    """Two rows: the images and, below each, the map of one-step predictions p(x_t = 1 | x_<t)."""
    images, probs = as_images(images), as_images(probs)
    if images.shape != probs.shape:
        raise ValueError(f"{probs.shape} probability maps for images {images.shape}")
    return image_table([list(images), list(np.nan_to_num(probs, nan=0.5))],
                       row_labels=["image", "p(x_t = 1 | x_<t)"], col_labels=titles, cell=cell)


def continuation_rows(truth, prefix_length: int, completions: dict, labels: dict | None = None,
                      col_labels=None, cell: float = 1.1, suptitle: str | None = None):
    """Columns = images; rows = the observed prefix, one row per continuation, the truth.

    ``truth`` (N, 784); ``completions`` maps a row key (e.g. a horizon) to (N, 784) images holding
    the prefix, generated pixels and -1 where nothing was generated (``generate.Completion``'s
    images for one sample). Generated pixels are red-tinted, not generated ones red.
    """
    truth = np.asarray(_numpy(truth), np.float32).reshape(-1, PIXELS)
    masked = truth.copy()
    masked[:, prefix_length:] = -1
    rows = [list(inpainting_rgb(masked))]
    names = [f"observed ({prefix_length} px)"]
    for key, images in completions.items():
        images = np.asarray(_numpy(images), np.float32).reshape(-1, PIXELS)
        rows.append(list(partial_fill_rgb(masked, images)))
        names.append((labels or {}).get(key, f"{key} steps"))
    rows.append(list(inpainting_rgb(masked, truth)))
    names.append("ground truth")
    return image_table(rows, row_labels=names, col_labels=col_labels, cell=cell,
                       suptitle=suptitle)


def horizon_samples(masked, truth, completions: dict, cell: float = 1.0,
                    suptitle: str | None = None):
    """One in-painting example: rows = horizons; columns = masked input, ground truth, samples.

    ``masked`` and ``truth`` (784,); ``completions`` maps a horizon h to (S, 784) completions
    (prefix, h sampled pixels, -1 after). The ground truth is shown over the same h pixels.
    """
    masked = np.asarray(_numpy(masked), np.float32).reshape(PIXELS)
    truth = np.asarray(_numpy(truth), np.float32).reshape(PIXELS)
    first = int(np.argmax(masked == -1))
    rows, names, width = [], [], 0
    for horizon, samples in completions.items():
        samples = np.asarray(_numpy(samples), np.float32).reshape(-1, PIXELS)
        shown = truth.copy()
        shown[first + int(horizon):] = -1
        row = [inpainting_rgb(masked)[0], partial_fill_rgb(masked, shown)[0]]
        row += list(partial_fill_rgb(np.repeat(masked[None], len(samples), 0), samples))
        rows.append(row)
        names.append(f"{horizon} px")
        width = max(width, len(samples))
    col_labels = ["masked", "ground truth"] + [f"sample {k + 1}" for k in range(width)]
    return image_table(rows, row_labels=names, col_labels=col_labels, cell=cell,
                       suptitle=suptitle)


def inpainting_columns(masked, columns: dict, row_labels=None, cell: float = 1.1,
                       suptitle: str | None = None, transpose: bool = False):
    """One row per image: the masked input, then one column per entry of ``columns``; with
    ``transpose``, one column per image instead (a wide, short figure for many images), and
    ``row_labels`` label the columns.

    ``columns`` maps a column label to (N, 784) values in [0, 1] (a filling, the ground truth or
    posterior probabilities p(x = 1)), shown red-tinted at the missing pixels only.
    """
    masked = np.asarray(_numpy(masked), np.float32).reshape(-1, PIXELS)
    grids = [inpainting_rgb(masked)]
    grids += [partial_fill_rgb(masked, np.asarray(_numpy(v), np.float32).reshape(-1, PIXELS))
              for v in columns.values()]
    kinds = ["masked", *columns]
    if transpose:
        return image_table([list(grid) for grid in grids], row_labels=kinds, col_labels=row_labels,
                           cell=cell, suptitle=suptitle)
    rows = [[grid[i] for grid in grids] for i in range(len(masked))]
    return image_table(rows, row_labels=row_labels, col_labels=kinds, cell=cell,
                       suptitle=suptitle)
