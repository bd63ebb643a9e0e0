"""Helpers the tests share: smoke configs, running a binary, reading checkpoints, planted codes.

Importing this module does not start JAX; tests/conftest.py sets up the devices first.
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: XLA flags of every test process besides the device count. The tests' programs are small, so on
#: CPU compiling them costs more than running them: XLA's backend optimisation level 0 and its
#: older loop emitters instead of the MLIR fusion emitters compile them faster. Floats can then
#: differ in their last bits from a default run, so every test compares runs made under these
#: same flags, or against floors (docs/decisions.md).
_OPT_LEVEL_0 = "--xla_backend_optimization_level=0"
_LOOP_EMITTERS = "--xla_cpu_use_fusion_emitters=false"
TEST_XLA_FLAGS = f"{_OPT_LEVEL_0} {_LOOP_EMITTERS}"


def xla_flags(devices: int, *, fusion_emitters: bool = False) -> str:
  """XLA_FLAGS for a test process with `devices` forced CPU devices; `fusion_emitters` keeps XLA's
  default fusion emitters, for a test of a property that holds with them (docs/decisions.md)."""
  flags = _OPT_LEVEL_0 if fusion_emitters else TEST_XLA_FLAGS
  return f"--xla_force_host_platform_device_count={devices} {flags}"


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
  env = dict(os.environ, XLA_FLAGS=xla_flags(devices), JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)
  if check and proc.returncode != 0:
    raise AssertionError(f"{module} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
  return proc


def python_json(code: str, timeout: float = 120, env: dict | None = None):
  """Runs `python -c code` from the repo root in its own process (for modules whose absl flags
  clash with other benchmarks imported by the test process, or for other XLA flags), with the
  environment updated by `env`; returns the JSON of the last line it prints."""
  import json  # pylint: disable=g-import-not-at-top
  proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                        timeout=timeout, check=True, env=dict(os.environ, **(env or {})))
  return json.loads(proc.stdout.strip().splitlines()[-1])


def killed_copy(workdir, dest, last_step: int = 20):
  """A copy of a finished run at `dest`, as a kill after its checkpoint before `last_step` leaves
  it: the last checkpoint and final.json are gone, the log lines past the kept checkpoint stay."""
  import shutil  # pylint: disable=g-import-not-at-top

  shutil.copytree(workdir, dest)
  shutil.rmtree(os.path.join(dest, "checkpoints", str(last_step)))
  os.remove(os.path.join(dest, "final.json"))
  return dest


def damage_checkpoint(step_dir, keep_bytes: int = 3) -> int:
  """Truncates the array data files of a checkpoint (orbax's `d/` directories), as a full disk or
  a failing copy leaves them; returns how many it damaged."""
  damaged = 0
  for root, _, files in os.walk(step_dir):
    if os.path.basename(root) == "d":
      for name in files:
        with open(os.path.join(root, name), "r+b") as f:
          f.truncate(keep_bytes)
        damaged += 1
  return damaged


def latest_state(workdir, abstract):
  """The latest checkpoint in `workdir`, restored replicated onto the shapes of the pytree of
  ShapeDtypeStructs `abstract`, as numpy arrays."""
  import jax  # pylint: disable=g-import-not-at-top
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


def offset_pair(n=103, seed=6):
  """float32 (a, b): correlated columns on offsets up to 1e3, a constant and a boolean column."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(seed)
  a = rng.normal(size=(n, 4))
  b = np.stack([a[:, 0] + 0.5 * rng.normal(size=n), -a[:, 1] + a[:, 2], rng.normal(size=n),
                np.full(n, 0.1), a[:, 3] > 0], axis=1)
  a += np.array([1e3, -1e3, 0.0, 5e2])
  b[:, :2] += 1e3
  return a.astype(np.float32), b.astype(np.float32)


def stream_batches(a, b, sizes):
  """(a, b) cut into consecutive batches of the given sizes (which must add up to all rows)."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  edges = np.cumsum([0, *sizes])
  assert edges[-1] == a.shape[0]
  return [(a[s:e], b[s:e]) for s, e in zip(edges[:-1], edges[1:])]


def nan_batch():
  """One (a, b) batch whose b holds a NaN."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  a, b = np.zeros((4, 2)), np.ones((4, 3))
  b[2, 1] = np.nan
  return a, b


def count_compiles(fn):
  """Runs fn(); returns (its result, how many XLA backend compiles it triggered)."""
  import jax  # pylint: disable=g-import-not-at-top
  events = []

  def listener(event, duration, **kwargs):
    del duration, kwargs
    if event == "/jax/core/compile/backend_compile_duration":
      events.append(event)

  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    out = fn()
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)
  return out, len(events)
