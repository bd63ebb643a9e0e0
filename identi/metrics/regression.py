"""How well learned units predict each true concept: held-out linear and kernel-ridge R^2.

MCC asks for a one-to-one match of units to concepts. R^2 relaxes it: a concept is identified up
to a block when some (linear, or any smooth) function of ALL the learned units predicts it, which is
the block-identifiability notion. Both metrics fit on the first ``fit_fraction`` of the samples (in
order) and score on the rest, so extra units cannot inflate the score by overfitting.

Per concept, R^2 = 1 - sum (z - z_hat)^2 / sum (z - mean z)^2 on the score half, with mean z the
score-half mean; it can be negative on held-out data. A concept that is constant on the score half
scores 0 (undefined R^2, never NaN).
"""
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from identi.errors import ConfigError, DataError
from identi.metrics.correlation import as_matrix

_MIN_SAMPLES_PER_HALF = 4
_HIGHEST = jax.lax.Precision.HIGHEST
#: Test rows per kernel block when predicting, to bound memory at (block, max_fit) floats.
_PREDICT_BLOCK = 4096


class R2Result(NamedTuple):
  """Result of ``linear_r2`` and ``kernel_ridge_r2``.

  Attributes:
    mean: mean over true concepts of the held-out R^2.
    per_concept: ``(n_true,)`` held-out R^2 of each concept.
  """
  mean: float
  per_concept: np.ndarray


def _split(z_true, codes, fit_fraction: float) -> tuple[np.ndarray, np.ndarray, int]:
  if not isinstance(fit_fraction, numbers.Real) or not 0.0 < fit_fraction < 1.0:
    raise ConfigError(f"fit_fraction={fit_fraction!r} is outside (0, 1): pass e.g. 0.5 to fit on "
                      "half the samples and score on the other half")
  z_true = as_matrix(z_true, "z_true").astype(np.float64)
  codes = as_matrix(codes, "codes").astype(np.float64)
  n = z_true.shape[0]
  if codes.shape[0] != n:
    raise DataError(f"z_true has {n} samples but codes has {codes.shape[0]}: pass the codes of "
                    "exactly the samples in z_true, row by row")
  n_fit = int(round(n * fit_fraction))
  if min(n_fit, n - n_fit) < _MIN_SAMPLES_PER_HALF:
    raise DataError(f"{n} samples with fit_fraction={fit_fraction} leave {n_fit} to fit and "
                    f"{n - n_fit} to score; each half needs at least {_MIN_SAMPLES_PER_HALF}: pass "
                    "more samples")
  return z_true, codes, n_fit


def _standardise(codes: np.ndarray, n_fit: int) -> np.ndarray:
  """Centres and scales columns by fit-half statistics; constant columns become 0."""
  mean = codes[:n_fit].mean(axis=0)
  std = codes[:n_fit].std(axis=0)
  ok = std > 0
  return np.where(ok, (codes - mean) / np.where(ok, std, 1.0), 0.0)


def _r2(z_score: np.ndarray, pred: np.ndarray) -> R2Result:
  sse = np.sum(np.square(z_score - pred), axis=0)
  sst = np.sum(np.square(z_score - z_score.mean(axis=0)), axis=0)
  per = np.where(sst > 0, 1.0 - sse / np.where(sst > 0, sst, 1.0), 0.0)
  return R2Result(mean=float(per.mean()), per_concept=per)


def linear_r2(z_true, codes, fit_fraction: float = 0.5, ridge: float = 1e-6) -> R2Result:
  """Held-out R^2 of least-squares predictions of each true concept from all learned units.

  Units are standardised on the fit half and each concept gets an unpenalised intercept; the fit
  minimises mean (z - z_hat)^2 + ridge ||w||^2, solved by the normal equations in float64.

  Args:
    z_true: ``(n, n_true)`` ground-truth concepts.
    codes: ``(n, n_units)`` learned units on the same samples.
    fit_fraction: fraction of the samples (first, in order) used to fit.
    ridge: ridge penalty on the weights of the standardised units, >= 0 (keeps collinear units
      solvable).

  Returns:
    An ``R2Result``.
  """
  if not isinstance(ridge, numbers.Real) or not ridge >= 0.0:
    raise ConfigError(f"ridge={ridge!r} is invalid: pass a penalty >= 0, e.g. 1e-6")
  z_true, codes, n_fit = _split(z_true, codes, fit_fraction)
  feats = _standardise(codes, n_fit)
  z_mean = z_true[:n_fit].mean(axis=0)
  a = feats[:n_fit]
  gram = a.T @ a + (ridge * n_fit + np.finfo(np.float64).eps) * np.eye(a.shape[1])
  weights = np.linalg.solve(gram, a.T @ (z_true[:n_fit] - z_mean))
  return _r2(z_true[n_fit:], feats[n_fit:] @ weights + z_mean)


def _sq_dists(a: jax.Array, b: jax.Array) -> jax.Array:
  sq = (jnp.sum(jnp.square(a), axis=1)[:, None] + jnp.sum(jnp.square(b), axis=1)[None, :]
        - 2.0 * jnp.matmul(a, b.T, precision=_HIGHEST))
  return jnp.maximum(sq, 0.0)


@jax.jit
def _median_lengthscale(a: jax.Array) -> jax.Array:
  """Median pairwise Euclidean distance between distinct rows (the median heuristic)."""
  n = a.shape[0]
  dists = jnp.sqrt(_sq_dists(a, a))
  off = jnp.where(jnp.eye(n, dtype=bool), jnp.nan, dists)
  return jnp.nanmedian(off)


@jax.jit
def _krr_fit(a: jax.Array, y: jax.Array, lengthscale: jax.Array, alpha: jax.Array) -> jax.Array:
  """Dual weights of RBF kernel ridge: (K + alpha * n I)^{-1} y."""
  n = a.shape[0]
  kernel = jnp.exp(-_sq_dists(a, a) / (2.0 * jnp.square(lengthscale)))
  chol = jnp.linalg.cholesky(kernel + alpha * n * jnp.eye(n))
  return jax.scipy.linalg.cho_solve((chol, True), y)


@jax.jit
def _krr_predict(a: jax.Array, b: jax.Array, dual: jax.Array, lengthscale: jax.Array) -> jax.Array:
  kernel = jnp.exp(-_sq_dists(b, a) / (2.0 * jnp.square(lengthscale)))
  return jnp.matmul(kernel, dual, precision=_HIGHEST)


def kernel_ridge_r2(z_true, codes, *, fit_fraction: float = 0.5, lengthscale: float | None = None,
                    alpha: float = 1e-3, max_fit: int = 2048) -> R2Result:
  """Held-out R^2 of RBF kernel ridge predictions of each true concept from all learned units.

  Units are standardised on the fit half; the first ``max_fit`` fit-half samples are used to fit
  min (1/m) sum (z - f(u))^2 + alpha ||f||^2 over the RBF kernel's RKHS, i.e. dual weights
  (K + alpha m I)^{-1} (z - mean z), so ``alpha`` does not depend on m. In float32 JAX (jitted).

  Args:
    z_true: ``(n, n_true)`` ground-truth concepts.
    codes: ``(n, n_units)`` learned units on the same samples.
    fit_fraction: fraction of the samples (first, in order) used to fit.
    lengthscale: RBF lengthscale on standardised units; None uses the median pairwise distance of
      the fit samples.
    alpha: ridge penalty, > 0.
    max_fit: most fit samples (the kernel system is max_fit x max_fit).

  Returns:
    An ``R2Result``.
  """
  if not isinstance(alpha, numbers.Real) or not alpha > 0.0:
    raise ConfigError(f"alpha={alpha!r} is invalid: pass a ridge penalty > 0, e.g. 1e-3")
  if isinstance(max_fit, bool) or not isinstance(max_fit, numbers.Integral) or max_fit < 2:
    raise ConfigError(f"max_fit={max_fit!r} is invalid: pass an integer >= 2, e.g. 2048")
  if lengthscale is not None and (not isinstance(lengthscale, numbers.Real)
                                  or not lengthscale > 0.0):
    raise ConfigError(f"lengthscale={lengthscale!r} is invalid: pass a positive float or None "
                      "for the median heuristic")
  z_true, codes, n_fit = _split(z_true, codes, fit_fraction)
  feats = _standardise(codes, n_fit).astype(np.float32)
  m = min(n_fit, int(max_fit))
  a = jnp.asarray(feats[:m])
  z_mean = z_true[:m].mean(axis=0)
  if lengthscale is None:
    scale = _median_lengthscale(a)
    scale = jnp.where(scale > 0, scale, 1.0)
  else:
    scale = jnp.asarray(lengthscale, jnp.float32)
  dual = _krr_fit(a, jnp.asarray(z_true[:m] - z_mean, jnp.float32), scale,
                  jnp.asarray(alpha, jnp.float32))
  score = feats[n_fit:]
  preds = [np.asarray(_krr_predict(a, jnp.asarray(score[i:i + _PREDICT_BLOCK]), dual, scale))
           for i in range(0, score.shape[0], _PREDICT_BLOCK)]
  return _r2(z_true[n_fit:], np.concatenate(preds).astype(np.float64) + z_mean)
