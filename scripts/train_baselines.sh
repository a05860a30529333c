#!/usr/bin/env bash
# The whole-image baselines' final recipe (campaign.BASELINE_RECIPE: the sweeps' best rate 3e-3,
# shifts of up to 2 pixels, dropout 0.25, 30 epochs, an EMA of the weights, highest validation
# accuracy kept), seeds 0 to 2 unless SEEDS says otherwise, into
# weights/sweeps/baselines/seed<N>/baselines/. About 30 minutes per CNN seed and 4 per MLP seed
# on one core. Then: python -m seqmnist evaluate --weights-dir weights/sweeps/baselines/seed<N>
# --splits test scores each seed, and python -m seqmnist campaign ship ships each baseline's seed
# best on validation.
# Usage: [SEEDS="3 4"] scripts/train_baselines.sh [cnn] [mlp]
#   (default both models; one model per shell trains side by side)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
archs=("$@")
[ $# -gt 0 ] || archs=(cnn mlp)
read -r -a seeds <<< "${SEEDS:-0 1 2}"
for seed in "${seeds[@]}"; do
  [[ "$seed" =~ ^[0-9]+$ ]] || { echo "error: SEEDS must be whole numbers, got '$seed'" >&2; exit 2; }
done
for arch in "${archs[@]}"; do
  case "$arch" in cnn|mlp) ;; *) echo "error: unknown baseline '$arch' (cnn or mlp)" >&2; exit 2;; esac
done
for arch in "${archs[@]}"; do
  for seed in "${seeds[@]}"; do
    "$PY" -m seqmnist train classify "$arch" --run-dir "build/baseline-runs/seed$seed-$arch" \
      --weights "weights/sweeps/baselines/seed$seed/baselines/$arch.safetensors" \
      --lr 0.003 --epochs 30 --dropout 0.25 --shift 2 --warmup-steps 100 --ema 0.999 \
      --select accuracy \
      --seed "$seed" --quiet
  done
done
