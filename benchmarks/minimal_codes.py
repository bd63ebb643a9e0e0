"""Minimal-code inference throughput: `python -m benchmarks.minimal_codes --preset=full`.

Times `identi.infer.omp` (non-negative OMP) and `identi.infer.fista` (non-negative LASSO) on
batches of planted sparse data and reports samples/s, the work per sample in FLOPs, the fraction
of the measured dense matmul FLOP/s that this work reaches, and how well the planted codes are
recovered.

Problem: the dictionary stands in for a learned one (an SAE's W_dec): d_sae random unit-norm atoms
in d_in dimensions (Gaussian rows, normalised; a trained decoder has more coherent atoms, so its
recovery can be lower, while the work per step is the same). Every sample is x = z @ D with z
non-negative and exactly `active` atoms on, amplitudes uniform in [0.5, 1.5], so the recovery is
checkable: `support` is the fraction of the planted atoms among each code's `active` largest
positive entries, `rel_error` the mean ||x - c D|| / ||x||.

Settings: OMP with max_atoms = 2 * active (--max_atoms) and tol 1e-4; FISTA with --fista_iters
iterations and lam = --fista_lam * mean ||x|| (identi.infer's default for minimal_codes).

Work per sample, counted from the code as it runs (n = d_sae, d = d_in, k = max_atoms; the k
support slots are computed in full whatever their occupancy):

* OMP, per selection step: the residual over the slots 2kd, the correlations with all atoms 2dn,
  the added atom's row of the slot Gram 2kd and one NNLS least-squares solve (Cholesky k^3/3, two
  corrected semi-normal-equations solves 6kd + 4k^2). `steps` is the mean of each sample's own
  count: its final support size plus the step that stops it (exact when NNLS drops no atom, as on
  this data); the batched loop runs until the batch's last sample stops.
* FISTA, per iteration: the two dictionary matmuls 4dn plus 11n + d elementwise; once per call
  (shared by the batch) the power iteration's Gram 2 n d^2 (or 2 n^2 d) and 100 matrix-vector
  products on it.

`flop_fraction` is flops_per_sample * samples_per_s over the dense fp32 matmul FLOP/s measured
by `benchmarks.sae_throughput.matmul_flops_per_s`.

Times: compilation (lower and compile) separately; the steady state as the median of --repeats
calls after one warm-up call, each ended by `block_until_ready`. Results go to stdout and --output
(JSON).
"""

from __future__ import annotations

import functools
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from benchmarks.timing import matmul_flops_per_s
from identi import io
from identi.bin import cli
from identi.errors import ConfigError
from identi.infer import FISTA_NUM_ITERS, FISTA_RELATIVE_LAM, fista, omp

PRESETS = {
    # (d_in, d_sae, batch, active atoms per sample)
    "smoke": [(32, 128, 64, 3)],
    "quick": [(256, 1024, 512, 8), (512, 4096, 512, 16)],
    "full": [(512, 1024, 512, 16), (512, 4096, 512, 16), (512, 16384, 512, 16)],
}
METHODS = ("omp", "fista")
OMP_TOL = 1e-4
#: Power-iteration steps of identi.infer.fista.lipschitz_constant.
_POWER_ITERS = 100

_PRESET = flags.DEFINE_enum("preset", "quick", list(PRESETS), "Size grid.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed repeats (median reported).")
_OUTPUT = flags.DEFINE_string("output", "", "Optional JSON output path.")
_BATCH = flags.DEFINE_integer("batch", 0, "Samples per batch; 0: the preset's (sized for a CPU).")
_METHODS = flags.DEFINE_list("methods", list(METHODS), "Inference methods to time: omp, fista.")
_MAX_ATOMS = flags.DEFINE_integer("max_atoms", 0, "OMP max_atoms; 0: twice the planted sparsity.")
_FISTA_ITERS = flags.DEFINE_integer("fista_iters", FISTA_NUM_ITERS, "FISTA iterations.")
_FISTA_LAM = flags.DEFINE_float("fista_lam", FISTA_RELATIVE_LAM,
                                "FISTA L1 weight relative to the mean ||x||.")


def planted_problem(d_in: int, d_sae: int, batch: int, active: int,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(x, dictionary, z): unit-norm random atoms and non-negative `active`-sparse codes z."""
  rng = np.random.default_rng(seed)
  dictionary = rng.normal(size=(d_sae, d_in))
  dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)
  dictionary = dictionary.astype(np.float32)
  z = np.zeros((batch, d_sae), np.float32)
  support = np.argpartition(rng.random((batch, d_sae)), active, axis=1)[:, :active]
  np.put_along_axis(z, support, rng.uniform(0.5, 1.5, (batch, active)).astype(np.float32), axis=1)
  return z @ dictionary, dictionary, z


def omp_step_flops(d_in: int, d_sae: int, max_atoms: int) -> float:
  """FLOPs of one OMP selection step for one sample (see the module docstring)."""
  d, n, k = d_in, d_sae, max_atoms
  return 2 * d * n + 10 * k * d + k**3 / 3 + 4 * k * k


def fista_flops(d_in: int, d_sae: int, batch: int, num_iters: int) -> float:
  """FLOPs of FISTA per sample, the per-call Lipschitz estimate shared by the batch."""
  d, n = d_in, d_sae
  small = min(d, n)
  lipschitz = 2 * n * d * small + _POWER_ITERS * 2 * small * small
  return num_iters * (4 * d * n + 11 * n + d) + lipschitz / batch


def recovery(x: np.ndarray, dictionary: np.ndarray, z: np.ndarray, codes: np.ndarray,
             active: int) -> dict:
  """Support recovery, relative reconstruction error and mean L0 of inferred codes."""
  top = np.argpartition(-codes, active - 1, axis=1)[:, :active]
  hit = (np.take_along_axis(codes, top, axis=1) > 0) & (np.take_along_axis(z, top, axis=1) > 0)
  resid = x - codes @ dictionary
  return {"support": float(np.mean(np.sum(hit, axis=1) / active)),
          "rel_error": float(np.mean(np.linalg.norm(resid, axis=1) / np.linalg.norm(x, axis=1))),
          "l0": float(np.mean(np.sum(codes > 0, axis=1)))}


def time_method(method: str, d_in: int, d_sae: int, batch: int, active: int,
                repeats: int) -> dict:
  """Compile time, steady-state time, work and recovery of one method on one planted problem."""
  x_np, d_np, z = planted_problem(d_in, d_sae, batch, active)
  x, dictionary = jnp.asarray(x_np), jnp.asarray(d_np)
  if method == "omp":
    max_atoms = _MAX_ATOMS.value or min(2 * active, d_in, d_sae)
    fn = functools.partial(omp, max_atoms=max_atoms, tol=OMP_TOL)
    settings = {"max_atoms": max_atoms, "num_iters": None, "lam": None}
  else:
    lam = _FISTA_LAM.value * float(np.mean(np.linalg.norm(x_np, axis=1)))
    fn = functools.partial(fista, lam=lam, num_iters=_FISTA_ITERS.value)
    settings = {"max_atoms": None, "num_iters": _FISTA_ITERS.value, "lam": lam}
  t0 = time.perf_counter()
  compiled = jax.jit(fn).lower(x, dictionary).compile()
  compile_s = time.perf_counter() - t0
  codes = np.asarray(jax.block_until_ready(compiled(x, dictionary)))
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(x, dictionary))
    times.append(time.perf_counter() - t0)
  seconds = statistics.median(times)
  row = {"method": method, "d_in": d_in, "d_sae": d_sae, "batch": batch, "active": active,
         **settings, "compile_s": compile_s, "step_ms": 1e3 * seconds,
         "samples_per_s": batch / seconds, **recovery(x_np, d_np, z, codes, active)}
  if method == "omp":
    row["steps"] = row["l0"] + 1.0
    row["flops_per_sample"] = row["steps"] * omp_step_flops(d_in, d_sae, max_atoms)
  else:
    row["steps"] = float(_FISTA_ITERS.value)
    row["flops_per_sample"] = fista_flops(d_in, d_sae, batch, _FISTA_ITERS.value)
  return row


def main(argv):
  del argv
  unknown = sorted(set(_METHODS.value) - set(METHODS))
  if unknown:
    raise ConfigError(f"--methods has unknown {unknown}: use a subset of {','.join(METHODS)}")
  peak = matmul_flops_per_s()
  rows = []
  for d_in, d_sae, batch, active in PRESETS[_PRESET.value]:
    batch = _BATCH.value or batch
    for method in _METHODS.value:
      row = time_method(method, d_in, d_sae, batch, active, _REPEATS.value)
      row["flop_fraction"] = row["flops_per_sample"] * row["samples_per_s"] / peak
      rows.append(row)
  print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, "
        f"measured matmul peak {peak / 1e9:.1f} GFLOP/s; dictionary: random unit-norm atoms "
        "(stand-in for a learned one)")
  print(cli.format_table(rows, ["method", "d_in", "d_sae", "batch", "active", "max_atoms",
                                "num_iters", "compile_s", "step_ms", "samples_per_s", "steps",
                                "flops_per_sample", "flop_fraction", "support", "rel_error",
                                "l0"]))
  if _OUTPUT.value:
    io.write_json(_OUTPUT.value, {
        "device": jax.devices()[0].device_kind, "matmul_flops_per_s": peak,
        "preset": _PRESET.value, "omp_tol": OMP_TOL, "rows": rows})


if __name__ == "__main__":
  cli.run(main)
