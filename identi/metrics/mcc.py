"""Mean correlation coefficient (MCC): how well learned units identify ground-truth concepts.

Definition used by identi:

1. Split the samples in order: the first ``fit_fraction`` of them is the fit half, the rest the
   score half.
2. On each half, compute the absolute correlation matrix between true concepts (columns of
   ``z_true``) and learned units (columns of ``codes``): |Pearson|, or |Spearman| (Pearson of
   ranks, ties averaged).
3. Match concepts to units one-to-one with the Hungarian algorithm maximising the fit-half |corr|.
4. Score each concept by the score-half |corr| with its matched unit (0 when there are fewer units
   than concepts and it is left unmatched), and average over TRUE concepts.

Fitting the matching and scoring it on disjoint samples keeps chance correlations from inflating
the score when there are many units. Constant columns (dead units, never-active concepts) have
correlation 0, never NaN.
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
import scipy.stats

from identi.errors import ConfigError, DataError

_METHODS = ("pearson", "spearman")
_MIN_SAMPLES_PER_HALF = 4


class MCCResult(NamedTuple):
  """Result of ``mcc``.

  Attributes:
    mcc: mean over true concepts of the score-half |corr| with the matched unit.
    per_concept: ``(n_true,)`` score-half |corr| of each concept (0 when unmatched).
    matching: ``(n_true,)`` int index of the learned unit matched to each concept, -1 if unmatched.
    corr_fit: ``(n_true, n_units)`` |corr| on the fit half, from which the matching was made.
  """
  mcc: float
  per_concept: np.ndarray
  matching: np.ndarray
  corr_fit: np.ndarray


def _as_matrix(a, name: str) -> np.ndarray:
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
  if method not in _METHODS:
    raise ConfigError(f"method={method!r} is unknown: use one of {', '.join(_METHODS)}")
  a = _as_matrix(a, "a")
  b = _as_matrix(b, "b")
  if a.shape[0] != b.shape[0]:
    raise DataError(
        f"a has {a.shape[0]} samples but b has {b.shape[0]}: pass the same samples, row by row")
  if a.shape[0] < 2:
    raise DataError(f"got {a.shape[0]} samples; a correlation needs at least 2: pass more samples")
  pa = _prepare(a, method)
  pb = _prepare(b, method)
  return np.asarray(_standardised_corr(*pa, *pb))


def mcc(z_true, codes, *, method: str = "pearson", fit_fraction: float = 0.5) -> MCCResult:
  """Mean correlation coefficient between true concepts and learned units (see module docstring).

  Args:
    z_true: ``(n, n_true)`` ground-truth concept values.
    codes: ``(n, n_units)`` learned unit activations on the same samples; ``n_units`` may be larger
      or smaller than ``n_true``.
    method: 'pearson' or 'spearman'.
    fit_fraction: fraction of the samples (taken first, in order) used to fit the matching.

  Returns:
    An ``MCCResult``.
  """
  if method not in _METHODS:
    raise ConfigError(f"method={method!r} is unknown: use one of {', '.join(_METHODS)}")
  if not 0.0 < fit_fraction < 1.0:
    raise ConfigError(
        f"fit_fraction={fit_fraction} is outside (0, 1): pass e.g. 0.5 to fit the matching on half "
        "the samples and score it on the other half")
  z_true = _as_matrix(z_true, "z_true")
  codes = _as_matrix(codes, "codes")
  n = z_true.shape[0]
  if codes.shape[0] != n:
    raise DataError(
        f"z_true has {n} samples but codes has {codes.shape[0]}: pass the codes of exactly the "
        "samples in z_true, row by row")
  n_fit = int(round(n * fit_fraction))
  if min(n_fit, n - n_fit) < _MIN_SAMPLES_PER_HALF:
    raise DataError(
        f"{n} samples with fit_fraction={fit_fraction} leave {n_fit} to fit and {n - n_fit} to "
        f"score; each half needs at least {_MIN_SAMPLES_PER_HALF}: pass more samples")

  corr_fit = np.abs(correlation_matrix(z_true[:n_fit], codes[:n_fit], method))
  corr_score = np.abs(correlation_matrix(z_true[n_fit:], codes[n_fit:], method))
  rows, cols = scipy.optimize.linear_sum_assignment(corr_fit, maximize=True)
  n_true = z_true.shape[1]
  matching = np.full((n_true,), -1, np.int64)
  matching[rows] = cols
  per_concept = np.zeros((n_true,), np.float64)
  per_concept[rows] = corr_score[rows, cols]
  return MCCResult(
      mcc=float(per_concept.mean()),
      per_concept=per_concept,
      matching=matching,
      corr_fit=corr_fit,
  )
