"""Lossless compression of the binarized MNIST test images: the shipped next-pixel predictors with
an ANS coder (``seqmnist.compress``) against general-purpose compressors and JBIG1, in one run.

For every shipped predictor (weights/predict/*.safetensors) the test images are encoded and decoded
(checked bit-exact): bytes per image against the NLL bound (-log2 p of the pixels under the
quantised model, pixel 0 included), and the seconds of each side, split into the model's recurrent
steps (one step for all images per pixel) and the coder. gzip -9, bz2 -9 and xz -9e (Python's
modules) compress the same bits packed one bit per pixel (np.packbits: 98 bytes per image raw);
JBIG1 is ``pbmtojbg -q`` (Debian's jbigkit-bin) on all images stacked into one 28-pixel-wide page,
skipped with a line where it is not installed. Coding runs on one thread (``compress.THREADS``,
part of the format); the CPU may be shared, so the times are of this run. Run as

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_compress.py [--limit N] [--models ...]
"""

from __future__ import annotations

import argparse
import math
import time

from seqmnist import compress, load_mnist
from seqmnist.notebook import markdown_table
from seqmnist.paths import weights_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, help="only the first LIMIT test images")
    parser.add_argument("--models", nargs="+", help="predictor names (default: every shipped one)")
    args = parser.parse_args()

    pixels = load_mnist().test.x[:args.limit]
    count = len(pixels)
    names = args.models or sorted(p.stem for p in (weights_dir() / "predict").glob("*.safetensors"))
    print(f"{count:,} binarized test images; header {compress.HEADER.size} bytes per file; "
          f"coding on {compress.THREADS} thread\n")

    sizes, timings = [], []
    for name in names:
        path = compress.model_path(f"predict/{name}")
        r = compress.round_trip(path, pixels)
        if not r["exact"]:
            raise SystemExit(f"{name}: the round trip is not bit-exact")
        bound = r["bound_bits"] / 8
        payload = r["bytes"] - r["header_bytes"]
        sizes.append((r["bytes"], [f"{name} + ANS", f"{r['bytes']:,}", f"{r['bytes'] / count:.2f}",
                                   f"{bound / count:.2f} ({r['bound_bits'] * math.log(2) / count:.2f} nats)",
                                   f"{100 * (payload / bound - 1):+.3f} %"]))
        timings.append([name, f"{r['encode_seconds']:.1f}", f"{r['encode_model_seconds']:.1f}",
                        f"{r['encode_coder_seconds']:.2f}", f"{r['decode_seconds']:.1f}",
                        f"{r['decode_model_seconds']:.1f}", f"{r['decode_coder_seconds']:.2f}",
                        f"{count / r['decode_seconds']:,.0f}",
                        f"{100 * r['decode_coder_seconds'] / r['decode_seconds']:.1f} %"])
    for method, size in compress.reference_sizes(pixels).items():
        sizes.append((size, [method, f"{size:,}", f"{size / count:.2f}", "", ""]))
    start = time.perf_counter()
    jbig = compress.jbig1_size(pixels)
    if jbig is not None:
        sizes.append((jbig, [f"JBIG1 (pbmtojbg -q, one 28 x {28 * count:,} page)", f"{jbig:,}",
                             f"{jbig / count:.2f}", "", ""]))
    sizes.sort(key=lambda item: item[0])
    print(markdown_table(["method", "bytes", "bytes/image", "NLL bound, bytes/image",
                          "payload over the bound"], [row for _, row in sizes]))
    if jbig is None:
        print(f"\nJBIG1 skipped: `{compress.JBIG_PROGRAM}` is not installed (Debian: apt-get "
              f"install jbigkit-bin)")
    else:
        print(f"\nJBIG1 took {time.perf_counter() - start:.1f} s")
    print("\nSeconds for all images (model: the recurrent steps and quantisation; coder: "
          "constriction's ANS calls)\n")
    print(markdown_table(["predictor", "encode", "model", "coder", "decode", "model", "coder",
                          "decoded images/s", "coder's share of decoding"], timings))


if __name__ == "__main__":
    main()
