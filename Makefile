# Two commands do everything on a fresh machine: `make report` and `make test`.
# Each creates .venv if missing and installs the pinned requirements (silent when up to date).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup data test report evaluate campaign campaign-gpu status bench clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "[setup] installing pinned requirements into $(VENV)"
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

data: setup
	@$(PY) -m seqmnist data

test: setup
	@$(PY) -m pytest -q tests

evaluate: setup
	@$(PY) -m seqmnist evaluate

report: setup
	@$(PY) -m seqmnist report

# Long-running: trains whatever is unfinished for BUDGET minutes (resumable; commit weights/ after).
BUDGET ?= 150
campaign: data
	@$(PY) -m seqmnist campaign run --budget-minutes $(BUDGET)

# On a GPU: every unfinished run at once, each to its last epoch, under CUDA MPS (see the script).
campaign-gpu: data
	@PYTHON=$(PY) scripts/campaign_gpu.sh $(BUDGET)

status: setup
	@$(PY) -m seqmnist campaign status

bench: setup
	@$(PY) benchmarks/bench_training.py

clean:
	rm -rf build
