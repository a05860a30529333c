"""Figures of what the readers know: reading curves, settling steps, one digit read row by row,
and reliability diagrams. Plain functions returning a matplotlib Figure (closed in pyplot, as in
``plots``), except ``reading_animation``, which writes a GIF."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import PIXELS, SIDE

UNREAD_COLOUR = (0.35, 0.45, 0.75)   # pixels the reader has not reached yet (blue-gray)
ROWS_PER_TICK = 4


def _pixel_axis(ax, axis: str = "x") -> None:
    """Pixels read, labelled every 4 rows (112 pixels), with a minor tick at each row's end."""
    from matplotlib.ticker import FixedLocator, MultipleLocator

    major = list(range(0, PIXELS + 1, SIDE * ROWS_PER_TICK))
    labels = [f"{p}\n(row {p // SIDE})" for p in major]
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(FixedLocator(major))
    target.set_minor_locator(MultipleLocator(SIDE))
    (ax.set_xticklabels if axis == "x" else ax.set_yticklabels)(labels)
    (ax.set_xlim if axis == "x" else ax.set_ylim)(0, PIXELS)


def reading_curves(accuracies: dict, references: dict | None = None, zoom: float = 0.9):
    """Accuracy against pixels read for each recurrent classifier (name -> (784,) accuracy after
    pixel 1..784), whole-image models (label -> test accuracy) as horizontal lines; the right
    panel zooms on the last part, accuracy >= ``zoom``."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    steps = np.arange(1, PIXELS + 1)
    for ax in axes:
        for name, accuracy in accuracies.items():
            ax.plot(steps, accuracy, lw=1.3, label=name)
        for k, (label, accuracy) in enumerate((references or {}).items()):
            ax.axhline(accuracy, color="black", lw=1, ls=("--", ":", "-.")[k % 3],
                       label=f"{label} (whole image)")
        _pixel_axis(ax)
        ax.set_xlabel("pixels read")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy of the head after pixel t")
    axes[0].set_ylim(0, 1)
    late = [np.argmax(np.asarray(a) >= zoom) for a in accuracies.values()
            if np.any(np.asarray(a) >= zoom)]
    start = max(0, (min(late, default=PIXELS // 2) // SIDE - 1) * SIDE)
    axes[1].set_xlim(start, PIXELS)
    axes[1].set_ylim(zoom, 1.0)
    axes[1].set_title(f"zoom: accuracy >= {zoom:g}", fontsize=9)
    axes[1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    plt.close(fig)
    return fig


def settling_by_class(classes: dict, name: str):
    """Settling steps of one classifier's test images per digit class (violins with the median
    marked), the median share of the image's ink read by then written above each class."""
    import matplotlib.pyplot as plt

    digits = sorted(classes)
    fig, ax = plt.subplots(figsize=(10, 4.2))
    parts = ax.violinplot([classes[d]["settling"] for d in digits], positions=digits,
                          showmedians=True, showextrema=False, widths=0.8)
    for body in parts["bodies"]:
        body.set_alpha(0.5)
    for d in digits:
        ax.text(d, PIXELS + 8, f"ink {100 * classes[d]['median_ink']:.0f} %", ha="center",
                va="bottom", fontsize=8)
    _pixel_axis(ax, "y")
    ax.set_ylim(0, PIXELS + 40)
    ax.set_xticks(digits)
    ax.set_xlabel("digit (label)")
    ax.set_ylabel("settling step (pixels read)")
    ax.set_title(f"{name}: the first pixel after which the answer never changes "
                 "(median ink share read by then above)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    plt.close(fig)
    return fig


def revealed(image, rows: int) -> np.ndarray:
    """(28, 28, 3) RGB of ``image`` with its first ``rows`` rows read and the rest marked unread."""
    image = np.asarray(image, dtype=np.float32).reshape(SIDE, SIDE)
    rgb = np.repeat(image[..., None], 3, axis=-1)
    rgb[rows:] = UNREAD_COLOUR
    return rgb


def _draw_frame(image_ax, bar_ax, image, probabilities, rows: int, label=None):
    probs = probabilities[rows * SIDE - 1]
    picked = int(np.argmax(probs))
    image_ax.imshow(revealed(image, rows), interpolation="nearest")
    image_ax.set_axis_off()
    image_ax.set_title(f"after row {rows}", fontsize=8)
    colours = ["tab:green" if d == picked else "tab:gray" for d in range(10)]
    bars = bar_ax.bar(range(10), probs, color=colours)
    bar_ax.set_ylim(0, 1)
    bar_ax.set_xticks(range(10))
    bar_ax.tick_params(labelsize=7)
    if label is not None:
        bar_ax.get_xticklabels()[int(label)].set_fontweight("bold")
    return bars


def reading_strip(image, probabilities, rows=(4, 7, 10, 14, 18, 21, 24, 28), label=None,
                  title: str | None = None):
    """Frames of one image's reading: above, the image with the rows read so far (unread pixels
    blue-gray); below, the ten class probabilities after that row (the picked class green, the
    label's digit in bold). ``probabilities`` (784, 10) after each pixel."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(rows), figsize=(1.5 * len(rows), 3.4),
                             gridspec_kw={"height_ratios": [1.2, 1]})
    for k, r in enumerate(rows):
        _draw_frame(axes[0, k], axes[1, k], image, probabilities, r, label)
        if k:
            axes[1, k].set_yticklabels([])
    axes[1, 0].set_ylabel("p(class)", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    plt.close(fig)
    return fig


def reading_animation(image, probabilities, path, label=None, title: str = "",
                      fps: int = 4) -> Path:
    """A GIF of one image read row by row beside its ten class probabilities, written to
    ``path`` (one frame per row, the last held a second); returns the path."""
    import matplotlib.pyplot as plt
    from matplotlib.animation import PillowWriter

    fig, (image_ax, bar_ax) = plt.subplots(1, 2, figsize=(5.6, 2.8),
                                           gridspec_kw={"width_ratios": [1, 1.4]})
    bars = _draw_frame(image_ax, bar_ax, image, probabilities, 1, label)
    picture = image_ax.images[0]
    bar_ax.set_ylabel("p(class)", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()

    def draw(rows):   # update the artists in place: far cheaper than redrawing the axes
        probs = probabilities[rows * SIDE - 1]
        picture.set_data(revealed(image, rows))
        for digit, bar in enumerate(bars):
            bar.set_height(probs[digit])
            bar.set_color("tab:green" if digit == int(np.argmax(probs)) else "tab:gray")
        image_ax.set_title(f"after row {rows} (pixel {rows * SIDE})", fontsize=9)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.gif")
    writer = PillowWriter(fps=fps)
    with writer.saving(fig, tmp, dpi=80):   # one draw per frame (FuncAnimation draws three)
        for rows in list(range(1, SIDE + 1)) + [SIDE] * fps:
            draw(rows)
            writer.grab_frame()
    tmp.replace(path)
    plt.close(fig)
    return path


def reliability_diagrams(calibrations: dict, ncols: int = 5, forecast: str = "confidence",
                         event: str = "accuracy"):
    """One panel per model (name -> ``calibration.calibrate``'s dict): observed frequency
    against the mean forecast of each of the 15 bins, before (solid) and after (dashed) the
    fitted temperature, marker area by the bin's share of forecasts; the diagonal is perfect
    calibration. Titles give ECE before -> after."""
    import matplotlib.pyplot as plt

    names = list(calibrations)
    if not names:
        raise ValueError("no models to draw")
    ncols = min(ncols, len(names))
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.7 * nrows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        c = calibrations[name]
        ax.plot([0, 1], [0, 1], color="black", lw=0.8, alpha=0.5)
        for key, style, colour in (("reliability", "-", "tab:blue"),
                                   ("reliability_scaled", "--", "tab:orange")):
            table = c[key]
            filled = table["count"] > 0
            share = table["count"][filled] / table["count"].sum()
            ax.plot(table["mean"][filled], table["frequency"][filled], style, color=colour, lw=1,
                    label="as trained" if key == "reliability" else f"T = {c['temperature']:.2f}")
            ax.scatter(table["mean"][filled], table["frequency"][filled],
                       s=6 + 120 * np.sqrt(share), color=colour, alpha=0.7)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_title(f"{name}: ECE {100 * c['ece']:.2f} -> {100 * c['ece_scaled']:.2f} %",
                     fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="upper left")
    for ax in axes.flat[len(names):]:
        ax.set_axis_off()
    for ax in axes[-1]:
        ax.set_xlabel(f"mean {forecast} in bin", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel(event, fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


__all__ = ["reading_curves", "settling_by_class", "revealed", "reading_strip",
           "reading_animation", "reliability_diagrams"]
