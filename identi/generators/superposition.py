"""Sparse superposition: many sparse features linearly embedded in fewer dimensions.

This is the independent, one-level case (eps = 1) of the hierarchical selection model (HSM): every
feature is present independently of the others, with no parent/child selection structure. A later
module adds the full HSM; this one is the baseline toy model of superposition.

Generative model, for ``num_features`` features embedded in ``d`` dimensions:

- presence ``a ~ Bernoulli(p)`` i.i.d. per sample and feature, with
  ``p = active_per_sample / num_features``;
- magnitude ``m ~ LogNormal(0, 0.25)`` ('lognormal') or ``Uniform(0.5, 1.5)`` ('uniform');
- latents ``z = a * m``;
- dictionary ``A`` ``(d, num_features)`` with unit-norm columns drawn from a standard normal;
- activations ``x = z @ A.T + noise_std * N(0, 1)``.
"""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from identi.checks import check_count, check_key
from identi.errors import ConfigError

_MAGNITUDES = ("lognormal", "uniform")
_LOGNORMAL_SIGMA = 0.25


@functools.partial(jax.jit, static_argnames=("num_samples", "num_features", "d", "magnitude"))
def _sample(key: jax.Array, p: jax.Array, noise_std: jax.Array, *, num_samples: int,
            num_features: int, d: int, magnitude: str) -> dict[str, jax.Array]:
  """Draws (x, z, a, A) for static sizes; see the module docstring."""
  k_a, k_m, k_dict, k_noise = jax.random.split(key, 4)
  a = jax.random.bernoulli(k_a, p, (num_samples, num_features))
  if magnitude == "lognormal":
    m = jnp.exp(_LOGNORMAL_SIGMA * jax.random.normal(k_m, (num_samples, num_features)))
  else:
    m = jax.random.uniform(k_m, (num_samples, num_features), minval=0.5, maxval=1.5)
  z = jnp.where(a, m, 0.0)
  dictionary = jax.random.normal(k_dict, (d, num_features))
  dictionary = dictionary / jnp.linalg.norm(dictionary, axis=0, keepdims=True)
  x = jnp.matmul(z, dictionary.T, precision=jax.lax.Precision.HIGHEST)
  x = x + noise_std * jax.random.normal(k_noise, (num_samples, d))
  return {"x": x, "z": z, "a": a, "A": dictionary}


def sparse_superposition(key: jax.Array, num_samples: int, num_features: int = 256, d: int = 64,
                         active_per_sample: float = 4.0, magnitude: str = "lognormal",
                         noise_std: float = 0.0) -> dict[str, np.ndarray]:
  """Samples the sparse superposition model (independent one-level HSM, eps = 1).

  A pure function of ``key`` and the settings.

  Args:
    key: a JAX PRNG key (``jax.random.key(seed)``).
    num_samples: number of examples.
    num_features: number of ground-truth features.
    d: dimension they are embedded in (``d < num_features`` gives superposition).
    active_per_sample: expected number of present features per example, in (0, num_features).
    magnitude: 'lognormal' (LogNormal(0, 0.25)) or 'uniform' (Uniform(0.5, 1.5)).
    noise_std: standard deviation of isotropic Gaussian noise added to x, >= 0.

  Returns:
    Dict of numpy arrays: 'x' float32 ``(num_samples, d)``, 'z' float32 ``(num_samples,
    num_features)``, 'a' bool ``(num_samples, num_features)``, 'A' float32 ``(d, num_features)``.
  """
  num_samples = check_count(num_samples, "num_samples")
  num_features = check_count(num_features, "num_features")
  d = check_count(d, "d")
  try:
    active = float(active_per_sample)
  except (TypeError, ValueError) as e:
    raise ConfigError(
        f"active_per_sample={active_per_sample!r} is not a number: pass a float in "
        f"(0, {num_features})") from e
  if not 0.0 < active < num_features:
    raise ConfigError(
        f"active_per_sample={active_per_sample!r} is outside (0, num_features={num_features}): "
        "pass the expected number of present features per example, e.g. 4.0")
  if magnitude not in _MAGNITUDES:
    raise ConfigError(f"magnitude={magnitude!r} is unknown: use one of {', '.join(_MAGNITUDES)}")
  try:
    noise = float(noise_std)
  except (TypeError, ValueError) as e:
    raise ConfigError(f"noise_std={noise_std!r} is not a number: pass a float >= 0") from e
  if not (math.isfinite(noise) and noise >= 0.0):
    raise ConfigError(f"noise_std={noise_std!r} is invalid: pass a finite float >= 0")
  key = check_key(key)

  out = _sample(key, jnp.float32(active / num_features), jnp.float32(noise),
                num_samples=num_samples, num_features=num_features, d=d, magnitude=magnitude)
  out = jax.device_get(out)
  return {
      "x": np.asarray(out["x"], np.float32),
      "z": np.asarray(out["z"], np.float32),
      "a": np.asarray(out["a"], bool),
      "A": np.asarray(out["A"], np.float32),
  }
