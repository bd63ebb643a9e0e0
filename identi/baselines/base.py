"""The common interface of the minimality-free baselines: an affine encoder and decoder.

Every baseline (PCA, dense linear autoencoder, FastICA) maps inputs to codes and back by affine
maps, ``codes = x @ W_enc + b_enc`` and ``x_hat = codes @ W_dec + b_dec``, so one frozen pytree
serves them all and they run through the same evaluation path as SAEs (FVU via
``identi.metrics.fvu``, MCC via ``identi.metrics.mcc``). None of them has a sparsity (minimality)
constraint: they are the floor that identifiability claims are measured against.
"""
import numbers

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from identi.errors import ConfigError, DataError

_HIGHEST = jax.lax.Precision.HIGHEST


@flax.struct.dataclass
class Baseline:
  """A fitted affine encoder/decoder pair (a frozen dataclass and a JAX pytree).

  Attributes:
    name: which estimator produced it ('pca', 'linear_ae', 'ica').
    W_enc: (d, width) encoder matrix.
    b_enc: (width,) encoder bias.
    W_dec: (width, d) decoder matrix.
    b_dec: (d,) decoder bias.
  """
  W_enc: jax.Array
  b_enc: jax.Array
  W_dec: jax.Array
  b_dec: jax.Array
  name: str = flax.struct.field(pytree_node=False, default="baseline")

  @property
  def width(self) -> int:
    """Number of code units."""
    return self.W_enc.shape[1]

  def encode(self, x: jax.Array) -> jax.Array:
    """Codes (n, width) of inputs x (n, d)."""
    x = jnp.asarray(x, jnp.float32)
    if x.ndim != 2 or x.shape[1] != self.W_enc.shape[0]:
      raise DataError(f"{self.name} baseline input has shape {x.shape}; it must be 2-D (n, "
                      f"{self.W_enc.shape[0]}): pass inputs of the width it was fitted on")
    return jnp.matmul(x, self.W_enc, precision=_HIGHEST) + self.b_enc

  def decode(self, codes: jax.Array) -> jax.Array:
    """Reconstructions (n, d) of codes (n, width)."""
    codes = jnp.asarray(codes, jnp.float32)
    if codes.ndim != 2 or codes.shape[1] != self.width:
      raise DataError(f"{self.name} baseline codes have shape {codes.shape}; they must be 2-D (n, "
                      f"{self.width}): pass the output of encode")
    return jnp.matmul(codes, self.W_dec, precision=_HIGHEST) + self.b_dec


def check_data(x, owner: str) -> np.ndarray:
  """Returns x as a float32 numpy (n, d) array with n >= 2, or raises DataError."""
  x = np.asarray(x)
  if x.ndim != 2:
    raise DataError(f"{owner} data has shape {x.shape} ({x.ndim}-D); it must be 2-D (examples, "
                    "features): reshape it to (n, -1)")
  if x.shape[0] < 2 or x.shape[1] < 1:
    raise DataError(f"{owner} data has shape {x.shape}; fitting needs at least 2 examples and 1 "
                    "feature: pass more data")
  if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
    raise DataError(f"{owner} data has dtype {x.dtype}; pass real values, e.g. "
                    "x.astype(np.float32)")
  if not np.all(np.isfinite(x)):
    raise DataError(f"{owner} data holds {int(np.sum(~np.isfinite(x)))} NaN/Inf values: drop or "
                    "fix those examples before fitting")
  return x.astype(np.float32)


def check_width(width, owner: str, max_width: int | None = None) -> int:
  """Returns width as int, or raises ConfigError unless 1 <= width (<= max_width)."""
  if isinstance(width, bool) or not isinstance(width, numbers.Integral) or width < 1:
    raise ConfigError(f"{owner} width={width!r} is invalid: pass the number of code units, an "
                      "integer >= 1")
  if max_width is not None and width > max_width:
    raise ConfigError(f"{owner} width={width} exceeds the data dimension {max_width}; this "
                      f"estimator finds at most d components: pass width <= {max_width}")
  return int(width)


def as_key(key_or_seed) -> jax.Array:
  """A JAX PRNG key from a key or an integer seed."""
  if isinstance(key_or_seed, numbers.Integral) and not isinstance(key_or_seed, bool):
    return jax.random.key(int(key_or_seed))
  if isinstance(key_or_seed, jax.Array):
    if jnp.issubdtype(key_or_seed.dtype, jax.dtypes.prng_key) and key_or_seed.shape == ():
      return key_or_seed
    if key_or_seed.dtype == jnp.uint32 and key_or_seed.shape == (2,):
      return jax.random.wrap_key_data(key_or_seed)
  raise ConfigError(f"got a {type(key_or_seed).__name__} as key_or_seed: pass jax.random.key(seed) "
                    "or an integer seed")
