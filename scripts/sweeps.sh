#!/usr/bin/env bash
# Every model's learning-rate sweep (issue 18), each recorded in weights/sweeps/<task>-<arch>.json.
# A sweep skips the rates its record already holds, so this script both states the commands behind
# the records and trains what is still missing. Each recurrent grid is five rates a factor of 2
# apart at the model's shipped recipe: classifiers centred on the campaigns' rule (1e-2 *
# sqrt(64 / units)), predictors on four times it (the swept predictors' best lies at two to ten
# times it, four at the median). One rate of a 3-epoch sweep takes about 6 minutes on one core for
# a 1x64 model, 8 to 10 for an lstm-3x32, 12 for a gru-3x32 or a gru-1x128 and 14 for an
# lstm-1x128.
#
# Usage: scripts/sweeps.sh [NAME ...]   (e.g. classify-gru-1x128; default: every sweep)
# Options for every sweep go in SWEEP_OPTIONS: "--workers 2 --threads 1" here (two rates at once),
# "--device cuda --workers 1 --gpu-slots 7" on a GPU (one worker training every rate at once).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
read -r -a options <<< "${SWEEP_OPTIONS:-}"

# name | epochs | recipe options | rates
sweeps="
classify-lstm-1x32  | 3 | --select accuracy                       | 0.00354 0.00707 0.0141 0.0283 0.0566
classify-lstm-1x64  | 2 |                                         | 0.001 0.003 0.01 0.03 0.1
classify-lstm-1x128 | 3 | --shift 2 --select accuracy             | 0.00177 0.00354 0.00707 0.0141 0.0283
classify-lstm-3x32  | 3 | --shift 3 --dropout 0.25 --select accuracy | 0.00354 0.00707 0.0141 0.0283 0.0566
classify-gru-1x32   | 3 | --select accuracy                       | 0.00354 0.00707 0.0141 0.0283 0.0566
classify-gru-1x64   | 3 | --shift 2 --select accuracy             | 0.0025 0.005 0.01 0.02 0.04
classify-gru-1x128  | 3 | --shift 3 --dropout 0.25 --select accuracy | 0.00177 0.00354 0.00707 0.0141 0.0283
classify-gru-3x32   | 3 | --shift 2 --select accuracy             | 0.00354 0.00707 0.0141 0.0283 0.0566
predict-lstm-1x32   | 3 |                                         | 0.00106 0.00212 0.00424 0.00849 0.017 0.034 0.068
predict-lstm-1x64   | 2 |                                         | 0.0003 0.001 0.003 0.01 0.03 0.1
predict-lstm-1x128  | 3 |                                         | 0.00212 0.00424 0.00849 0.017 0.034
predict-lstm-3x32   | 3 |                                         | 0.00424 0.00849 0.017 0.034 0.068
predict-gru-1x32    | 3 |                                         | 0.00106 0.00212 0.00424 0.00849 0.017 0.034 0.068
predict-gru-1x64    | 3 |                                         | 0.003 0.006 0.012 0.024 0.048
predict-gru-1x128   | 3 |                                         | 0.00212 0.00424 0.00849 0.017 0.034
predict-gru-3x32    | 3 |                                         | 0.00424 0.00849 0.017 0.034 0.068
classify-cnn        | 3 | --warmup-steps 100 --dropout 0.25 --shift 2 | 0.0003 0.001 0.003 0.01 0.03
classify-mlp        | 3 | --warmup-steps 100 --dropout 0.25 --shift 2 | 0.0003 0.001 0.003 0.01 0.03
"

known=$(awk -F'|' 'NF > 1 {gsub(/ /, "", $1); print $1}' <<< "$sweeps")
for wanted in "$@"; do
  grep -qx "$wanted" <<< "$known" || { echo "error: no sweep named '$wanted'" >&2; exit 2; }
done
while IFS='|' read -r name epochs recipe rates; do
  name=${name// /}
  [ -n "$name" ] || continue
  if [ $# -gt 0 ] && ! printf '%s\n' "$@" | grep -qx "$name"; then continue; fi
  read -r -a recipe_options <<< "$recipe"
  read -r -a rate_list <<< "$rates"
  echo "== sweep $name"
  "$PY" -m seqmnist sweep "${name%%-*}" "${name#*-}" --lrs "${rate_list[@]}" \
    --epochs "${epochs// /}" "${recipe_options[@]}" "${options[@]}" --quiet
done <<< "$sweeps"
