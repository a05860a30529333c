# Two commands do everything on a fresh machine: `make report` and `make test`.
# Each creates .venv if missing and installs the pinned requirements (silent when up to date).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
LAB_STAMP := $(VENV)/.lab-installed

.PHONY: setup data test report evaluate campaign campaign-gpu status bench clean lab test-browser

setup: $(STAMP)

# pyproject.toml's requires-python, checked first in one line (pip's own error is pages long):
# the interpreter that makes .venv, or .venv's own when an earlier attempt left one.
PY_OK      := import sys; sys.exit(sys.version_info < (3, 11))
PY_VERSION := import sys; print("%d.%d.%d" % tuple(sys.version_info[:3]))
need_python = $(1) -c '$(PY_OK)' 2>/dev/null || { echo "error: seqmnist needs Python >= 3.11; \
	found $$($(1) -c '$(PY_VERSION)' 2>/dev/null || echo no Python) at $$(command -v $(1) || echo $(1)) ($(2))" >&2; exit 1; }

$(STAMP): requirements.txt pyproject.toml
	@if test -x $(PY); then $(call need_python,$(PY),delete $(VENV) and set PYTHON=...); \
	else $(call need_python,$(PYTHON),set PYTHON=...) && $(PYTHON) -m venv $(VENV); fi
	@echo "[setup] installing pinned requirements into $(VENV)"
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# Optional: JupyterLab and Playwright (requirements-lab.txt), on top of the pinned requirements.
$(LAB_STAMP): $(STAMP) requirements-lab.txt
	@echo "[lab] installing JupyterLab and Playwright into $(VENV)"
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-lab.txt -c requirements.txt
	@touch $(LAB_STAMP)

# The notebooks in JupyterLab, with the widgets' extensions (interactive=True shows the widgets).
lab: $(LAB_STAMP)
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m jupyterlab notebooks \
		$$(test "$$(id -u)" = 0 && echo --allow-root)

# The in-painting notebook's widgets in a real browser: Debian's Chromium, installed on first use.
test-browser: $(LAB_STAMP)
	@command -v chromium >/dev/null 2>&1 || { \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "[test-browser] installing Debian's chromium"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "error: the browser test needs Chromium: sudo apt-get install chromium" >&2; exit 1; fi; }
	@$(PY) -m pytest -q -rs tests/browser

data: setup
	@$(PY) -m seqmnist data

test: setup
	@$(PY) -m pytest -q -rs tests

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
