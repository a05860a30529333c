"""Lossless compression of binary images (N, 784) with a next-pixel predictor and an ANS coder.

A predictor with a loss of L nats per image stores an image in about L / ln 2 bits: each pixel is
entropy-coded (``constriction``'s stack/ANS coder, Bernoulli model) with the model's probability
that it is 1. Decoding is sequential in the pixels, but runs on all images at once: one recurrent
step for the whole batch per pixel.

The decoder must see exactly the encoder's probabilities, so both sides run the same code
(``_Predictions``: ``generate.Stepper`` one step at a time, never a fused full-sequence pass) on the
same batch (all images, in order), in float32 on one CPU thread (``THREADS``), and quantise each
probability to a multiple of 2**-16 away from 0 and 1 before the coder sees it. Pixel 0 has no
prediction: it is coded with p(1) = 2**-16 (it is 0 in every MNIST image). A different machine whose
float arithmetic differs is caught by the checksum of the decoded pixels, never returned.

File layout (little-endian), ``HEADER`` then the coder's 32-bit words:

    magic b"SQMZ" | version u16 | weights sha256 (32 bytes) | image count u32 |
    dtype (8 bytes, numpy's dtype.str, NUL-padded) | pixels sha256 (32 bytes) | payload bytes u64 |
    header check (the first 8 bytes of the sha256 of the header's other bytes)

The weights sha256 is the sha256 of the ``.safetensors`` file; the pixels sha256 covers the dtype,
the shape and the pixels (see ``pixels_sha256``). The header check refuses a damaged header before
any decoding (a damaged image count could otherwise ask for any amount of work).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import ConfigError, DataError
from .models import SEQUENCE_LENGTH

MAGIC = b"SQMZ"
VERSION = 1
HEADER = struct.Struct("<4sH32sI8s32sQ8s")
PRECISION = 16                 # probabilities are k / 2**16, k in 1 .. 2**16 - 1
SCALE = 1 << PRECISION
FIRST_PIXEL_ONE = 1            # k of pixel 0 (no prediction): 0 in all 70,000 MNIST images
THREADS = 1                    # torch threads while predicting (part of the arithmetic's identity)
SPLITS = ("train", "validation", "test")
DTYPE_KINDS = "buif"           # bool, unsigned, signed, float arrays of 0 and 1


@dataclass(frozen=True)
class Header:
    version: int
    weights_sha256: str
    count: int
    dtype: str
    pixels_sha256: str
    payload_bytes: int

    def pack(self) -> bytes:
        body = HEADER.pack(MAGIC, self.version, bytes.fromhex(self.weights_sha256), self.count,
                           self.dtype.encode("ascii"), bytes.fromhex(self.pixels_sha256),
                           self.payload_bytes, b"")[:-8]
        return body + _header_check(body)


def _header_check(body: bytes) -> bytes:
    return hashlib.sha256(body).digest()[:8]


# --------------------------------------------------------------------------- pixels and models


def pixels_sha256(pixels: np.ndarray, dtype: str) -> str:
    """sha256 of the dtype, the shape and the pixels (as uint8) of an (N, 784) binary array."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    digest = hashlib.sha256(f"{dtype}{pixels.shape}".encode())
    digest.update(pixels.tobytes())
    return digest.hexdigest()


def check_pixels(array, name: str = "input") -> np.ndarray:
    """``array`` as uint8 (N, 784) after checking it is a non-empty binary array of that shape."""
    array = np.asarray(array)
    if array.ndim != 2 or array.shape[1] != SEQUENCE_LENGTH or len(array) == 0:
        raise DataError(f"{name}: expected a non-empty (N, {SEQUENCE_LENGTH}) array, got shape "
                        f"{array.shape}")
    if array.dtype.kind not in DTYPE_KINDS:
        raise DataError(f"{name}: expected a bool, integer or float array, got {array.dtype}")
    if not bool(((array == 0) | (array == 1)).all()):
        raise DataError(f"{name}: holds values other than 0 and 1 (binarize it first)")
    return np.ascontiguousarray(array, dtype=np.uint8)


def read_input(source: str) -> np.ndarray:
    """A split name (train, validation, test) or an (N, 784) binary .npy, kept in its dtype."""
    if source in SPLITS:
        from .data import load_mnist

        return load_mnist().split(source).x
    path = Path(source)
    if not path.is_file():
        raise DataError(f"{source}: neither a split ({', '.join(SPLITS)}) nor a .npy file")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataError(f"{source}: not a readable .npy array ({error})") from None
    if not isinstance(array, np.ndarray):
        raise DataError(f"{source}: holds several arrays (.npz); save one (N, 784) array as .npy")
    check_pixels(array, source)
    return array


def model_path(name: str, weights_dir=None) -> Path:
    """weights/<name>.safetensors for a name like ``predict/gru-1x128`` (suffix optional)."""
    from .paths import weights_dir as default_weights_dir

    root = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    name = str(name).removesuffix(".safetensors")
    path = root / f"{name}.safetensors"
    if not path.is_file():
        shipped = ", ".join(f"predict/{p.stem}" for p in sorted(root.glob("predict/*.safetensors")))
        raise ConfigError(f"no weights {path} (shipped predictors: {shipped or 'none'})")
    return path


def load_predictor(path: Path) -> tuple[torch.nn.Module, str]:
    """(model in float32 on the CPU, sha256 of its file), verified by ``load_weights``."""
    from .evaluate import file_sha256
    from .weights import load_weights

    model, _ = load_weights(path, task="predict")
    return model.float().cpu().eval(), file_sha256(path)


def find_shipped(weights_sha256: str, weights_dir=None) -> Path | None:
    """The shipped predictor (weights/predict/*.safetensors) whose file has this sha256."""
    from .evaluate import file_sha256
    from .paths import weights_dir as default_weights_dir

    root = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    for path in sorted((root / "predict").glob("*.safetensors")):
        if file_sha256(path) == weights_sha256:
            return path
    return None


# --------------------------------------------------------------------------- probabilities


@contextlib.contextmanager
def fixed_threads(threads: int = THREADS):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Predictions:
    """The quantised p(next pixel = 1) of a batch, one recurrent step per pixel. The encoder and
    the decoder both feed it pixels 0, 1, ... in order: the same code gives the same integers."""

    def __init__(self, model, count: int):
        from .generate import Stepper

        self.step = Stepper(model)
        self.state = model.core.initial_state(count, torch.device("cpu"), torch.float32)
        self.first = np.full(count, FIRST_PIXEL_ONE, dtype=np.int32)
        self.seconds = 0.0  # time in the model's steps (the rest is the coder's)

    @torch.no_grad()
    def after(self, pixels: np.ndarray) -> np.ndarray:
        """k (N,) int32 of the pixel after ``pixels`` (N,) uint8, given the pixels fed before."""
        start = time.perf_counter()
        x = torch.from_numpy(pixels.astype(np.float32))
        logit, self.state = self.step(x, self.state)
        k = torch.sigmoid(logit).mul_(SCALE).round_().clamp_(1, SCALE - 1).to(torch.int32)
        self.seconds += time.perf_counter() - start
        return k.numpy()


def quantised_probabilities(model, pixels: np.ndarray) -> tuple[np.ndarray, float]:
    """(k (784, N) int32: p(pixel t = 1) = k / 2**16 for each image, seconds in the model)."""
    pixels = check_pixels(pixels)
    with fixed_threads():
        steps = _Predictions(model, len(pixels))
        k = np.empty((SEQUENCE_LENGTH, len(pixels)), dtype=np.int32)
        k[0] = steps.first
        columns = np.ascontiguousarray(pixels.T)
        for t in range(SEQUENCE_LENGTH - 1):
            k[t + 1] = steps.after(columns[t])
    return k, steps.seconds


def nll_bits(k: np.ndarray, pixels: np.ndarray) -> float:
    """-log2 p(pixels) under the quantised probabilities ``k`` (784, N): the size bound in bits."""
    columns = np.ascontiguousarray(check_pixels(pixels).T)
    chosen = np.where(columns == 1, k, SCALE - k).astype(np.float64)
    return float(-np.log2(chosen / SCALE).sum())


# --------------------------------------------------------------------------- coding


def _bernoulli():
    import constriction

    return constriction.stream.model.Bernoulli(perfect=False)  # the recommended quantisation


@dataclass
class Coded:
    """An encoding and what it cost: ``data`` is the whole file."""

    data: bytes
    bound_bits: float
    model_seconds: float
    coder_seconds: float

    @property
    def header_bytes(self) -> int:
        return HEADER.size


def encode(model, pixels, weights_sha256: str) -> Coded:
    """The file's bytes for ``pixels`` (N, 784) binary (its dtype is kept), coded with ``model``."""
    import constriction

    array = np.asarray(pixels)
    binary = check_pixels(array)
    k, model_seconds = quantised_probabilities(model, binary)
    start = time.perf_counter()
    coder, family = constriction.stream.stack.AnsCoder(), _bernoulli()
    # a stack: the last pixel goes in first, so that decoding runs forward from pixel 0
    for t in reversed(range(SEQUENCE_LENGTH)):
        coder.encode_reverse(binary[:, t].astype(np.int32), family, k[t] / SCALE)
    payload = coder.get_compressed().astype("<u4").tobytes()
    coder_seconds = time.perf_counter() - start
    dtype = array.dtype.str
    header = Header(VERSION, weights_sha256, len(binary), dtype, pixels_sha256(binary, dtype),
                    len(payload))
    return Coded(header.pack() + payload, nll_bits(k, binary), model_seconds, coder_seconds)


def read_header(data: bytes, name: str = "input") -> Header:
    """The header of a compressed file, after checking its magic, version, check and length."""
    if data[:len(MAGIC)] != MAGIC:
        raise DataError(f"{name}: not a seqmnist compressed file (no {MAGIC.decode()} magic)")
    if len(data) >= len(MAGIC) + 2:
        version = int.from_bytes(data[len(MAGIC):len(MAGIC) + 2], "little")
        if version != VERSION:
            raise DataError(f"{name}: format version {version}; this seqmnist reads version "
                            f"{VERSION}")
    if len(data) < HEADER.size:
        raise DataError(f"{name}: truncated ({len(data)} bytes, shorter than the "
                        f"{HEADER.size}-byte header)")
    _, version, weights, count, dtype, pixels, payload, check = HEADER.unpack_from(data)
    if _header_check(data[:HEADER.size - 8]) != check:
        raise DataError(f"{name}: damaged header (its check does not match)")
    found = len(data) - HEADER.size
    if found != payload:
        problem = "truncated" if found < payload else "has trailing bytes"
        raise DataError(f"{name}: {problem} (payload of {found} bytes, the header says {payload})")
    if payload % 4:
        raise DataError(f"{name}: damaged (a payload of {payload} bytes is not whole 32-bit words)")
    try:
        dtype = dtype.rstrip(b"\0").decode("ascii")
        if np.dtype(dtype).kind not in DTYPE_KINDS:
            raise TypeError(dtype)
    except (UnicodeDecodeError, TypeError, ValueError):
        raise DataError(f"{name}: damaged header (dtype {dtype!r})") from None
    if count == 0:
        raise DataError(f"{name}: damaged header (0 images)")
    return Header(version, weights.hex(), count, dtype, pixels.hex(), payload)


@dataclass
class Decoded:
    pixels: np.ndarray   # (N, 784) in the dtype the encoder was given
    model_seconds: float
    coder_seconds: float


def decode(model, data: bytes, weights_sha256: str, name: str = "input") -> Decoded:
    """The array stored in ``data`` (a whole file), decoded with ``model`` (whose file has sha256
    ``weights_sha256``). DataError for a damaged file, other weights or pixels that do not match
    the recorded checksum."""
    import constriction

    header = read_header(data, name)
    if header.weights_sha256 != weights_sha256:
        raise DataError(f"{name}: coded with other weights (sha256 {header.weights_sha256[:12]}...), "
                        f"not these ({weights_sha256[:12]}...)")
    words = np.frombuffer(data, dtype="<u4", offset=HEADER.size).astype(np.uint32)
    damaged = DataError(f"{name}: damaged (the decoded pixels do not match the recorded checksum)")
    coder_seconds = 0.0
    with fixed_threads():
        try:
            coder = constriction.stream.stack.AnsCoder(words)
        except Exception:  # constriction refuses some malformed streams outright
            raise damaged from None
        family = _bernoulli()
        steps = _Predictions(model, header.count)
        pixels = np.empty((SEQUENCE_LENGTH, header.count), dtype=np.uint8)
        k = steps.first
        for t in range(SEQUENCE_LENGTH):
            start = time.perf_counter()
            try:
                pixels[t] = coder.decode(family, k / SCALE)
            except Exception:
                raise damaged from None
            coder_seconds += time.perf_counter() - start
            if t + 1 < SEQUENCE_LENGTH:
                k = steps.after(pixels[t])
    pixels = np.ascontiguousarray(pixels.T)
    if not coder.is_empty() or pixels_sha256(pixels, header.dtype) != header.pixels_sha256:
        raise damaged
    return Decoded(pixels.astype(header.dtype), steps.seconds, coder_seconds)


# --------------------------------------------------------------------------- files


def _write_npy(path: Path, array: np.ndarray) -> None:
    from .data import atomic_write_bytes

    atomic_write_bytes(path, lambda handle: np.save(handle, array, allow_pickle=False))


def compress_file(source: str, output, model_name: str, weights_dir=None) -> tuple[Header, Coded]:
    """Compress a split or an (N, 784) .npy into ``output`` (written atomically)."""
    from .data import atomic_write_bytes

    pixels = read_input(source)
    model, sha = load_predictor(model_path(model_name, weights_dir))
    coded = encode(model, pixels, sha)
    atomic_write_bytes(Path(output), lambda handle: handle.write(coded.data))
    return read_header(coded.data), coded


def decompress_file(source, output, model_name: str | None = None,
                    weights_dir=None) -> tuple[Header, Path]:
    """Restore the array of a compressed file into ``output`` (.npy, written atomically); the
    model is the shipped predictor whose sha256 the file records, or ``model_name``."""
    source = Path(source)
    try:
        data = source.read_bytes()
    except OSError as error:
        raise DataError(f"{source}: cannot read ({error.strerror or error})") from None
    header = read_header(data, str(source))
    if model_name is not None:
        path = model_path(model_name, weights_dir)
    else:
        path = find_shipped(header.weights_sha256, weights_dir)
        if path is None:
            raise DataError(f"{source}: coded with weights (sha256 {header.weights_sha256[:12]}...) "
                            f"that are not among the shipped predictors; pass --model NAME")
    model, sha = load_predictor(path)
    if sha != header.weights_sha256:
        raise DataError(f"{source}: coded with other weights (sha256 {header.weights_sha256[:12]}"
                        f"...) than {path.name} ({sha[:12]}...)")
    decoded = decode(model, data, sha, str(source))
    _write_npy(Path(output), decoded.pixels)
    return header, path


# --------------------------------------------------------------------------- measurements


def round_trip(path, pixels) -> dict:
    """Encode and decode ``pixels`` with the predictor at ``path``: sizes, the NLL bound, the
    seconds in the model's steps and in the coder on each side, and whether it came back exact."""
    model, sha = load_predictor(Path(path))
    start = time.perf_counter()
    coded = encode(model, pixels, sha)
    encode_seconds = time.perf_counter() - start
    start = time.perf_counter()
    decoded = decode(model, coded.data, sha)
    decode_seconds = time.perf_counter() - start
    return {"count": len(pixels), "bytes": len(coded.data), "header_bytes": HEADER.size,
            "bound_bits": coded.bound_bits, "exact": bool(np.array_equal(decoded.pixels, pixels)),
            "encode_seconds": encode_seconds, "encode_model_seconds": coded.model_seconds,
            "encode_coder_seconds": coded.coder_seconds, "decode_seconds": decode_seconds,
            "decode_model_seconds": decoded.model_seconds,
            "decode_coder_seconds": decoded.coder_seconds}


def reference_sizes(pixels) -> dict:
    """Bytes of general-purpose compressors on the same bits, packed one bit per pixel."""
    import bz2
    import gzip
    import lzma

    packed = np.packbits(check_pixels(pixels)).tobytes()
    return {"raw (1 bit per pixel)": len(packed),
            "gzip -9": len(gzip.compress(packed, compresslevel=9, mtime=0)),
            "bz2 -9": len(bz2.compress(packed, compresslevel=9)),
            "xz -9e": len(lzma.compress(packed, preset=9 | lzma.PRESET_EXTREME))}


JBIG_PROGRAM = "pbmtojbg"   # JBIG1 (ITU T.82) from jbigkit (Debian: jbigkit-bin)


def pbm_page(pixels) -> bytes:
    """A binary PBM (P4) page 28 pixels wide: the images stacked top to bottom (1 = black)."""
    rows = check_pixels(pixels).reshape(-1, 28)
    return b"P4\n28 %d\n" % len(rows) + np.packbits(rows, axis=1).tobytes()


def jbig1_size(pixels) -> int | None:
    """Bytes of JBIG1 (``pbmtojbg -q``) with all images stacked into one 28-pixel-wide page, or
    None where the program is not installed."""
    import shutil
    import subprocess
    import tempfile

    program = shutil.which(JBIG_PROGRAM)
    if program is None:
        return None
    page = pbm_page(pixels)
    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / "page.pbm", Path(folder) / "page.jbg"
        source.write_bytes(page)
        subprocess.run([program, "-q", str(source), str(target)], check=True,
                       capture_output=True, timeout=600)
        return target.stat().st_size


def nats_to_bytes(nats: float) -> float:
    """L nats are L / ln 2 bits, L / (8 ln 2) bytes."""
    return nats / (8 * math.log(2))


__all__ = ["MAGIC", "VERSION", "HEADER", "PRECISION", "THREADS", "Header", "Coded", "Decoded",
           "check_pixels", "read_input", "model_path", "load_predictor", "find_shipped",
           "quantised_probabilities", "nll_bits", "encode", "decode", "read_header",
           "compress_file", "decompress_file", "nats_to_bytes", "pixels_sha256", "round_trip",
           "reference_sizes", "jbig1_size"]
