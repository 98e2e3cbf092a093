# Two commands on a fresh clone: `make demo` (the main job) and `make test` (the test suite).
# Each creates or reuses a local virtual environment in .venv; torch 2.13.0 (CPU) is installed first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint venv clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

DEMO_DIR := outputs/multi30k-tiny

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) examples/train_multi30k.py --preset tiny --output_dir $(DEMO_DIR) --overwrite_output_dir
	@echo "Translate and see the attention in your browser: $(PY) -m hf_simple_s2s.space.app $(DEMO_DIR), then open http://127.0.0.1:7860"

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean:
	rm -rf $(VENV)
