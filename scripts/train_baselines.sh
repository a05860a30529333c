#!/usr/bin/env bash
# The whole-image baselines' final recipe (campaign.BASELINE_RECIPE: the sweeps' best rate 3e-3,
# shifts of up to 2 pixels, dropout 0.25, 20 epochs, highest validation accuracy kept), three
# seeds each, into weights/sweeps/baselines/seed<N>/baselines/. About 8 minutes per CNN seed and
# 2 per MLP seed on the 2-core CPU. Then: python -m seqmnist evaluate --weights-dir
# weights/sweeps/baselines/seed<N> scores each seed; the seed best on validation ships.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
for arch in cnn mlp; do
  for seed in 0 1 2; do
    "$PY" -m seqmnist train classify "$arch" --run-dir "build/baseline-runs/seed$seed-$arch" \
      --weights "weights/sweeps/baselines/seed$seed/baselines/$arch.safetensors" \
      --lr 0.003 --epochs 20 --dropout 0.25 --shift 2 --warmup-steps 100 --select accuracy \
      --seed "$seed" --quiet
  done
done
