"""Dense linear autoencoder baseline: the SAE's architecture without any sparsity.

encode = x W_e + b_e, decode = c W_d + b_d, trained on the mean squared error with optax Adam in one
jitted ``lax.scan`` over minibatches. Inputs are standardised (centred, divided by their RMS per
feature) while training and the scaling is folded back into the returned weights. With no sparsity
the loss only pins down the subspace c W_d spans, so the codes are an arbitrary linear mixing of
the concepts: the minimality-free floor for an SAE of the same width.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from identi.baselines.base import Baseline, as_key, check_data, check_width
from identi.infer.omp import check_positive_int

_HIGHEST = jax.lax.Precision.HIGHEST


def _init(key: jax.Array, d: int, width: int) -> dict[str, jax.Array]:
  k_enc, k_dec = jax.random.split(key)
  init = jax.nn.initializers.lecun_normal()
  return {"W_e": init(k_enc, (d, width)), "b_e": jnp.zeros((width,)),
          "W_d": init(k_dec, (width, d)), "b_d": jnp.zeros((d,))}


def _loss(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
  codes = jnp.matmul(x, params["W_e"], precision=_HIGHEST) + params["b_e"]
  x_hat = jnp.matmul(codes, params["W_d"], precision=_HIGHEST) + params["b_d"]
  return jnp.mean(jnp.square(x - x_hat))


@functools.partial(jax.jit, static_argnames=("width", "num_steps", "batch_size", "learning_rate"))
def _train(key: jax.Array, x: jax.Array, *, width: int, num_steps: int, batch_size: int,
           learning_rate: float) -> tuple[dict[str, jax.Array], jax.Array]:
  init_key, data_key = jax.random.split(key)
  params = _init(init_key, x.shape[1], width)
  tx = optax.adam(learning_rate)

  def step(carry, step_key):
    params, opt_state = carry
    batch = x[jax.random.randint(step_key, (batch_size,), 0, x.shape[0])]
    loss, grads = jax.value_and_grad(_loss)(params, batch)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  (params, _), losses = jax.lax.scan(step, (params, tx.init(params)),
                                     jax.random.split(data_key, num_steps))
  return params, losses


def fit_linear_ae(key_or_seed, x, width: int, *, num_steps: int = 2000, batch_size: int = 256,
                  learning_rate: float = 1e-3) -> Baseline:
  """Trains a dense linear autoencoder with ``width`` code units (any width, e.g. the SAE's).

  Args:
    key_or_seed: JAX PRNG key or int seed (initialisation and minibatch sampling).
    x: (n, d) data.
    width: number of code units.
    num_steps: Adam steps.
    batch_size: examples per step, drawn with replacement.
    learning_rate: Adam learning rate (on standardised inputs).

  Returns:
    A ``Baseline`` with the trained weights, acting on raw inputs.
  """
  key = as_key(key_or_seed)
  x = check_data(x, "fit_linear_ae")
  width = check_width(width, "fit_linear_ae")
  num_steps = check_positive_int("num_steps", num_steps, "fit_linear_ae")
  batch_size = check_positive_int("batch_size", batch_size, "fit_linear_ae")
  mean = np.mean(x, axis=0, dtype=np.float64)
  scale = float(np.sqrt(np.mean(np.square(x - mean))))
  scale = scale if scale > 0 else 1.0
  standardised = jnp.asarray(((x - mean) / scale).astype(np.float32))
  params, _ = _train(key, standardised, width=width, num_steps=num_steps, batch_size=batch_size,
                     learning_rate=float(learning_rate))
  mean = jnp.asarray(mean, jnp.float32)
  w_enc = params["W_e"] / scale
  return Baseline(W_enc=w_enc, b_enc=params["b_e"] - mean @ w_enc, W_dec=params["W_d"] * scale,
                  b_dec=params["b_d"] * scale + mean, name="linear_ae")
