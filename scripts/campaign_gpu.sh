#!/usr/bin/env bash
# Train every unfinished run of one or more campaigns at once on a GPU, each to its last epoch:
# `campaign run` on a local Dask cluster of one worker whose WORKERS runs share the card, their
# small kernels side by side under CUDA MPS. With SNAPSHOT_DIR, each weights folder (checkpoints
# included) is packed there every SNAPSHOT_SECONDS (45) and at the end, so that a machine taken
# back mid-run still returns its progress.
#
#   scripts/campaign_gpu.sh BUDGET_MINUTES [SNAPSHOT_DIR [CAMPAIGN_DIR...]]
#
# Each CAMPAIGN_DIR is a campaign's folder (weights/sweeps/campaign<N>, its runs in runs.json),
# packed into SNAPSHOT_DIR/<folder name>.tgz. Without one, the campaign of SEQMNIST_WEIGHTS and
# SEQMNIST_CAMPAIGN_FILE (default: the shipped weights/) trains, packed into <folder name>.tgz too.
# SEQMNIST_DATA serves a machine without the dataset download. DEVICE (cuda), WORKERS (runs at once
# per campaign, 16) and PYTHON (python3) may be overridden; on DEVICE=cpu the runs are worker
# processes instead of GPU slots.
set -euo pipefail

budget=${1:?usage: scripts/campaign_gpu.sh BUDGET_MINUTES [SNAPSHOT_DIR [CAMPAIGN_DIR...]]}
snapshots=${2:-}
shift $(($# < 2 ? $# : 2))
device=${DEVICE:-cuda}
workers=${WORKERS:-16}
every=${SNAPSHOT_SECONDS:-45}
python=${PYTHON:-python3}
repo=$(cd "$(dirname "$0")/.." && pwd)
# The package need not be installed; the allocator re-exec is a CPU-only speed-up.
export PYTHONPATH="$repo/lib${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 SEQMNIST_NO_REEXEC=1
# The campaign engine (dask, distributed) on a machine without internet access: from the wheels
# that scripts/gpu_wheels.sh packs into build/wheels, when this Python lacks them.
if ! "$python" -c "import distributed" 2>/dev/null; then
    wheels=${WHEELS:-$repo/build/wheels}
    [ -d "$wheels" ] || { echo "no dask distributed for $python and no $wheels: run scripts/gpu_wheels.sh" >&2; exit 2; }
    "$python" -m pip install --quiet --no-index --find-links "$wheels" \
        $(grep -E '^(dask|distributed|dask-jobqueue)==' "$repo/requirements.txt")
fi
campaign_folders=$#  # 0: the single campaign the environment names
folders=()
for folder in "$@"; do
    [ -f "$folder/runs.json" ] || { echo "$folder: no runs.json (not a campaign folder)" >&2; exit 2; }
    folders+=("$(cd "$folder" && pwd)")
done
[ $campaign_folders -gt 0 ] || folders=("${SEQMNIST_WEIGHTS:-$repo/weights}")

snapshot() {  # fails when a folder could not be packed; the previous archive of it stays
    [ -n "$snapshots" ] || return 0
    mkdir -p "$snapshots"
    local folder partial status failed=0
    for folder in "${folders[@]}"; do
        [ -d "$folder" ] || continue   # a runner still starting has not created it yet
        partial="$snapshots/.$(basename "$folder").$BASHPID.tgz"
        # tar exits 1 when a file changed while read (a worker saving): the archive is still usable
        status=0
        tar czf "$partial" -C "$(dirname "$folder")" "$(basename "$folder")" || status=$?
        if [ $status -le 1 ]; then
            mv "$partial" "$snapshots/$(basename "$folder").tgz"
        else
            rm -f "$partial"
            echo "[campaign_gpu] could not pack $folder (tar status $status)" >&2
            failed=1
        fi
    done
    return $failed
}

use_folder() {  # the campaign of one weights folder (its runner writes the status table)
    export SEQMNIST_WEIGHTS=$1
    [ $campaign_folders -eq 0 ] || export SEQMNIST_CAMPAIGN_FILE=$1/runs.json
}

mps=0
if [ "$device" = cuda ] && command -v nvidia-cuda-mps-control >/dev/null; then
    export CUDA_MPS_PIPE_DIRECTORY=/tmp/seqmnist-mps CUDA_MPS_LOG_DIRECTORY=/tmp/seqmnist-mps-log
    mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
    nvidia-cuda-mps-control -d && mps=1
    # a client that cannot reach the daemon hangs: check one, else go on without MPS
    if [ $mps = 1 ] && ! timeout 40 "$python" -c "import torch; torch.zeros(1, device='cuda')"; then
        echo quit | nvidia-cuda-mps-control || true
        unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
        mps=0
    fi
    echo "[campaign_gpu] CUDA MPS: $([ $mps = 1 ] && echo on || echo off)"
fi

# the sleep runs in the background so that TERM ends the looper (and its sleep) at once: an
# orphaned sleep would hold the caller's output open for up to SNAPSHOT_SECONDS. A snapshot under
# way when TERM comes is finished first (else its partial archive would be left behind), and one
# that fails leaves the looper running: the next one retries.
(
    stopping=
    trap 'stopping=1; kill $pause 2>/dev/null || true' TERM
    while [ -z "$stopping" ]; do
        sleep "$every" & pause=$!
        wait $pause || true
        [ -n "$stopping" ] || snapshot || true
    done
) &
looper=$!
cleanup() {
    kill "$looper" 2>/dev/null || true
    if [ $mps = 1 ]; then echo quit | nvidia-cuda-mps-control || true; fi
}
trap cleanup EXIT

# one Dask worker holding WORKERS GPU slots (each run asks for one), or WORKERS processes on a CPU
if [ "$device" = cpu ]; then engine=(--workers "$workers"); else engine=(--workers 1 --gpu-slots "$workers"); fi
runners=()
for folder in "${folders[@]}"; do
    (use_folder "$folder"; exec "$python" -m seqmnist campaign run --budget-minutes "$budget" \
        "${engine[@]}" --chunk-epochs 1000 --device "$device") &
    runners+=($!)
done
# TERM or Ctrl-C (a timeout, say) reaches every runner, whose runs checkpoint before they stop;
# the last snapshot below then holds those checkpoints
trap 'kill -TERM "${runners[@]}" 2>/dev/null || true' TERM INT
failed=0
for runner in "${runners[@]}"; do
    # a trapped signal interrupts wait while the runner still runs: wait again
    while :; do
        wait "$runner" && status=0 || status=$?
        kill -0 "$runner" 2>/dev/null || break
    done
    [ $status -eq 0 ] || failed=1
done
kill "$looper" 2>/dev/null || true
wait "$looper" 2>/dev/null || true
snapshot || failed=1
exit $failed
