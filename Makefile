# identi: `make demo` and `make test` work on a fresh machine with python3 and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: venv demo test bench figures clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m identi.bin.identify --config=configs/identify_hsm.py --workdir=runs/demo

test: $(STAMP)
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup

bench: $(STAMP)
	$(PY) -m benchmarks.sae_throughput --preset=quick

figures: $(STAMP)
	$(PY) -m paper.make_figures

clean:
	rm -rf runs $(VENV) benchmarks/peers/.venv
