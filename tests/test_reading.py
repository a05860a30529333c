"""Reading curves: the head after every pixel, the settling step and the ink seen by then, from the
same pass that scores the test set."""

import numpy as np
import pytest
import torch

from seqmnist import analysis_plots, compare, reading
from seqmnist.weights import load_weights

SMALL = "weights/classify/lstm-1x32.safetensors"


def test_settling_step_of_hand_made_beliefs():
    beliefs = np.array([[3, 1, 3, 5, 7],    # step 1
                        [3, 2, 1, 3, 7],
                        [3, 3, 3, 5, 7],
                        [3, 3, 3, 5, 7],
                        [3, 3, 1, 5, 2],
                        [3, 3, 3, 5, 2]])   # step 6: the final beliefs
    # never changes: 1; settles on 3 at step 3; right at step 1 but wavers until step 5: 6;
    # one excursion at step 2: 3; changes at the last-but-one step: 5
    np.testing.assert_array_equal(reading.settling_steps(beliefs), [1, 3, 6, 3, 5])


def test_settling_step_when_the_answer_changes_at_the_last_pixel():
    beliefs = np.array([[4], [4], [4], [9]])
    np.testing.assert_array_equal(reading.settling_steps(beliefs), [4])


def test_ink_seen_by_a_step():
    pixels = np.array([[0, 1, 1, 0, 1, 0],
                       [1, 0, 0, 0, 0, 1],
                       [0, 0, 0, 0, 0, 0]])
    seen = reading.ink_seen(pixels, np.array([3, 6, 2]))
    np.testing.assert_allclose(seen, [2 / 3, 1.0, 1.0])   # an empty image has seen all its ink
    np.testing.assert_allclose(reading.ink_seen(pixels[:2], np.array([1, 1])), [0.0, 0.5])


def brute_force_beliefs(model, pixels):
    """(784, N) the argmax of the head after every pixel, from one unbatched, unsorted pass."""
    with torch.no_grad():
        outputs, _ = model.core(pixels.t().unsqueeze(-1))
        return model.head(outputs).argmax(-1).numpy()


def test_the_reading_pass_agrees_with_the_model_and_a_brute_force_reading(mnist):
    model, _ = load_weights(SMALL)
    pixels, labels = mnist.test.tensors()
    pixels, labels = pixels[:48], labels[:48]
    run = compare.predict(model, pixels, batch_size=16, labels=labels)  # sorted, three batches
    with torch.no_grad():
        final = model(pixels.t().unsqueeze(-1)).argmax(1).numpy()
    np.testing.assert_array_equal(run["predicted"], final)
    np.testing.assert_array_equal(run["predicted"], compare.predict(model, pixels)["predicted"])
    beliefs = brute_force_beliefs(model, pixels)
    np.testing.assert_array_equal(run["reading"]["correct"], (beliefs == labels.numpy()).sum(1))
    np.testing.assert_array_equal(run["reading"]["settling"], reading.settling_steps(beliefs))
    assert run["reading"]["correct"][-1] == (final == labels.numpy()).sum()
    # the early beliefs are not the final ones: the first rows are blank for every image
    assert run["reading"]["settling"].min() > 28


def test_one_image_read_step_by_step(mnist):
    model, _ = load_weights(SMALL)
    pixels = mnist.test.x[:3]
    probabilities = reading.step_probabilities(model, pixels[2])
    assert probabilities.shape == (784, 10)
    np.testing.assert_allclose(probabilities.sum(1), 1, atol=1e-5)
    with torch.no_grad():
        final = torch.softmax(model(torch.as_tensor(pixels[2:3], dtype=torch.float32)
                                    .t().unsqueeze(-1)), -1)[0].numpy()
    np.testing.assert_allclose(probabilities[-1], final, atol=1e-5)
    beliefs = brute_force_beliefs(model, torch.as_tensor(pixels, dtype=torch.float32))
    np.testing.assert_array_equal(probabilities.argmax(1), beliefs[:, 2])


def test_summary_and_paragraph_follow_the_numbers(mnist):
    pixels, labels = mnist.test.x[:4], mnist.test.y[:4]
    accuracy = np.zeros(784)
    accuracy[99:], accuracy[299:], accuracy[699:] = 0.5, 0.75, 1.0   # 50 % from pixel 100
    run = {"predicted": labels.copy(),
           "reading": {"correct": accuracy * 4, "settling": np.array([100, 200, 300, 784])}}
    s = reading.summary(run, pixels, labels)
    assert s["median_step"] == 250 and s["final_accuracy"] == 1.0
    np.testing.assert_allclose(s["ink"][-1], 1.0)   # the whole image read
    later = {**s, "accuracy": np.r_[np.zeros(199), np.full(585, 0.5)], "final_accuracy": 0.5,
             "median_step": 600.0, "median_ink": 0.9}
    text = reading.reading_paragraph({"lstm-1x32": s, "gru-1x32": later}, {"CNN": 0.995},
                                     images=4, best="lstm-1x32", quick=True)
    assert "trained on the output after the last pixel only" in text
    assert ("reach 50 % accuracy between pixel 100 (lstm-1x32) and pixel 200 (gru-1x32), in "
            "rows 4 to 8.") in text
    assert "reach 90 % accuracy at pixel 700 (lstm-1x32), in row 25; 1 of 2 never get" in text
    assert ("settled (the median settling step) between pixel 250 (lstm-1x32) and pixel 600 "
            "(gru-1x32), in rows 9 to 22") in text
    assert "within 1 point of its final 100.00 % after pixel 700 (row 25)" in text
    assert "75 % of its answers have settled by the end of row 21" in text
    assert "the CNN, is right on 99.50 %" in text and "lstm-1x32 matches it" in text
    assert "first 4 test images (quick mode)" in text
    table = reading.settling_table({"lstm-1x32": s})
    assert "| lstm-1x32 | 250 | 9 |" in table and "| 25.0 % | 75.0 % | 75.0 % |" in table


def test_typical_image_is_a_correct_one_at_the_median():
    settling = np.array([700, 100, 400, 420, 10])
    correct = np.array([True, True, False, True, False])
    assert reading.typical_image(settling, correct) == 3   # median of 700, 100, 420 is 420


def test_the_figures_and_the_animation(mnist, tmp_path):
    from PIL import Image

    model, _ = load_weights(SMALL)
    image = mnist.test.x[0]
    probabilities = reading.step_probabilities(model, image)
    strip = analysis_plots.reading_strip(image, probabilities, label=int(mnist.test.y[0]))
    assert len(strip.axes) == 16
    path = analysis_plots.reading_animation(image, probabilities, tmp_path / "reading.gif")
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.n_frames >= 28   # one frame per row
    frame = analysis_plots.revealed(image, 10)
    np.testing.assert_array_equal(frame[:10, :, 0], image.reshape(28, 28)[:10])
    unread = np.broadcast_to(analysis_plots.UNREAD_COLOUR, (18, 28, 3))
    np.testing.assert_allclose(frame[10:], unread)
    with pytest.raises(ValueError, match="no models"):
        analysis_plots.reliability_diagrams({})
