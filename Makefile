# Quick start: `make run` (set up + run the paper's pipeline on the embedded task),
# `make test` (set up + run the test suite). CI calls `make test` through .ci/run.
PYTHON ?= python3
VENV ?= .venv
# The CPU build of PyTorch; override for a GPU machine, e.g. `make TORCH=torch run`.
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
BASE := $(VENV)/.avood-base
STAMP := $(VENV)/.avood-installed

.PHONY: setup run test clean

# `make run` needs only the package; `make test` also installs the extras whose tests run in CI.
$(BASE): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) "$(TORCH)" "setuptools>=77" wheel
	$(PIP) -e .
	touch $(BASE)

$(STAMP): $(BASE)
	$(PIP) -e ".[test,mlflow,tensorboard,ray]"
	touch $(STAMP)

setup: $(STAMP)

run: $(BASE)
	$(VENV)/bin/avood run

test: setup
	$(PY) -m pytest

clean:
	rm -rf $(VENV) runs .pytest_cache
