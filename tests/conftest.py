"""Forces 8 CPU devices before JAX starts, so that sharding is tested on every machine, and
compiles with the fast-compiling XLA flags of `helpers.TEST_XLA_FLAGS`.

Also turns on JAX's persistent compilation cache for the test run and the binaries it starts
(environment variables, so subprocesses inherit them): many tests compile the same smoke-size
programs, and compiling is most of their time on CPU. Every program is cached, down to the
single operations that eager code (a Flax `init`, the hooks' capture) compiles one by one: a
process that finds them in the cache runs such code about three times faster. The cache lives in
``.pytest_cache/jax-compilation-cache``, without a size limit: a limit makes JAX scan every entry
on each write (quadratic in the thousands of entries a run writes). Without one there is no file
lock either; an entry another process is still writing fails to decompress, and JAX compiles the
program again with a warning. Entries are keyed by the program, the compile options and the JAX
version, so a hit is the executable a fresh compile would build; set JAX_COMPILATION_CACHE_DIR to
move it.

Under pytest-xdist with more than one worker, NumPy's and SciPy's OpenBLAS run one thread per
process (OPENBLAS_NUM_THREADS, before NumPy loads): the workers already fill the cores, and two
workers' BLAS threads each waiting for a core cost about a tenth of the run (docs/decisions.md).

The test process keeps freed memory for reuse as identi's binaries do (`identi.allocator`), before
JAX starts its threads. Shared helpers live in tests/helpers.py; the session fixtures below run
each expensive pipeline once.
"""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
  os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from helpers import xla_flags  # noqa: E402  (imports no JAX)

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + xla_flags(8)).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(ROOT, ".pytest_cache", "jax-compilation-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

from identi.allocator import retain_freed_memory  # noqa: E402

retain_freed_memory()

import jax  # noqa: E402  (must come after XLA_FLAGS)

assert jax.device_count() == 8, "tests expect 8 forced CPU devices; was JAX imported earlier?"

import types  # noqa: E402

import pytest  # noqa: E402

from helpers import smoke_config  # noqa: E402


@pytest.fixture(scope="session")
def trained_workdir(tmp_path_factory):
  """A workdir with a finished TopK smoke run, shared by tests that only read it."""
  from identi.train import train_and_evaluate

  workdir = str(tmp_path_factory.mktemp("trained"))
  train_and_evaluate(smoke_config("sae_topk"), workdir)
  return workdir


# The two smoke subjects, each trained once per test session; the training tests read them, and
# the train_subject binary test the transformer's (xdist groups diffusion_training, lm_training).
@pytest.fixture(scope="session")
def scenes_subject(tmp_path_factory):
  """(workdir, final metrics) of configs/diffusion_scenes.py:smoke trained in this process."""
  from identi.subjects import scenes_training  # pylint: disable=g-import-not-at-top

  workdir = tmp_path_factory.mktemp("scenes_subject")
  return workdir, scenes_training.train_subject(smoke_config("diffusion_scenes"), str(workdir))


@pytest.fixture(scope="session")
def grammar_subject(tmp_path_factory):
  """(workdir, final metrics) of configs/grammar_lm.py:smoke trained in this process."""
  from identi.subjects import grammar_training  # pylint: disable=g-import-not-at-top

  workdir = tmp_path_factory.mktemp("grammar_subject")
  return workdir, grammar_training.train_lm_subject(smoke_config("grammar_lm"), str(workdir))


def _figure_run(tmp_path_factory, figure: str, config_name: str):
  """Runs one pipeline figure of paper/make_figures.py at smoke size, in this process; returns
  (config, workdir, the JSON files it wrote, by name)."""
  import json  # pylint: disable=g-import-not-at-top
  from paper import make_figures  # pylint: disable=g-import-not-at-top

  out = str(tmp_path_factory.mktemp(figure))
  paths = getattr(make_figures, figure)(out, True)
  saved = {}
  for path in paths:
    if path.endswith(".json"):
      with open(path, encoding="utf-8") as f:
        saved[os.path.basename(path)] = json.load(f)
  return types.SimpleNamespace(config=smoke_config(config_name), workdir=os.path.join(out, figure),
                               paths=paths, **{k.split(".")[0]: v for k, v in saved.items()})


# The six pipelines, each run once per test session (the paper's smoke figure, which is also
# what the binaries run); tests that use one carry its xdist_group mark so that one worker runs
# them all (make test: --dist loadgroup).
@pytest.fixture(scope="session")
def identify_run(tmp_path_factory):
  """configs/identify_hsm.py:smoke through the identify stage (results.json)."""
  return _figure_run(tmp_path_factory, "hsm_identifiability", "identify_hsm")


@pytest.fixture(scope="session")
def hsm_run(tmp_path_factory):
  """configs/concept_graph_hsm.py:smoke through graph and steering (graph.json, steering.json)."""
  return _figure_run(tmp_path_factory, "concept_graph", "concept_graph_hsm")


@pytest.fixture(scope="session")
def grammar_run(tmp_path_factory):
  """configs/grammar_concepts.py:smoke through capture, graph and steering."""
  return _figure_run(tmp_path_factory, "grammar_concepts", "grammar_concepts")


@pytest.fixture(scope="session")
def scenes_run(tmp_path_factory):
  """configs/scenes_concepts.py:smoke through capture, graph and steering."""
  return _figure_run(tmp_path_factory, "scenes_concepts", "scenes_concepts")


@pytest.fixture(scope="session")
def prompted_run(tmp_path_factory):
  """configs/prompted_unlearning.py:smoke through capture, graph and the removal benchmark."""
  return _figure_run(tmp_path_factory, "prompted_unlearning", "prompted_unlearning")


@pytest.fixture(scope="session")
def wordnet_run(tmp_path_factory):
  """configs/minilm_wordnet.py:smoke through capture, graph and patching."""
  return _figure_run(tmp_path_factory, "minilm_wordnet", "minilm_wordnet")


def pytest_collection_finish(session):
  """On an xdist worker under --dist loadgroup, every test with an xdist_group mark must carry its
  group in its node id: that is how xdist keeps a group (and its session fixture) on one worker.
  pytest 9.2 stopped xdist 3.8 from setting it, which silently ran each expensive fixture twice."""
  if not getattr(session.config.option, "loadgroup", False):
    return
  lost = [item.nodeid for item in session.items
          if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
  if lost:
    raise pytest.UsageError(
        f"pytest-xdist did not apply the xdist_group marks ({len(lost)} tests, e.g. {lost[0]}); "
        "this pytest/pytest-xdist pair is incompatible: reinstall with `pip install -e .[dev]`, "
        "which pins pytest < 9.2")
