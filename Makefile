# Quick start: `make run` (set up + run the paper's pipeline on the embedded task),
# `make test` (set up + run the test suite). CI calls `make test` through .ci/run.
PYTHON ?= python3
VENV ?= .venv
# The CPU build of PyTorch; override for a GPU machine, e.g. `make TORCH=torch run`.
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.avood-installed

.PHONY: setup run test clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "$(TORCH)" "setuptools>=77" wheel
	$(PY) -m pip install -q --disable-pip-version-check -e ".[test,mlflow,tensorboard,ray]"
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(VENV)/bin/avood run

test: setup
	$(PY) -m pytest

clean:
	rm -rf $(VENV) runs .pytest_cache
