"""Data-dependent SAE initialisation: input scaling, tied encoder/decoder and a robust b_dec."""

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from identi.errors import ConfigError, DataError
from identi.sae.base import SAE, unit_row_normal
from identi.sae.jumprelu import JumpReLUSAE

Variables = dict[str, dict[str, Any]]


@functools.partial(jax.jit, static_argnames=("num_iters",))
def geometric_median(x: jax.Array, num_iters: int = 50, eps: float = 1e-6) -> jax.Array:
  """Geometric median of the rows of x (n, d) by `num_iters` Weiszfeld iterations from the mean.

  The geometric median minimises the sum of Euclidean distances, so unlike the mean it is not
  dragged by a few outlying activations. Distances are floored at `eps` so that an iterate landing
  on a data point stays finite.
  """
  if jnp.ndim(x) != 2:
    raise DataError(f"geometric_median input has shape {tuple(jnp.shape(x))}; expected 2-D "
                    "(points, features): reshape to (-1, features)")
  x = jnp.asarray(x, jnp.float32)

  def step(_, y):
    w = 1.0 / jnp.maximum(jnp.linalg.norm(x - y, axis=-1), eps)
    return (w @ x) / jnp.sum(w)

  return jax.lax.fori_loop(0, num_iters, step, jnp.mean(x, axis=0))


@functools.lru_cache(maxsize=16)
def _compiled_init(model: SAE):
  """model.init, jitted once per model (SAE modules hash by their fields), so that the SAEs of a
  sweep, which share one model, compile it once."""
  return jax.jit(model.init)


def _check_sample(x: np.ndarray, d_in: int) -> None:
  """Raises DataError unless x is a finite, non-empty, non-zero (n, d_in) sample."""
  if x.ndim != 2:
    raise DataError(f"init sample has shape {x.shape} ({x.ndim}-D); expected 2-D (examples, "
                    f"{d_in}): reshape to (-1, {d_in})")
  if x.shape[1] != d_in:
    raise DataError(f"init sample has shape {x.shape} but the SAE has d_in={d_in}: pass "
                    f"activations of width {d_in} or build the SAE with d_in={x.shape[1]}")
  if x.shape[0] == 0:
    raise DataError("init sample has no rows; pass at least one activation vector (ideally "
                    "thousands) to initialise the SAE")
  if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
    raise DataError(f"init sample has dtype {x.dtype}; pass real-valued activations (float32)")
  n_nan, n_inf = int(np.isnan(x).sum()), int(np.isinf(x).sum())
  if n_nan or n_inf:
    raise DataError(f"init sample holds {n_nan} NaN and {n_inf} Inf values out of {x.size}; "
                    "drop or fix the non-finite activations before initialising")


def init_sae(model: SAE, key: jax.Array, x_sample: jax.Array) -> Variables:
  """Initialises an SAE from a sample of raw activations; deterministic given key and sample.

  Sets input_scale = sqrt(d_in) / mean ||x|| (so scaled inputs have mean norm sqrt(d_in)), unit-norm
  random decoder rows, a tied encoder W_enc = W_dec.T, b_enc = 0, b_dec = geometric median of the
  scaled sample and, for JumpReLU, log_threshold = log(init_threshold).

  Returns:
    {'params': ..., 'stats': ...} ready for model.apply.
  """
  if not isinstance(model, SAE):
    raise ConfigError(f"init_sae got a {type(model).__name__}; pass an identi SAE module such as "
                      "make_sae('topk', d_in, d_sae, k=32)")
  x = np.asarray(x_sample)
  _check_sample(x, model.d_in)
  mean_norm = float(np.mean(np.linalg.norm(x.astype(np.float64), axis=1)))
  if mean_norm == 0.0:
    raise DataError(f"init sample of {x.shape[0]} rows is all zeros, so no input scale can be "
                    "set; pass real activations")
  scale = jnp.asarray(math.sqrt(model.d_in) / mean_norm, jnp.float32)
  init_key, dec_key = jax.random.split(key)
  x = jnp.asarray(x, jnp.float32)
  variables = _compiled_init(model)(init_key, x[:1])
  w_dec = unit_row_normal(dec_key, (model.d_sae, model.d_in))
  params = dict(variables["params"])
  params.update(
      W_enc=w_dec.T, b_enc=jnp.zeros((model.d_sae,), jnp.float32), W_dec=w_dec,
      b_dec=geometric_median(x * scale))
  if isinstance(model, JumpReLUSAE):
    params["log_threshold"] = jnp.full((model.d_sae,), math.log(model.init_threshold), jnp.float32)
  stats = dict(variables["stats"])
  stats["input_scale"] = scale
  return {**variables, "params": params, "stats": stats}
