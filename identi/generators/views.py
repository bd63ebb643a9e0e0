"""Observation views of HSM/HCM concepts (docs/hsm.md).

Every view is a pure function of a JAX key and the concepts, and returns its mixing matrices.
The key is split into a mixing key and a noise key, so the same key gives the same matrices for
any number of samples: apply a view to interventional data with the key used for the
observational data to observe both through the same map.

- ``superposition_view``: ``x = z1 @ A.T + sigma * noise``, ``A`` ``(d, n_1)`` with unit-norm
  Gaussian columns; ``d < n_1`` is superposition.
- ``level_view``: the same for one level (pure) or for ``[z[l]; ...; z[L]]`` (cumulative, the
  diffusion picture in which noisy timesteps keep only abstract concepts).
- ``nonlinear_view``: ``x = f(A z1) + sigma * noise`` with ``f = g_depth o ... o g_1``,
  ``g_k(h) = leaky_relu(W_k h)``. Each ``W_k`` is ``Q1 diag(s) Q2`` (random orthogonal ``Q``,
  log-uniform singular values ``s`` in ``[1/sqrt(c), sqrt(c)]``, ``c = condition``) with columns
  then scaled to unit norm, so every layer is square, column-normalised and has condition number
  at most ``condition ** 2``. ``invert_nonlinear_view`` undoes ``f`` exactly (noise-free x).
"""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from identi.checks import check_count, check_key, check_sigma, is_int, is_real
from identi.errors import ConfigError, DataError


def _check_codes(z, name: str) -> np.ndarray:
  z = np.asarray(z)
  if z.ndim != 2:
    raise DataError(
        f"{name} has shape {z.shape}; it must be 2-D (samples, concepts): pass one level's "
        "z array, e.g. out['z'][0]")
  if not np.issubdtype(z.dtype, np.number) and z.dtype != np.bool_:
    raise DataError(f"{name} has dtype {z.dtype}; pass a numeric array")
  if not np.all(np.isfinite(z)):
    raise DataError(f"{name} holds NaN/Inf values: pass finite concepts")
  return z.astype(np.float32)


def _unit_columns(key: jax.Array, d: int, n: int) -> jax.Array:
  a = jax.random.normal(key, (d, n))
  return a / jnp.linalg.norm(a, axis=0, keepdims=True)


@functools.partial(jax.jit, static_argnames=("d",))
def _linear(key, z, sigma, *, d: int):
  k_a, k_noise = jax.random.split(key)
  mixing = _unit_columns(k_a, d, z.shape[1])
  x = jnp.matmul(z, mixing.T, precision=jax.lax.Precision.HIGHEST)
  return x + sigma * jax.random.normal(k_noise, x.shape), mixing


def superposition_view(key: jax.Array, z1, d: int, sigma: float = 0.0
                       ) -> tuple[np.ndarray, np.ndarray]:
  """Superposition view of level 1: ``x = z1 @ A.T + sigma * N(0, 1)``.

  Args:
    key: a JAX PRNG key (A depends only on it and the shapes).
    z1: ``(num_samples, n_1)`` level-1 concepts.
    d: observation dimension (``d < n_1`` allowed).
    sigma: noise standard deviation, >= 0.

  Returns:
    ``(x, A)``: float32 ``(num_samples, d)`` and ``(d, n_1)`` with unit-norm columns.
  """
  key = check_key(key)
  z1 = _check_codes(z1, "z1")
  d = check_count(d, "d")
  x, mixing = _linear(key, jnp.asarray(z1), jnp.float32(check_sigma(sigma)), d=d)
  return np.asarray(x, np.float32), np.asarray(mixing, np.float32)


def level_view(key: jax.Array, z_levels, level: int, d: int, sigma: float = 0.0,
               cumulative: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """Linear view of one level (``x = A z[level]``) or of it and all above (``A [z[l]; ...]``).

  Args:
    key: a JAX PRNG key.
    z_levels: list of ``(num_samples, n_l)`` arrays, index 0 = level 1 (``out['z']``).
    level: the level observed, 1-based.
    d: observation dimension.
    sigma: noise standard deviation, >= 0.
    cumulative: observe ``[z[level]; ...; z[L]]`` instead of ``z[level]`` alone.

  Returns:
    ``(x, A)``: ``A`` is ``(d, n_level)``, or ``(d, n_level + ... + n_L)`` when cumulative
    (columns in level order).
  """
  key = check_key(key)
  if not isinstance(z_levels, (list, tuple)) or not z_levels:
    raise DataError(
        "z_levels must be a non-empty list of per-level (samples, concepts) arrays, index 0 = "
        "level 1: pass out['z']")
  if not is_int(level) or not 1 <= level <= len(z_levels):
    raise ConfigError(f"level={level!r} is invalid: pass a level in 1..{len(z_levels)}")
  levels = [_check_codes(z, f"z_levels[{l}]") for l, z in enumerate(z_levels)]
  if len({z.shape[0] for z in levels}) != 1:
    raise DataError(
        f"z_levels have different sample counts {[z.shape[0] for z in levels]}: pass the levels "
        "of one draw")
  z = np.concatenate(levels[level - 1:], axis=1) if cumulative else levels[level - 1]
  d = check_count(d, "d")
  x, mixing = _linear(key, jnp.asarray(z), jnp.float32(check_sigma(sigma)), d=d)
  return np.asarray(x, np.float32), np.asarray(mixing, np.float32)


def _layer(key: jax.Array, d: int, condition: float) -> jax.Array:
  k1, k2, k3 = jax.random.split(key, 3)
  q1, _ = jnp.linalg.qr(jax.random.normal(k1, (d, d)))
  q2, _ = jnp.linalg.qr(jax.random.normal(k2, (d, d)))
  half = 0.5 * jnp.log(condition)
  s = jnp.exp(jax.random.uniform(k3, (d,), minval=-half, maxval=half))
  w = (q1 * s) @ q2
  return w / jnp.linalg.norm(w, axis=0, keepdims=True)


@functools.partial(jax.jit, static_argnames=("d", "depth"))
def _nonlinear(key, z, sigma, negative_slope, condition, *, d: int, depth: int):
  k_a, k_layers, k_noise = jax.random.split(key, 3)
  mixing = _unit_columns(k_a, d, z.shape[1])
  layers = [_layer(k, d, condition) for k in jax.random.split(k_layers, depth)]
  h = jnp.matmul(z, mixing.T, precision=jax.lax.Precision.HIGHEST)
  for w in layers:
    h = jnp.matmul(h, w.T, precision=jax.lax.Precision.HIGHEST)
    h = jnp.where(h >= 0, h, negative_slope * h)
  return h + sigma * jax.random.normal(k_noise, h.shape), mixing, jnp.stack(layers)


def nonlinear_view(key: jax.Array, z1, d: int, depth: int = 2, negative_slope: float = 0.2,
                   sigma: float = 0.0, condition: float = 4.0
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Nonlinear view: ``x = f(A z1) + sigma * N(0, 1)``, f an invertible leaky-ReLU MLP.

  Args:
    key: a JAX PRNG key.
    z1: ``(num_samples, n_1)`` level-1 concepts.
    d: observation dimension (width of every layer).
    depth: number of leaky-ReLU layers, >= 1.
    negative_slope: leaky-ReLU slope for negative inputs, in (0, 1].
    sigma: noise standard deviation, >= 0.
    condition: condition-number bound of each layer before column normalisation, >= 1.

  Returns:
    ``(x, A, layers)``: float32 ``(num_samples, d)``, ``(d, n_1)`` unit-norm columns and
    ``(depth, d, d)`` layer matrices (applied as ``h <- leaky_relu(h @ W.T)``).
  """
  key = check_key(key)
  z1 = _check_codes(z1, "z1")
  d = check_count(d, "d")
  depth = check_count(depth, "depth")
  if not is_real(negative_slope) or not 0.0 < negative_slope <= 1.0:
    raise ConfigError(
        f"negative_slope={negative_slope!r} is outside (0, 1]: a zero slope is not invertible; "
        "pass e.g. 0.2")
  if not is_real(condition) or not (math.isfinite(condition) and condition >= 1.0):
    raise ConfigError(f"condition={condition!r} is invalid: pass a finite float >= 1, e.g. 4.0")
  x, mixing, layers = _nonlinear(
      key, jnp.asarray(z1), jnp.float32(check_sigma(sigma)), jnp.float32(negative_slope),
      jnp.float32(condition), d=d, depth=depth)
  return (np.asarray(x, np.float32), np.asarray(mixing, np.float32),
          np.asarray(layers, np.float32))


def invert_nonlinear_view(x, layers, negative_slope: float = 0.2) -> np.ndarray:
  """Undoes the leaky-ReLU MLP of ``nonlinear_view``: returns ``A z1`` (float64) from ``x``.

  Args:
    x: ``(num_samples, d)`` noise-free observations.
    layers: the ``(depth, d, d)`` layer matrices ``nonlinear_view`` returned.
    negative_slope: the slope it used.
  """
  x = np.asarray(x, np.float64)
  layers = np.asarray(layers, np.float64)
  if layers.ndim != 3 or layers.shape[1:] != (x.shape[-1], x.shape[-1]):
    raise DataError(
        f"layers of shape {layers.shape} do not fit x of shape {x.shape}: pass the (depth, d, d) "
        "layers returned with x")
  h = x
  for w in layers[::-1]:
    h = np.where(h >= 0, h, h / negative_slope)
    h = np.linalg.solve(w, h.T).T
  return h
