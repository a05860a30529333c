"""When does a reader know the digit? A recurrent classifier's head applied after every pixel.

The head was trained on the output after the last pixel only. Applied to the output after pixel t,
it answers what the classifier would say if the image stopped there: accuracy against pixels read
(the reading curve), and the *settling step* of each image, the first t after which the answer
never changes again. These come out of the forward pass that scores the test set
(``compare.predict``): the core returns its output at every step anyway, and the head runs over
it in chunks of steps, so no (784, N, 10) array is ever held.
"""

from __future__ import annotations

import numpy as np
import torch

from .data import PIXELS, SIDE

STEP_CHUNK = 112   # steps per head application (4 rows): bounds the (steps, batch, units) arrays


@torch.no_grad()
def step_predictions(head, outputs: torch.Tensor, shared: int = 0,
                     chunk: int = STEP_CHUNK) -> torch.Tensor:
    """(T, B) int8: the class the head picks from the core's output after each pixel.

    ``outputs`` (T, B, H) is the core's output at every step; ``head`` maps (..., H) to logits.
    The first ``shared`` steps are the same for the whole batch (its common all-zero prefix,
    ``models.leading_zero_steps``): they are read once.
    """
    steps = outputs.shape[0]
    predicted = torch.empty(steps, outputs.shape[1], dtype=torch.int8)
    predicted[:shared] = head(outputs[:shared, :1]).argmax(-1).cpu()
    for start in range(shared, steps, chunk):
        predicted[start:start + chunk] = head(outputs[start:start + chunk]).argmax(-1).cpu()
    return predicted


def settling_steps(predictions) -> np.ndarray:
    """(N,) the settling step of each sequence of beliefs ``predictions`` (T, N): the first step
    t (1-based) after which the prediction equals the final one at every later step.

    1 when the first belief is already the final one, T when the answer changes at the last step.
    """
    predictions = np.asarray(predictions)
    differs = predictions != predictions[-1]
    steps = predictions.shape[0]
    # the last step that differs from the final belief, counted from the end (0 when none)
    last_differs = steps - np.argmax(differs[::-1], axis=0)
    return np.where(differs.any(axis=0), last_differs + 1, 1).astype(np.int64)


def ink_seen(pixels, steps) -> np.ndarray:
    """(N,) the share of each image's ink pixels among its first ``steps`` pixels (1 when an image
    has no ink)."""
    pixels = np.asarray(pixels) > 0
    read = np.arange(pixels.shape[1]) < np.asarray(steps)[:, None]
    ink = pixels.sum(1)
    return np.where(ink > 0, (pixels & read).sum(1) / np.maximum(ink, 1), 1.0)


@torch.no_grad()
def step_probabilities(model, image) -> np.ndarray:
    """(784, 10) the class probabilities after each pixel of one image (784,)."""
    model.eval()
    parameter = next(model.parameters())
    x = torch.as_tensor(np.asarray(image), dtype=parameter.dtype, device=parameter.device)
    outputs, _ = model.core(x.reshape(-1, 1, 1))
    return torch.softmax(model.head(outputs[:, 0]), -1).cpu().numpy()


def typical_image(settling, correct) -> int:
    """The index of the first correctly read image whose settling step is closest to the median
    over the correctly read images: a typical reading to show."""
    settling, correct = np.asarray(settling), np.asarray(correct, dtype=bool)
    candidates = np.flatnonzero(correct) if correct.any() else np.arange(len(settling))
    median = np.median(settling[candidates])
    return int(candidates[np.argmin(np.abs(settling[candidates] - median))])


def by_class(settling, ink, labels) -> dict:
    """Per digit class: the images' settling steps, the median settling step and ink seen."""
    settling, ink, labels = np.asarray(settling), np.asarray(ink), np.asarray(labels)
    classes = {}
    for digit in range(10):
        mine = labels == digit
        if mine.any():
            classes[digit] = {"settling": settling[mine],
                              "median_step": float(np.median(settling[mine])),
                              "median_ink": float(np.median(ink[mine]))}
    return classes


def summary(run: dict, pixels, labels) -> dict:
    """What the reading section shows of one recurrent classifier's test pass (``run`` from
    ``compare.shipped_predictions`` with labels): accuracy after each pixel, settling steps and
    the ink seen then, overall and per class."""
    reading = run["reading"]
    settling = np.asarray(reading["settling"])
    ink = ink_seen(pixels, settling)
    images = len(settling)
    return {"accuracy": np.asarray(reading["correct"]) / images, "settling": settling, "ink": ink,
            "median_step": float(np.median(settling)), "median_ink": float(np.median(ink)),
            "classes": by_class(settling, ink, labels),
            "final_accuracy": float(np.mean(run["predicted"] == np.asarray(labels)))}


def first_step_reaching(accuracy, fraction: float) -> int | None:
    """The first step (1-based) at which ``accuracy`` (T,) reaches ``fraction``, or None."""
    reached = np.flatnonzero(np.asarray(accuracy) >= fraction)
    return int(reached[0]) + 1 if len(reached) else None


def _row(step: float) -> str:
    return f"row {int(np.ceil(step / SIDE))}"


def _spread(values: dict, unit) -> str:
    """'between <least> (<model>) and <most> (<model>)' over models, ``unit`` formatting a value."""
    low, high = min(values, key=values.get), max(values, key=values.get)
    if len(values) == 1:
        return f"at {unit(values[low])} ({low})"
    return f"between {unit(values[low])} ({low}) and {unit(values[high])} ({high})"


def _rows(values: dict) -> str:
    low, high = min(values.values()), max(values.values())
    return (_row(low) if _row(low) == _row(high)
            else f"rows {int(np.ceil(low / SIDE))} to {int(np.ceil(high / SIDE))}")


def reading_paragraph(summaries: dict, baselines: dict, images: int, best: str | None = None,
                      quick: bool = False) -> str:
    """What the reading curves and settling steps say, every number computed.

    ``summaries`` maps a recurrent classifier to ``summary(...)``; ``baselines`` maps a
    whole-image model's label to its test accuracy on the same images; ``best`` names the reader
    described in detail (the best by validation accuracy).
    """
    if not summaries:
        return "*No recurrent classifier with shipped weights: no reading curves.*"
    scope = (f"the first {images:,} test images (quick mode)" if quick
             else f"the {images:,} test images")
    text = [f"The head of each classifier was trained on the output after the last pixel only; "
            f"here it is applied after every pixel of {scope}, which asks what the classifier "
            f"would answer if the image stopped there: a question it was never trained on."]

    def pixel(step):
        return f"pixel {step:.0f}"

    for level in (0.5, 0.9):
        reached = {n: first_step_reaching(s["accuracy"], level) for n, s in summaries.items()}
        reached = {n: step for n, step in reached.items() if step}
        if reached:
            text.append(f"The readers reach {100 * level:.0f} % accuracy "
                        f"{_spread(reached, pixel)}, in {_rows(reached)}" + (
                            "." if len(reached) == len(summaries) else
                            f"; {len(summaries) - len(reached)} of {len(summaries)} never "
                            f"get there."))
    settled = {n: s["median_step"] for n, s in summaries.items()}
    ink = {n: s["median_ink"] for n, s in summaries.items()}
    text.append(f"Half the answers have settled (the median settling step) "
                f"{_spread(settled, pixel)}, in {_rows(settled)}, when a median of "
                f"{_spread(ink, lambda v: f'{100 * v:.0f} %')} of the image's ink has been read.")
    if best in summaries:
        s = summaries[best]
        near = first_step_reaching(s["accuracy"], s["final_accuracy"] - 0.01)
        text.append(f"The best reader by validation accuracy, **{best}**, comes within 1 point of "
                    f"its final {100 * s['final_accuracy']:.2f} % after {pixel(near)} "
                    f"({_row(near)}); "
                    f"{100 * np.mean(s['settling'] <= 21 * SIDE):.0f} % of its answers have "
                    f"settled by the end of row 21 of {PIXELS // SIDE}.")
    if baselines:
        label, accuracy = max(baselines.items(), key=lambda item: item[1])
        matched = [n for n, s in summaries.items() if s["final_accuracy"] >= accuracy]
        text.append(f"The best whole-image model, the {label}, is right on "
                    f"{100 * accuracy:.2f} %" + (
                        f"; {', '.join(matched)} match{'es' if len(matched) == 1 else ''} it, "
                        f"after the last pixel." if matched else
                        "; no recurrent reader reaches that, even after the last pixel."))
    return " ".join(text)


def settling_table(summaries: dict, rows=(7, 14, 21)) -> str:
    """Per classifier: median settling step (and its row), the ink seen then, and the share of
    test images whose answer has settled by the end of each row in ``rows``."""
    from .notebook import markdown_table

    header = ["model", "median settling pixel", "row", "median ink seen",
              *[f"settled by row {r}" for r in rows]]
    table = []
    for name, s in summaries.items():
        settled = [f"{100 * np.mean(s['settling'] <= r * SIDE):.1f} %" for r in rows]
        table.append([name, f"{s['median_step']:.0f}", f"{int(np.ceil(s['median_step'] / SIDE))}",
                      f"{100 * s['median_ink']:.0f} %", *settled])
    return markdown_table(header, table)


__all__ = ["step_predictions", "settling_steps", "ink_seen", "step_probabilities",
           "typical_image", "by_class", "summary", "first_step_reaching", "reading_paragraph",
           "settling_table"]
