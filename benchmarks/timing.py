"""What every benchmark times with: median steady-state seconds, the measured matmul peak and the
fixed batch that identi and the peers train on."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np


def wall_seconds(fn: Callable[[], Any], repeats: int) -> list[float]:
  """Wall times of `repeats` calls of fn, each ended by `block_until_ready`."""
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return times


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
  """Median wall time of `repeats` calls of fn, each ended by `block_until_ready`."""
  return statistics.median(wall_seconds(fn, repeats))


def matmul_flops_per_s(n: int = 2048, repeats: int = 10, dtype: str = "float32",
                       precision: Any = None) -> float:
  """Measured dense matmul FLOP/s of the default device for `dtype` operands (the roofline).

  The fastest of `repeats` runs: a peak, so that one slow run (a busy core) cannot lower it and
  flatter the roofline fractions taken against it.

  bfloat16 operands accumulate in float32, as the SAEs' bfloat16 matmuls do; `precision` is passed
  to the float32 matmul (e.g. HIGHEST, as the streamed correlation runs it).
  """
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32).astype(dtype)
  if a.dtype == jnp.float32:
    f = jax.jit(lambda a: jnp.matmul(a.T, a, precision=precision))
  else:
    f = jax.jit(lambda a: jnp.dot(a.T, a, preferred_element_type=jnp.float32))
  jax.block_until_ready(f(a))
  return 2 * n**3 / min(wall_seconds(lambda: f(a), repeats))


def benchmark_batch(batch: int, d_in: int) -> np.ndarray:
  """The fixed non-negative float32 (batch, d_in) batch that identi and the peer both train on."""
  rng = np.random.default_rng(0)
  return np.abs(rng.normal(size=(batch, d_in))).astype(np.float32)
