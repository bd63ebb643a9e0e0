"""FastICA baseline (Hyvarinen 1999): symmetric FastICA with the logcosh contrast, in JAX.

1. Whitening: centre x and project on the ``width`` leading eigenvectors of its covariance, scaled
   to unit variance: z = (x - mean) K^T with K = Lambda^{-1/2} V^T (width, d).
2. Fixed point on the orthogonal unmixing W (width, width), from a random orthogonal start:
   W <- E[g(W z) z^T] - diag(E[g'(W z)]) W with g = tanh (the derivative of logcosh), followed by
   the symmetric decorrelation W <- (W W^T)^{-1/2} W, until max |1 - |diag(W_new W^T)|| < tol or
   ``max_iter`` iterations.
3. Sources s = W z have unit variance; each is signed to have non-negative skewness (sparse,
   non-negative concepts come out positive).

Codes are s = (x - mean) (W K)^T; decoding uses the mixing matrix pinv(W K) = V Lambda^{1/2} W^T,
so it reconstructs the projection on the principal subspace. ICA finds at most d sources, so
``width <= d``. It assumes as many independent non-Gaussian sources as dimensions: with more
concepts than dimensions (superposition) it cannot separate them.
"""
import functools
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from identi.baselines.base import Baseline, as_key, check_data, check_width
from identi.errors import ConfigError, DataError
from identi.infer.omp import check_positive_int

_HIGHEST = jax.lax.Precision.HIGHEST
#: Smallest eigenvalue kept in the whitening, relative to the largest (float32 rank cut).
_MIN_RELATIVE_EIGENVALUE = 1e-6


def _sym_decorrelate(w: jax.Array) -> jax.Array:
  """(W W^T)^{-1/2} W."""
  eig, vec = jnp.linalg.eigh(jnp.matmul(w, w.T, precision=_HIGHEST))
  inv_sqrt = (vec / jnp.sqrt(jnp.maximum(eig, jnp.finfo(jnp.float32).tiny))) @ vec.T
  return jnp.matmul(inv_sqrt, w, precision=_HIGHEST)


@functools.partial(jax.jit, static_argnames=("max_iter",))
def _fastica(key: jax.Array, z: jax.Array, tol: jax.Array, alpha: jax.Array, *,
             max_iter: int) -> tuple[jax.Array, jax.Array]:
  """Symmetric FastICA on whitened z (n, width); returns (W, iterations used)."""
  width = z.shape[1]
  w0 = _sym_decorrelate(jax.random.normal(key, (width, width)))

  def update(w):
    wz = jnp.matmul(z, w.T, precision=_HIGHEST)
    g = jnp.tanh(alpha * wz)
    g_prime = alpha * (1.0 - jnp.square(g))
    new = (jnp.matmul(g.T, z, precision=_HIGHEST) / z.shape[0]
           - jnp.mean(g_prime, axis=0)[:, None] * w)
    return _sym_decorrelate(new)

  def cond(state):
    it, _, change = state
    return (it < max_iter) & (change > tol)

  def body(state):
    it, w, _ = state
    new = update(w)
    change = jnp.max(jnp.abs(jnp.abs(jnp.sum(new * w, axis=1)) - 1.0))
    return it + 1, new, change

  iters, w, _ = jax.lax.while_loop(cond, body, (0, w0, jnp.asarray(jnp.inf, jnp.float32)))
  return w, iters


def fit_ica(key_or_seed, x, width: int, *, max_iter: int = 200, tol: float = 1e-4,
            alpha: float = 1.0) -> Baseline:
  """Fits symmetric FastICA with ``width`` sources (``width <= d``); see the module docstring.

  Args:
    key_or_seed: JAX PRNG key or int seed (the random orthogonal start).
    x: (n, d) data.
    width: number of sources, 1 <= width <= d (and <= the data's rank).
    max_iter: most fixed-point iterations.
    tol: convergence tolerance on the change of W.
    alpha: logcosh parameter in [1, 2].

  Returns:
    A ``Baseline`` whose codes are the unit-variance, skew-positive estimated sources.
  """
  key = as_key(key_or_seed)
  x = check_data(x, "fit_ica")
  width = check_width(width, "fit_ica", x.shape[1])
  max_iter = check_positive_int("max_iter", max_iter, "fit_ica")
  if not isinstance(tol, numbers.Real) or not tol > 0.0:
    raise ConfigError(f"fit_ica tol={tol!r} is invalid: pass a positive tolerance, e.g. 1e-4")
  if not isinstance(alpha, numbers.Real) or not 1.0 <= alpha <= 2.0:
    raise ConfigError(f"fit_ica alpha={alpha!r} is outside [1, 2]: pass the logcosh parameter, "
                      "e.g. 1.0")
  mean = np.mean(x, axis=0, dtype=np.float64)
  centred = x - mean
  eig, vec = np.linalg.eigh(centred.T.astype(np.float64) @ centred / x.shape[0])
  eig, vec = eig[::-1][:width], vec[:, ::-1][:, :width]
  if not eig[-1] > _MIN_RELATIVE_EIGENVALUE * max(eig[0], np.finfo(np.float64).tiny):
    rank = int(np.sum(eig > _MIN_RELATIVE_EIGENVALUE * eig[0]))
    raise DataError(f"fit_ica data has rank {rank} < width={width}, so it cannot be whitened: "
                    f"pass width <= {rank}")
  whiten = (vec / np.sqrt(eig)).T
  z = jnp.asarray((centred @ whiten.T).astype(np.float32))
  w, _ = _fastica(key, z, jnp.asarray(tol, jnp.float32), jnp.asarray(alpha, jnp.float32),
                  max_iter=max_iter)
  w = np.asarray(w, np.float64)
  sources = np.asarray(z, np.float64) @ w.T
  signs = np.where(np.mean(sources ** 3, axis=0) < 0, -1.0, 1.0)
  w = w * signs[:, None]
  w_enc = (w @ whiten).T
  w_dec = w @ (vec * np.sqrt(eig)).T
  return Baseline(W_enc=jnp.asarray(w_enc, jnp.float32),
                  b_enc=jnp.asarray(-mean @ w_enc, jnp.float32),
                  W_dec=jnp.asarray(w_dec, jnp.float32), b_dec=jnp.asarray(mean, jnp.float32),
                  name="ica")
