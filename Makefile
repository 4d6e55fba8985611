# make demo | make test | make validate | make bench
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
# On the project's machines this is a CPU wheel; a plain "torch" pulls a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test validate bench clean-venv

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; run: make PYTHON=python3 ..."; exit 1; }
	$(PYTHON) -m venv $(VENV)

# torch first, only where none is installed: a user's own CUDA build is kept
$(VENV)/.torch: | $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --disable-pip-version-check "$(TORCH_SPEC)"
	@touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(PY) -m pip install --disable-pip-version-check -e ".[omics,survival,imaging,graph,test]"
	@touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/hccomics demo --profile demo --out runs/demo

test: $(VENV)/.installed
	$(PY) -m pytest

validate: $(VENV)/.installed
	$(PY) validation/run_all.py

bench: $(VENV)/.installed
	$(PY) benchmarks/run_all.py

clean-venv:
	rm -rf $(VENV)
