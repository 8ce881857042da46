# Two commands for a new user: `make run` (anonymize the bundled sample) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
SAMPLE := samples/WolfgangLanger_Pexels.mp4
OUT    := out
EVAL_DATA ?= ../shared/data/faces/lfw
EVAL_ARGS ?=

.PHONY: run test install install-test install-train install-eval train train-gan eval bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Reinstall only when the package metadata changes (stamp files).
# dp-image's face generator (MobileStyleGAN) ships inside the random-face wheel; its own code and
# dependencies (gdown, jupyter) are not used, so it is installed without them.
GENERATOR_PKG := random-face==2021.7.21.1
$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e .
	$(PIP) install --quiet --no-deps $(GENERATOR_PKG)
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
install-eval: $(VENV)/.eval

$(VENV)/.eval: pyproject.toml $(VENV)/.runtime
	$(PIP) install --quiet -e '.[eval]'
	touch $@

run: install
	@mkdir -p $(OUT)
	$(BIN)/streamdp run $(SAMPLE) -o $(OUT)/WolfgangLanger_Pexels.mp4 --report $(OUT)/WolfgangLanger_Pexels.report.json

test: install-test
	$(BIN)/python -m pytest -q

train: install-train
	$(BIN)/streamdp train --config configs/train.yaml

# The default dp-image encoder (docs/model.md): generator samples, then the encoder into its latent.
GAN_PAIRS ?= gan-pairs
train-gan: install-train
	$(BIN)/python -m streamdp.train.gan_pairs --out $(GAN_PAIRS) --n 4000
	$(BIN)/python -m streamdp.train.gan_encoder --pairs $(GAN_PAIRS) --out streamdp/models/dpimage-gan --minutes 14

# The privacy-utility evaluation (docs/results.md); e.g. EVAL_ARGS='--limit 200' for a quick run.
eval: install-eval
	$(BIN)/streamdp eval $(EVAL_DATA) --out eval-out $(EVAL_ARGS)

bench: install-test
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

clean:
	rm -rf $(OUT) build *.egg-info .pytest_cache
