"""Correlation matrices between true concepts and learned units, in memory or streamed.

``correlation_matrix`` holds all samples in memory (|Pearson| or |Spearman|, constant columns 0);
``streamed_correlation`` computes one correlation matrix from a stream of batches. Streaming
folds batches into a ``CorrelationState`` (``correlation_init``, the jitted
``correlation_update``, ``correlation_finalize``): per batch one float32 matmul of batch-centred
columns at HIGHEST precision, merged with Chan et al.'s parallel formula, so memory is the
``(k_a, k_b)`` co-moment whatever the number of samples, batches may be sharded over a data mesh,
and a large offset does not cancel in float32 as raw sums of products would. Pearson only.
Speed and memory at 16,384 x 16,384: docs/performance.md (``benchmarks/mcc_scale.py``).
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from identi.errors import ConfigError, DataError


METHODS = ("pearson", "spearman")


MIN_SAMPLES_PER_HALF = 4


def as_matrix(a, name: str) -> np.ndarray:
  """Validates a 2-D numeric array with finite values."""
  a = np.asarray(a)
  if a.ndim != 2:
    raise DataError(
        f"{name} has {a.ndim} dimensions (shape {a.shape}); it must be 2-D (samples, columns): "
        "reshape it to (num_samples, -1)")
  if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
    raise DataError(f"{name} has dtype {a.dtype}; pass a numeric array, e.g. a.astype(np.float32)")
  if a.shape[1] == 0:
    raise DataError(f"{name} has shape {a.shape} with no columns: pass at least one column")
  if a.dtype != np.bool_:
    bad = ~np.isfinite(a)
    if bad.any():
      row = int(np.argmax(bad.any(axis=1)))
      raise DataError(
          f"{name} holds {int(bad.sum())} NaN/Inf values (first in row {row}): remove or fix those "
          "samples before computing correlations")
  return a


@jax.jit
def _standardised_corr(a: jax.Array, mean_a: jax.Array, const_a: jax.Array, b: jax.Array,
                       mean_b: jax.Array, const_b: jax.Array) -> jax.Array:
  """Correlation matrix as the matmul of centred, unit-norm columns (constant columns -> 0)."""

  def standardise(x, mean, const):
    c = x - mean
    norm = jnp.sqrt(jnp.sum(jnp.square(c), axis=0))
    ok = (~const) & (norm > 0)
    return jnp.where(ok, c / jnp.where(ok, norm, 1.0), 0.0)

  sa = standardise(a, mean_a, const_a)
  sb = standardise(b, mean_b, const_b)
  corr = jnp.matmul(sa.T, sb, precision=jax.lax.Precision.HIGHEST)
  return jnp.clip(corr, -1.0, 1.0)


def _prepare(x: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Float32 columns (ranked for Spearman), their float64 means and a constant-column mask."""
  if method == "spearman":
    import scipy.stats  # pylint: disable=g-import-not-at-top  (slow; Spearman/AUROC only)
    x = scipy.stats.rankdata(x, axis=0)
  elif not np.issubdtype(x.dtype, np.floating):
    x = x.astype(np.float64)
  const = np.ptp(x, axis=0) == 0
  mean = np.mean(x, axis=0, dtype=np.float64).astype(np.float32)
  return np.asarray(x, np.float32), mean, const


def correlation_matrix(a, b, method: str = "pearson") -> np.ndarray:
  """Signed correlation between every column of ``a`` and every column of ``b``.

  Args:
    a: ``(n, k_a)`` samples by columns.
    b: ``(n, k_b)`` samples by columns.
    method: 'pearson', or 'spearman' (Pearson correlation of ranks, ties averaged).

  Returns:
    float32 ``(k_a, k_b)`` in [-1, 1]; entries involving a constant column are 0.
  """
  if method not in METHODS:
    raise ConfigError(f"method={method!r} is unknown: use one of {', '.join(METHODS)}")
  a = as_matrix(a, "a")
  b = as_matrix(b, "b")
  if a.shape[0] != b.shape[0]:
    raise DataError(
        f"a has {a.shape[0]} samples but b has {b.shape[0]}: pass the same samples, row by row")
  if a.shape[0] < 2:
    raise DataError(f"got {a.shape[0]} samples; a correlation needs at least 2: pass more samples")
  pa = _prepare(a, method)
  pb = _prepare(b, method)
  return np.asarray(_standardised_corr(*pa, *pb))


class CorrelationState(NamedTuple):
  """Running Pearson statistics of the columns of two paired streams, merged batch by batch.

  Batches are merged with Chan et al.'s parallel formula: every batch contributes the cross product
  of its deviations from its own means, and the merge adds the mean-difference term
  ``n_s * n_b / n * outer(delta_a, delta_b)``. No raw sum of products is ever formed, so a large
  common offset in a column does not cancel catastrophically in float32.

  Attributes:
    count: int32 number of samples seen.
    mean_a: float32 ``(k_a,)`` column means of a.
    mean_b: float32 ``(k_b,)`` column means of b.
    comoment: float32 ``(k_a, k_b)`` sum over samples of ``(a - mean_a)[:, None] * (b - mean_b)``.
    ssd_a: float32 ``(k_a,)`` sum of squared deviations of a from its mean.
    ssd_b: float32 ``(k_b,)`` sum of squared deviations of b from its mean.
    min_a, max_a, min_b, max_b: float32 column extremes. A column is constant iff its min equals its
      max, an exact test (a float32 ``ssd`` of a constant column need not be exactly 0).
  """
  count: jax.Array
  mean_a: jax.Array
  mean_b: jax.Array
  comoment: jax.Array
  ssd_a: jax.Array
  ssd_b: jax.Array
  min_a: jax.Array
  max_a: jax.Array
  min_b: jax.Array
  max_b: jax.Array


def correlation_init(k_a: int, k_b: int) -> CorrelationState:
  """Empty state for streams of ``k_a`` and ``k_b`` columns (every leaf its own buffer, so that
  the state can be donated)."""
  return CorrelationState(
      count=jnp.zeros((), jnp.int32),
      mean_a=jnp.zeros((k_a,), jnp.float32),
      mean_b=jnp.zeros((k_b,), jnp.float32),
      comoment=jnp.zeros((k_a, k_b), jnp.float32),
      ssd_a=jnp.zeros((k_a,), jnp.float32),
      ssd_b=jnp.zeros((k_b,), jnp.float32),
      min_a=jnp.full((k_a,), jnp.inf, jnp.float32),
      max_a=jnp.full((k_a,), -jnp.inf, jnp.float32),
      min_b=jnp.full((k_b,), jnp.inf, jnp.float32),
      max_b=jnp.full((k_b,), -jnp.inf, jnp.float32),
  )


def _centred(x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """Batch mean, deviations from a first-pass mean, their sum of squares and their mean.

  The deviations' own mean (the rounding error of the first-pass float32 mean) corrects the mean,
  the sum of squares and the cross products, as in the corrected two-pass algorithm.
  """
  n = x.shape[0]
  rough = jnp.mean(x, axis=0)
  dev = x - rough
  residual = jnp.mean(dev, axis=0)
  ssd = jnp.sum(jnp.square(dev), axis=0) - n * jnp.square(residual)
  return rough + residual, dev, jnp.maximum(ssd, 0.0), residual


def _merge(state: CorrelationState, a: jax.Array, b: jax.Array) -> CorrelationState:
  """Chan et al.'s merge of the statistics of one batch into ``state``."""
  n_b = a.shape[0]
  if n_b == 0:
    return state
  a = a.astype(jnp.float32)
  b = b.astype(jnp.float32)
  mean_ab, dev_a, ssd_ab, res_a = _centred(a)
  mean_bb, dev_b, ssd_bb, res_b = _centred(b)
  comoment_b = (jnp.matmul(dev_a.T, dev_b, precision=jax.lax.Precision.HIGHEST)
                - n_b * jnp.outer(res_a, res_b))
  n_s = state.count.astype(jnp.float32)
  n = n_s + n_b
  weight = n_s * (n_b / n)
  delta_a = mean_ab - state.mean_a
  delta_b = mean_bb - state.mean_b
  return CorrelationState(
      count=state.count + n_b,
      mean_a=state.mean_a + delta_a * (n_b / n),
      mean_b=state.mean_b + delta_b * (n_b / n),
      comoment=state.comoment + comoment_b + weight * jnp.outer(delta_a, delta_b),
      ssd_a=state.ssd_a + ssd_ab + weight * jnp.square(delta_a),
      ssd_b=state.ssd_b + ssd_bb + weight * jnp.square(delta_b),
      min_a=jnp.minimum(state.min_a, jnp.min(a, axis=0)),
      max_a=jnp.maximum(state.max_a, jnp.max(a, axis=0)),
      min_b=jnp.minimum(state.min_b, jnp.min(b, axis=0)),
      max_b=jnp.maximum(state.max_b, jnp.max(b, axis=0)),
  )


@jax.jit
def correlation_update(state: CorrelationState, a: jax.Array, b: jax.Array) -> CorrelationState:
  """Merges one batch of paired samples, ``a`` ``(n, k_a)`` and ``b`` ``(n, k_b)``, into ``state``.

  The batch may be sharded over devices along its first axis; jit then reduces across them.
  Inputs are not validated here (see ``streamed_correlation``).
  """
  return _merge(state, a, b)


def _checked_merge(state, a, b):
  """``_merge`` plus the number of non-finite values in a and in b."""
  return (_merge(state, a, b), jnp.sum(~jnp.isfinite(a)), jnp.sum(~jnp.isfinite(b)))


# The streamed path owns its state, so it donates it: the (k_a, k_b) co-moment is updated in place
# instead of being held twice.
_checked_update = jax.jit(_checked_merge, donate_argnums=0)


@jax.jit
def correlation_finalize(state: CorrelationState) -> jax.Array:
  """Signed Pearson correlation ``(k_a, k_b)`` in [-1, 1]; entries of constant columns are 0."""
  ok_a = (state.max_a > state.min_a) & (state.ssd_a > 0)
  ok_b = (state.max_b > state.min_b) & (state.ssd_b > 0)
  inv_a = jnp.where(ok_a, jax.lax.rsqrt(jnp.where(ok_a, state.ssd_a, 1.0)), 0.0)
  inv_b = jnp.where(ok_b, jax.lax.rsqrt(jnp.where(ok_b, state.ssd_b, 1.0)), 0.0)
  return jnp.clip(state.comoment * inv_a[:, None] * inv_b[None, :], -1.0, 1.0)


def _as_batch_matrix(x, name: str) -> jax.Array:
  """A 2-D numeric jax array (kept as is, sharding included, if it already is one)."""
  if not isinstance(x, jax.Array):
    x = np.asarray(x)
  if not (jnp.issubdtype(x.dtype, jnp.number) or x.dtype == jnp.bool_):
    raise DataError(f"{name} has dtype {x.dtype}; pass a numeric array, e.g. a.astype(np.float32)")
  if x.ndim != 2:
    raise DataError(
        f"{name} has {x.ndim} dimensions (shape {x.shape}); it must be 2-D (samples, columns): "
        "reshape it to (num_samples, -1)")
  if x.shape[1] == 0:
    raise DataError(f"{name} has shape {x.shape} with no columns: pass at least one column")
  return x if isinstance(x, jax.Array) else jnp.asarray(x)


def stream_state(batches: Iterable, label: str, min_samples: int) -> CorrelationState:
  """Validates and merges every (a, b) batch; ``label`` ('', 'fit ', 'score ') names the stream."""
  state = widths = pending = None
  for i, pair in enumerate(batches):
    where = f"{label}batch {i}"
    try:
      a, b = pair
    except (TypeError, ValueError) as e:
      raise DataError(f"{where} is not an (a, b) pair ({e}): yield a tuple (a, b) per batch") from e
    a = _as_batch_matrix(a, f"a of {where}")
    b = _as_batch_matrix(b, f"b of {where}")
    if a.shape[0] != b.shape[0]:
      raise DataError(
          f"{where}: a has {a.shape[0]} samples but b has {b.shape[0]}: pass the same samples, "
          "row by row")
    if widths is None:
      widths = (a.shape[1], b.shape[1])
      state = correlation_init(*widths)
      if isinstance(getattr(a, "sharding", None), NamedSharding):
        state = jax.device_put(state, NamedSharding(a.sharding.mesh, PartitionSpec()))
    elif (a.shape[1], b.shape[1]) != widths:
      raise DataError(
          f"{where} has {a.shape[1]} and {b.shape[1]} columns (a, b) but the first batch had "
          f"{widths[0]} and {widths[1]}: every batch must hold the same columns")
    state, bad_a, bad_b = _checked_update(state, a, b)
    # Checked one batch late, so that the host does not stall the device on every batch.
    if pending is not None:
      _raise_if_not_finite(*pending)
    pending = (where, bad_a, bad_b)
  if state is None:
    raise DataError(f"the {label}stream yielded no batches: pass an iterable of (a, b) pairs")
  _raise_if_not_finite(*pending)
  count = int(state.count)
  if count < min_samples:
    raise DataError(
        f"the {label}stream held {count} samples; it needs at least {min_samples}: pass more "
        "samples")
  return state


def _raise_if_not_finite(where: str, bad_a: jax.Array, bad_b: jax.Array) -> None:
  for name, bad in (("a", int(bad_a)), ("b", int(bad_b))):
    if bad:
      raise DataError(
          f"{name} of {where} holds {bad} NaN/Inf values: remove or fix those samples before "
          "computing correlations")


def streamed_correlation(batches: Iterable) -> np.ndarray:
  """Pearson correlation between the columns of two paired streams, one batch at a time.

  Equals ``correlation_matrix(concat(a), concat(b))`` up to float32 rounding, with memory
  independent of the number of samples: the state holds one ``(k_a, k_b)`` float32 matrix. The
  rounding is ~1e-7 for one batch and grows with the offset-to-spread ratio of the columns over
  several (the merge subtracts float32 means): ~5e-6 at means 1000 standard deviations from 0.
  Pearson only (Spearman needs the ranks of all samples at once).

  Args:
    batches: iterable of ``(a, b)`` pairs, ``a`` ``(n_i, k_a)`` and ``b`` ``(n_i, k_b)`` with the
      same rows; numpy or jax arrays, the latter possibly sharded along the batch axis.

  Returns:
    float32 ``(k_a, k_b)`` numpy array in [-1, 1]; entries involving a constant column are 0.
  """
  state = stream_state(batches, "", 2)
  return np.asarray(correlation_finalize(state))
