"""Lossless compression with a next-pixel predictor: bit-exact round trips for every architecture,
a size at the model's NLL bound, and every kind of bad file refused in one line."""

import dataclasses
import math

import numpy as np
import pytest

from seqmnist import compress
from seqmnist.__main__ import main
from seqmnist.errors import DataError
from seqmnist.evaluate import file_sha256
from seqmnist.generate import image_nll
from seqmnist.models import build_model
from seqmnist.paths import ROOT
from seqmnist.weights import save_weights

TINY = ("lstm-1x8", "gru-1x8", "lstm-3x4", "gru-3x4")
SHIPPED = ROOT / "weights" / "predict" / "gru-1x32.safetensors"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A weights folder with tiny random predictors (predict/<arch>.safetensors)."""
    root = tmp_path_factory.mktemp("weights")
    for seed, arch in enumerate(TINY):
        save_weights(build_model("predict", arch, seed=seed), root / "predict" / f"{arch}.safetensors",
                     {"config": {"dropout": 0.0}})
    return root


@pytest.fixture
def images(mnist):
    return mnist.test.x[:24]


@pytest.fixture
def coded(weights, images, tmp_path):
    """A file compressed with the tiny gru-1x8, and where it lies."""
    source, path = tmp_path / "x.npy", tmp_path / "x.sqmz"
    np.save(source, images)
    compress.compress_file(str(source), path, "predict/gru-1x8", weights)
    return path


@pytest.mark.parametrize("arch, dtype", list(zip(TINY, (np.uint8, np.float32, bool, np.int64))))
def test_round_trip_is_bit_exact_for_every_architecture(weights, images, tmp_path, arch, dtype):
    source, packed, restored = tmp_path / "x.npy", tmp_path / "x.sqmz", tmp_path / "y.npy"
    np.save(source, images.astype(dtype))
    header, coded = compress.compress_file(str(source), packed, f"predict/{arch}", weights)
    assert header.weights_sha256 == file_sha256(weights / "predict" / f"{arch}.safetensors")
    assert header.count == len(images)
    _, found = compress.decompress_file(packed, restored, weights_dir=weights)  # found by sha256
    assert found.stem == arch
    out = np.load(restored)
    assert out.dtype == np.dtype(dtype) and out.shape == images.shape
    assert np.array_equal(out, images.astype(dtype))


def test_size_is_within_the_bound_plus_header_on_100_test_images(mnist):
    images = mnist.test.x[:100]
    model, sha = compress.load_predictor(SHIPPED)
    coded = compress.encode(model, images, sha)
    payload_bits = 8 * (len(coded.data) - compress.HEADER.size)
    # the coder's fixed cost: its 64-bit state, flushed at the end
    assert coded.bound_bits <= payload_bits <= 1.005 * coded.bound_bits + 64
    # the bound is the model's own NLL (pixels 1..783), up to the 16-bit quantisation and pixel 0
    model_bits = float(image_nll(model, images).sum()) / math.log(2)
    assert abs(coded.bound_bits - model_bits) < 1e-3 * model_bits
    assert np.array_equal(compress.decode(model, coded.data, sha).pixels, images)


def test_encoder_and_decoder_see_the_same_quantised_probabilities(weights, images):
    model, _ = compress.load_predictor(weights / "predict" / "lstm-1x8.safetensors")
    k, _ = compress.quantised_probabilities(model, images)
    again, _ = compress.quantised_probabilities(model, images)
    assert k.dtype == np.int32 and k.shape == (784, len(images))
    assert np.array_equal(k, again) and k.min() >= 1 and k.max() < 2 ** compress.PRECISION
    assert (k[0] == compress.FIRST_PIXEL_ONE).all()


def _set(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value):]


def _flip(data: bytes, offset: int) -> bytes:
    return _set(data, offset, bytes([data[offset] ^ 0x10]))


def _with_header(data: bytes, **fields) -> bytes:
    """``data`` under a header (with a valid check) whose ``fields`` are replaced."""
    header = dataclasses.replace(compress.read_header(data), **fields)
    return header.pack() + data[compress.HEADER.size:]


BAD_FILES = {
    "truncated": (lambda d: d[:-4], "truncated"),
    "truncated header": (lambda d: d[:40], "truncated"),
    "trailing bytes": (lambda d: d + b"\0\0\0\0", "trailing bytes"),
    "flipped payload byte": (lambda d: _flip(d, len(d) - 9), "damaged"),
    "other image count": (lambda d: _with_header(d, count=8), "checksum"),
    "other dtype": (lambda d: _with_header(d, dtype="<f4"), "checksum"),
    "wrong magic": (lambda d: b"PK\3\4" + d[4:], "not a seqmnist compressed file"),
    "wrong version": (lambda d: _set(d, 4, (2).to_bytes(2, "little")), "format version 2"),
    "flipped header byte": (lambda d: _flip(d, 60), "damaged header"),
    "unknown weights": (lambda d: _with_header(d, weights_sha256="ab" * 32),
                        "not among the shipped predictors"),
}


@pytest.mark.parametrize("kind", BAD_FILES)
def test_each_kind_of_bad_file_is_refused(weights, coded, tmp_path, kind):
    mutate, message = BAD_FILES[kind]
    coded.write_bytes(mutate(coded.read_bytes()))
    out = tmp_path / "y.npy"
    with pytest.raises(DataError, match=message):
        compress.decompress_file(coded, out, weights_dir=weights)
    assert not out.exists()


def test_other_weights_are_refused(weights, coded, tmp_path):
    with pytest.raises(DataError, match="other weights"):
        compress.decompress_file(coded, tmp_path / "y.npy", "predict/lstm-1x8", weights)


def test_the_checksum_catches_a_flipped_pixel(weights, images, coded, tmp_path):
    """A payload that decodes fine, under a header whose checksum is of one other pixel."""
    data = coded.read_bytes()
    header = compress.read_header(data)
    other = images.copy()
    other[3, 400] ^= 1
    coded.write_bytes(_with_header(data, pixels_sha256=compress.pixels_sha256(other, header.dtype)))
    with pytest.raises(DataError, match="checksum"):
        compress.decompress_file(coded, tmp_path / "y.npy", weights_dir=weights)
    # the genuine header over the same payload decodes
    coded.write_bytes(data)
    compress.decompress_file(coded, tmp_path / "y.npy", weights_dir=weights)
    assert np.array_equal(np.load(tmp_path / "y.npy"), images)


def test_inputs_that_are_not_binary_images_are_refused(weights, tmp_path):
    for array, message in ((np.full((2, 784), 0.5), "other than 0 and 1"),
                           (np.zeros((2, 28, 28)), "expected a non-empty"),
                           (np.zeros((0, 784)), "expected a non-empty")):
        np.save(tmp_path / "bad.npy", array)
        with pytest.raises(DataError, match=message):
            compress.compress_file(str(tmp_path / "bad.npy"), tmp_path / "x.sqmz",
                                   "predict/gru-1x8", weights)
    assert not (tmp_path / "x.sqmz").exists()


def test_command_line_round_trip_and_one_line_errors(weights, images, tmp_path, monkeypatch,
                                                     capsys):
    monkeypatch.setenv("SEQMNIST_WEIGHTS", str(weights))
    source, packed, restored = tmp_path / "x.npy", tmp_path / "x.sqmz", tmp_path / "y.npy"
    np.save(source, images)
    assert main(["compress", str(source), str(packed), "--model", "predict/gru-3x4"]) == 0
    assert main(["decompress", str(packed), str(restored)]) == 0
    assert np.array_equal(np.load(restored), images)
    assert "decoded with predict/gru-3x4" in capsys.readouterr().out
    packed.write_bytes(packed.read_bytes()[:-8])
    for argv, message in ((["decompress", str(packed), str(restored)], "truncated"),
                          (["decompress", str(source), str(restored)], "not a seqmnist"),
                          (["compress", "nosuch", str(packed)], "neither a split"),
                          (["compress", str(source), str(packed), "--model", "predict/gru-9x9"],
                           "no weights")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_reference_compressors_see_the_images_as_packed_bits(images):
    sizes = compress.reference_sizes(images)
    assert sizes["raw (1 bit per pixel)"] == 98 * len(images)
    assert all(0 < size < 98 * len(images) for size in sizes.values() if size != 98 * len(images))
    pil = pytest.importorskip("PIL.Image")
    import io

    page = np.asarray(pil.open(io.BytesIO(compress.pbm_page(images))))  # PBM: 1 = black = False
    assert page.shape == (28 * len(images), 28)
    assert np.array_equal(~page, images.reshape(-1, 28).astype(bool))
