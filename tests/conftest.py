"""Forces 8 CPU devices before JAX starts, so that sharding is tested on every machine.

Also turns on JAX's persistent compilation cache for the test run and the binaries it starts
(environment variables, so subprocesses inherit them): many tests compile the same smoke-size
programs, and compiling is most of their time on CPU. The cache lives in
``.pytest_cache/jax-compilation-cache``; a size limit turns on JAX's file lock (the `filelock`
package), so that the xdist workers and subprocesses that share it never read half-written
entries. Entries are keyed by the program, the compile options and the JAX version, so a hit is
the executable a fresh compile would build; set JAX_COMPILATION_CACHE_DIR to move it.

The test process keeps freed memory for reuse as identi's binaries do (`identi.allocator`), before
JAX starts its threads.
"""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(ROOT, ".pytest_cache", "jax-compilation-cache"))
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(4 << 30))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")

from identi.allocator import retain_freed_memory  # noqa: E402

retain_freed_memory()

import jax  # noqa: E402  (must come after XLA_FLAGS)

assert jax.device_count() == 8, "tests expect 8 forced CPU devices; was JAX imported earlier?"

import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402


def smoke_config(name: str = "sae_topk", **overrides):
  """The `:smoke` variant of configs/<name>.py with dotted-key overrides ('train__num_steps')."""
  from identi.train import load_config

  config = load_config(os.path.join(ROOT, "configs", f"{name}.py:smoke"))
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split("__")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


def run_module(module: str, *args: str, devices: int = 8, check: bool = True,
               timeout: float = 300) -> subprocess.CompletedProcess:
  """Runs `python -m module args` from the repo root with `devices` forced CPU devices."""
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
             JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)
  if check and proc.returncode != 0:
    raise AssertionError(f"{module} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
  return proc


def latest_state(workdir, abstract):
  """The latest checkpoint in `workdir`, restored replicated onto the shapes of the pytree of
  ShapeDtypeStructs `abstract`, as numpy arrays."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from identi.train import sharding  # pylint: disable=g-import-not-at-top
  from identi.train.checkpoint import Checkpointer  # pylint: disable=g-import-not-at-top

  repl = sharding.replicated(sharding.data_mesh())
  target = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=repl), abstract)
  checkpointer = Checkpointer(str(workdir), read_only=True)
  state = checkpointer.restore(target)
  checkpointer.close()
  return jax.tree.map(np.asarray, state)


def planted_codes(n=64, n_atoms=128, d=64, active=4, seed=0):
  """Random unit-row dictionary and planted non-negative codes with exactly `active` atoms each."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(seed)
  dictionary = rng.normal(size=(n_atoms, d))
  dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)
  codes = np.zeros((n, n_atoms))
  for i in range(n):
    codes[i, rng.choice(n_atoms, active, replace=False)] = rng.uniform(0.5, 1.5, active)
  return codes.astype(np.float32), dictionary.astype(np.float32)


@pytest.fixture(scope="session")
def trained_workdir(tmp_path_factory):
  """A workdir with a finished TopK smoke run, shared by tests that only read it."""
  from identi.train import train_and_evaluate

  workdir = str(tmp_path_factory.mktemp("trained"))
  train_and_evaluate(smoke_config("sae_topk"), workdir)
  return workdir


@pytest.fixture(scope="session")
def lm_graph(tmp_path_factory):
  """(config, workdir, capture summary, graph result) of configs/grammar_concepts.py:smoke, shared
  by the transformer-subject pipeline tests."""
  from identi.subjects import lm_experiment  # pylint: disable=g-import-not-at-top

  workdir = str(tmp_path_factory.mktemp("grammar"))
  config = smoke_config("grammar_concepts")
  summary = lm_experiment.capture_lm_subject(config, workdir)
  return config, workdir, summary, lm_experiment.run_lm_graph(config, workdir)
