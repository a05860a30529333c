#!/usr/bin/env bash
# Train every unfinished run of the campaign at once on a GPU, each to its last epoch, with the
# workers' small kernels side by side under CUDA MPS. With SNAPSHOT_DIR, the weights folder
# (checkpoints included) is packed there every 45 s and at the end, so that a machine taken back
# mid-run still returns its progress.
#
#   scripts/campaign_gpu.sh BUDGET_MINUTES [SNAPSHOT_DIR]
#
# Honours SEQMNIST_WEIGHTS / SEQMNIST_CAMPAIGN_FILE / SEQMNIST_DATA (another campaign's folder,
# a machine without the dataset download). DEVICE (cuda), WORKERS (16) and PYTHON (python3)
# may be overridden.
set -euo pipefail

budget=${1:?usage: scripts/campaign_gpu.sh BUDGET_MINUTES [SNAPSHOT_DIR]}
snapshots=${2:-}
device=${DEVICE:-cuda}
workers=${WORKERS:-16}
python=${PYTHON:-python3}
repo=$(cd "$(dirname "$0")/.." && pwd)
weights=${SEQMNIST_WEIGHTS:-$repo/weights}
# The package need not be installed; the allocator re-exec is a CPU-only speed-up.
export PYTHONPATH="$repo/lib${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 SEQMNIST_NO_REEXEC=1

snapshot() {
    [ -n "$snapshots" ] || return 0
    mkdir -p "$snapshots"
    # tar exits 1 when a file changed while read (a worker saving): the archive is still usable
    local partial="$snapshots/.weights.$BASHPID.tgz"
    tar czf "$partial" -C "$(dirname "$weights")" "$(basename "$weights")" || [ $? -eq 1 ]
    mv "$partial" "$snapshots/weights.tgz"
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

( while sleep 45; do snapshot; done ) &
looper=$!
cleanup() {
    kill "$looper" 2>/dev/null || true
    if [ $mps = 1 ]; then echo quit | nvidia-cuda-mps-control || true; fi
}
trap cleanup EXIT

"$python" -m seqmnist campaign run --budget-minutes "$budget" --workers "$workers" \
    --chunk-epochs 1000 --device "$device"
"$python" -m seqmnist campaign status --write
kill "$looper" 2>/dev/null || true
wait "$looper" 2>/dev/null || true
snapshot
