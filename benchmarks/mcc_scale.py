"""MCC at scale: `python -m benchmarks.mcc_scale --preset=full` (16,384 concepts x 16,384 units).

Streams synthetic (true codes, units) batches through identi's streamed correlation, then matches
concepts to units and scores the matching (`identi.metrics.mcc`, the definition of
`streamed_mcc`: fit on the first half of the samples, score on the second).

Data, drawn batch by batch by a jitted generator (the sample matrix never exists whole): true codes
z, each entry active with probability `--density`, active values uniform in [0.5, 1.5]; units
u_j = z[:, perm_j] + mix_j * z[:, perm_{j+1}] + noise * N(0, 1), with perm a random permutation and
mix_j = `--mix` for a `--mixed` share of the units, 0 for the rest. The correlation of a concept
with its own unit is then 1 / sqrt(1 + mix_j^2 + noise^2 / var(z)), var(z) = density * 13/12 -
density^2, and their mean is the MCC expected when every concept is matched to its own unit
(`expected_mcc`; finite samples add a small positive bias).

Times: the update is compiled ahead of time (`compile_s`; the generator's compile time apart);
steady state is every batch of both streams: generated (`generate_ms`, the median, not counted
below), then merged by the jitted, donated `correlation_update` (as `streamed_correlation` runs
it), each ended by `block_until_ready`. `step_ms` is the median merge, `samples_per_s` follows
from it, `roofline_fraction` divides its 2 x batch x concepts x units FLOPs by the step time and
the fp32 matmul FLOP/s measured in the same run, and `correlation_s` is the time of all merges
plus both finalizations (to host numpy |corr|). `matching_s` times `max_weight_assignment` on the
fit |corr| and names the matcher it used. `peak_rss_gib` is the process's peak resident memory
(`ru_maxrss`), `accumulator_gib` the size of one `CorrelationState`. Results go to stdout and
--output (JSON). The full preset's 2^16 samples take about 16 x (generate_ms + step_ms); pass
--samples to stream fewer.
"""

from __future__ import annotations

import resource
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
from identi.metrics.assignment import max_weight_assignment
from identi.metrics.correlation import correlation_finalize, correlation_init, correlation_update
from identi.train import sharding

PRESETS = {
    # (concepts = units, samples, batch)
    "smoke": (64, 2048, 256),
    "quick": (4096, 32768, 4096),
    "full": (16384, 65536, 4096),
}

_PRESET = flags.DEFINE_enum("preset", "quick", list(PRESETS), "Problem size.")
_SAMPLES = flags.DEFINE_integer("samples", 0, "Samples in both streams together; 0: the preset's.")
_DENSITY = flags.DEFINE_float("density", 0.05, "Probability that a true code is active.")
_MIXED = flags.DEFINE_float("mixed", 0.25, "Share of units that mix in a second concept.")
_MIX = flags.DEFINE_float("mix", 0.5, "Weight of the second concept in a mixed unit.")
_NOISE = flags.DEFINE_float("noise", 0.1, "Standard deviation of the units' Gaussian noise.")
_MATCHER = flags.DEFINE_enum("matcher", "auto", ["auto", "dense", "sparse"],
                             "max_weight_assignment's matcher.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the permutation and the samples.")
_OUTPUT = flags.DEFINE_string("output", "", "Optional JSON output path.")


def _peak_rss_gib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux.


def planted_units(n: int, mixed: float, mix: float, seed: int) -> tuple[np.ndarray, np.ndarray,
                                                                         np.ndarray]:
  """Concept of each unit (a permutation), the second concept it mixes in, and its weight."""
  rng = np.random.default_rng(seed)
  perm = rng.permutation(n)
  weights = np.where(rng.random(n) < mixed, mix, 0.0).astype(np.float32)
  return perm, np.roll(perm, -1), weights


def expected_mcc(weights: np.ndarray, density: float, noise: float) -> float:
  """Mean correlation of every concept with its own unit (see the module docstring)."""
  var = density * 13.0 / 12.0 - density**2
  return float(np.mean(1.0 / np.sqrt(1.0 + weights.astype(np.float64)**2 + noise**2 / var)))


def make_generator(n: int, batch: int, perm: np.ndarray, partner: np.ndarray, weights: np.ndarray,
                   density: float, noise: float, mesh):
  """A jitted key -> (z, units) batch generator, both sharded over the data mesh by rows."""
  perm, partner, weights = jnp.asarray(perm), jnp.asarray(partner), jnp.asarray(weights)
  rows = sharding.batch_sharded(mesh)

  def generate(key):
    k_active, k_value, k_noise = jax.random.split(key, 3)
    active = jax.random.bernoulli(k_active, density, (batch, n))
    z = jnp.where(active, jax.random.uniform(k_value, (batch, n), jnp.float32, 0.5, 1.5), 0.0)
    units = (z[:, perm] + weights * z[:, partner]
             + noise * jax.random.normal(k_noise, (batch, n), jnp.float32))
    return z, units

  return jax.jit(generate, out_shardings=(rows, rows))


def run(preset: str, samples: int = 0, density: float = 0.05, mixed: float = 0.25,
        mix: float = 0.5, noise: float = 0.1, matcher: str = "auto", seed: int = 0) -> dict:
  """Generates, correlates and matches the preset's problem; returns the report row."""
  n, preset_samples, batch = PRESETS[preset]
  samples = samples or preset_samples
  sharding.check_batch_size(batch, "batch")
  if samples % (2 * batch):
    raise ConfigError(f"--samples is {samples}, not a multiple of 2 x batch = {2 * batch}: use "
                      f"e.g. {max(1, samples // (2 * batch)) * 2 * batch}")
  mesh = sharding.data_mesh()
  perm, partner, weights = planted_units(n, mixed, mix, seed)
  generate = make_generator(n, batch, perm, partner, weights, density, noise, mesh)
  keys = jax.random.split(jax.random.key(seed), samples // batch)

  t0 = time.perf_counter()
  generate = generate.lower(keys[0]).compile()
  generator_compile_s = time.perf_counter() - t0
  spec = jax.ShapeDtypeStruct((batch, n), jnp.float32, sharding=sharding.batch_sharded(mesh))
  state_spec = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding.replicated(mesh)),
      jax.eval_shape(lambda: correlation_init(n, n)))
  state_shardings = jax.tree.map(lambda x: x.sharding, state_spec)
  t0 = time.perf_counter()
  update = jax.jit(correlation_update, donate_argnums=0, out_shardings=state_shardings).lower(
      state_spec, spec, spec).compile()
  finalize = correlation_finalize.lower(state_spec).compile()
  compile_s = time.perf_counter() - t0

  generate_times, steps, corr = [], [], []
  t_all = time.perf_counter()
  for half in np.split(keys, 2):
    state = jax.device_put(correlation_init(n, n), sharding.replicated(mesh))
    accumulator_bytes = sum(x.nbytes for x in jax.tree.leaves(state))
    for key in half:
      t0 = time.perf_counter()
      z, units = jax.block_until_ready(generate(key))
      t1 = time.perf_counter()
      state = jax.block_until_ready(update(state, z, units))
      generate_times.append(t1 - t0)
      steps.append(time.perf_counter() - t1)
    corr.append(np.abs(np.asarray(finalize(state))))
    del state, z, units
  correlation_s = time.perf_counter() - t_all - sum(generate_times)

  t0 = time.perf_counter()
  assignment = max_weight_assignment(corr[0], matcher)
  matching_s = time.perf_counter() - t0
  corr_score = corr[1]
  per_concept = np.zeros((n,), np.float64)
  per_concept[assignment.rows] = corr_score[assignment.rows, assignment.cols]
  own_unit = np.argsort(perm)  # Unit j holds concept perm[j].
  step_s = statistics.median(steps)
  peak = matmul_flops_per_s(precision=jax.lax.Precision.HIGHEST)
  return {
      "preset": preset, "concepts": n, "units": n, "samples": samples, "batch": batch,
      "device": jax.devices()[0].device_kind, "devices": jax.device_count(),
      "generator_compile_s": generator_compile_s, "compile_s": compile_s,
      "generate_ms": 1e3 * statistics.median(generate_times),
      "step_ms": 1e3 * step_s, "samples_per_s": batch / step_s,
      "correlation_s": correlation_s,
      "roofline_fraction": 2.0 * batch * n * n / step_s / peak, "matmul_flops_per_s": peak,
      "matcher": assignment.matcher, "matching_s": matching_s,
      "mcc": float(per_concept.mean()),
      "expected_mcc": expected_mcc(weights, density, noise),
      "own_unit_matched": float(np.mean(assignment.cols == own_unit[assignment.rows])),
      "peak_rss_gib": _peak_rss_gib(), "accumulator_gib": accumulator_bytes / 2**30,
  }


def main(argv):
  del argv
  row = run(_PRESET.value, _SAMPLES.value, _DENSITY.value, _MIXED.value, _MIX.value, _NOISE.value,
            _MATCHER.value, _SEED.value)
  print(f"device: {row['device']} x{row['devices']}, measured matmul peak "
        f"{row['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s")
  print(cli.format_table([row], ["preset", "concepts", "units", "samples", "batch", "compile_s",
                                 "generate_ms", "step_ms", "samples_per_s", "correlation_s",
                                 "roofline_fraction", "matcher", "matching_s", "mcc",
                                 "expected_mcc", "own_unit_matched", "accumulator_gib",
                                 "peak_rss_gib"]))
  if _OUTPUT.value:
    io.write_json(_OUTPUT.value, row)


if __name__ == "__main__":
  cli.run(main)
