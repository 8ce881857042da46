# Two commands for a new user: `make run` (anonymize the bundled sample) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
SAMPLE := samples/WolfgangLanger_Pexels.mp4
OUT    := out

.PHONY: run test install install-test install-train train bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Reinstall only when the package metadata changes (stamp files).
$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.test: pyproject.toml $(VENV)/.runtime
	$(PIP) install --quiet -e '.[test]'
	touch $@

$(VENV)/.train: pyproject.toml $(VENV)/.runtime
	$(PIP) install --quiet -e '.[train]'
	touch $@

install: $(VENV)/.runtime
install-test: $(VENV)/.test
install-train: $(VENV)/.train

run: install
	@mkdir -p $(OUT)
	$(BIN)/streamdp run $(SAMPLE) -o $(OUT)/WolfgangLanger_Pexels.mp4 --report $(OUT)/WolfgangLanger_Pexels.report.json

test: install-test
	$(BIN)/python -m pytest -q

train: install-train
	$(BIN)/streamdp train --config configs/train.yaml

bench: install-test
	$(BIN)/python benchmarks/throughput.py $(SAMPLE)

clean:
	rm -rf $(OUT) build *.egg-info .pytest_cache
