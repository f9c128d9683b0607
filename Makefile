# Two commands from a fresh clone: `make run` (the main job) and `make test` (the suite). Each sets up
# .venv first when pyproject.toml or the install script changed since the last set-up (a stamp file),
# so a second call starts at once. Extra arguments: make run ARGS="--folds 1", make test PYTEST_ARGS="-m 'not slow'".
PYTHON ?= python3
VENV ?= .venv
STAMP := $(VENV)/.chromtune-installed
ARGS ?=
PYTEST_ARGS ?=
# Ray and MLflow must not reach out of the machine.
export RAY_USAGE_STATS_ENABLED = 0
export MLFLOW_ENABLE_TELEMETRY = false
export DO_NOT_TRACK = 1

.PHONY: run test setup
run: $(STAMP)
	$(VENV)/bin/python -m chromtune.sweep --arch resnet --folds 5 $(ARGS)

test: $(STAMP)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/install.sh
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	scripts/install.sh $(VENV)/bin/python
	touch $@
