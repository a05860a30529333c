#!/usr/bin/env bash
# The campaign engine's wheels (dask, distributed, dask-jobqueue at requirements.txt's pins, with
# what they need) for a GPU machine without internet access, into build/wheels/ (about 5 MB):
#
#   scripts/gpu_wheels.sh [PYTHON_VERSION]      # default 3.12, the GPU machines' Python
#
# scripts/campaign_gpu.sh installs them from there when the machine's Python lacks the engine;
# carry build/wheels to the machine with the working tree.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-3.12}
pins=$(grep -E '^(dask|distributed|dask-jobqueue)==' requirements.txt)
rm -rf build/wheels && mkdir -p build/wheels
${PYTHON:-.venv/bin/python} -m pip download --quiet --disable-pip-version-check -d build/wheels \
    --only-binary=:all: --python-version "$version" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 $pins
echo "build/wheels: $(ls build/wheels | wc -l) wheels, $(du -sh build/wheels | cut -f1)"
