# Every target sets up what it needs on a fresh machine.
# torch is installed as the pinned CPU wheel first, so the range in pyproject.toml is
# already satisfied and pip never pulls a CUDA build.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0
SPHINX = $(PY) -m sphinx -W --keep-going -q -b html -d docs/_build/doctrees docs docs/_build/html

.PHONY: test demo bench bench-quick docs clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e ".[test,docs]"
	touch $@

# The test suite (with the docstring examples), then the documentation site with
# warnings as errors (its gallery examples run).
test: $(VENV)/.installed
	$(PY) -m pytest -n 2
	$(SPHINX)

demo: $(VENV)/.installed
	$(VENV)/bin/sklearn-latent demo

# The Sphinx site (API reference, user guide, example gallery); builds offline.
docs: $(VENV)/.installed
	$(SPHINX)

bench: $(VENV)/.installed
	$(PY) benchmarks/run.py --out benchmarks/latest.md --results benchmarks/RESULTS.md

bench-quick: $(VENV)/.installed
	$(PY) benchmarks/run.py --quick --out benchmarks/latest.md

clean:
	rm -rf $(VENV) build *.egg-info docs/_build docs/generated docs/auto_examples
