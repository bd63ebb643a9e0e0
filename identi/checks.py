"""One home for the argument checks of the library.

Each check returns the value (converted to a plain Python type) or raises ConfigError with a
message that names the argument, the value and what to pass instead.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from identi.errors import ConfigError

def is_int(value) -> bool:
  """Whether `value` is a Python or numpy integer (bools are not)."""
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_real(value) -> bool:
  """Whether `value` is a Python or numpy real number (bools are not)."""
  return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def check_count(value, name: str, minimum: int = 1, maximum: int | None = None) -> int:
  """`value` as an int if it is an integer (not a bool) in [minimum, maximum]; ConfigError
  naming `name` otherwise."""
  if not is_int(value) or value < minimum or (maximum is not None and value > maximum):
    bound = f"in [{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
    raise ConfigError(f"{name}={value!r} is invalid: pass an integer {bound}")
  return int(value)


def check_sigma(sigma) -> float:
  """`sigma` as a float if it is a finite noise scale >= 0; ConfigError otherwise."""
  if not is_real(sigma) or not (math.isfinite(sigma) and sigma >= 0.0):
    raise ConfigError(f"sigma={sigma!r} is invalid: pass a finite noise scale >= 0")
  return float(sigma)


def check_key(key) -> jax.Array:
  """Accepts a single typed JAX key or a raw uint32[2] key; ConfigError otherwise."""
  typed = isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
  raw = isinstance(key, jax.Array) and key.dtype == jnp.uint32 and key.shape == (2,)
  if not ((typed and key.shape == ()) or raw):
    raise ConfigError(
        f"key of type {type(key).__name__} with shape {getattr(key, 'shape', None)} is not a "
        "single JAX PRNG key: pass jax.random.key(seed)")
  return key
