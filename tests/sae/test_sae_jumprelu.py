"""Tests of the JumpReLU SAE and its straight-through estimators (identi/sae/jumprelu.py)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from identi.errors import ConfigError
from identi.sae import JumpReLUSAE, heaviside_step, init_sae, jumprelu

X = jnp.array([[0.5, 1.02, 0.98, 2.0], [0.5, 1.02, 0.98, 2.0]])
THRESHOLD = jnp.array([0.52, 1.0, 1.0, 2.5])
WEIGHTS = jnp.array([[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]])
BANDWIDTH = 0.1  # kernel window |x - t| < 0.05: latents 0, 1 and 2 fall in it, latent 3 not


def test_jumprelu_forward_and_pseudo_gradients_match_hand_values():
  np.testing.assert_allclose(jumprelu(X, THRESHOLD, BANDWIDTH), [[0, 1.02, 0, 0]] * 2)
  g_x, g_t = jax.grad(lambda x, t: jnp.sum(WEIGHTS * jumprelu(x, t, BANDWIDTH)),
                      argnums=(0, 1))(X, THRESHOLD)
  np.testing.assert_allclose(g_x, [[0, 2, 0, 0], [0, 1, 0, 0]])  # H(x - t) * weight
  # -(t / bw) * K * weight, summed over the batch: t/bw = [5.2, 10, 10, 25].
  np.testing.assert_allclose(g_t, [-5.2 * 2, -10 * 3, -10 * 4, 0], rtol=1e-5)


def test_heaviside_step_forward_and_pseudo_gradients_match_hand_values():
  np.testing.assert_allclose(heaviside_step(X, THRESHOLD, BANDWIDTH), [[0, 1, 0, 0]] * 2)
  g_x, g_t = jax.grad(lambda x, t: jnp.sum(WEIGHTS * heaviside_step(x, t, BANDWIDTH)),
                      argnums=(0, 1))(X, THRESHOLD)
  np.testing.assert_array_equal(g_x, 0.0)
  np.testing.assert_allclose(g_t, [-10 * 2, -10 * 3, -10 * 4, 0], rtol=1e-5)  # -(1/bw) K w


def test_l0_penalty_and_its_log_threshold_gradient():
  model = JumpReLUSAE(d_in=4, d_sae=4, bandwidth=BANDWIDTH)
  params = {"W_enc": jnp.eye(4), "b_enc": jnp.zeros(4), "W_dec": jnp.eye(4), "b_dec": jnp.zeros(4),
            "log_threshold": jnp.log(THRESHOLD)}
  variables = {"params": params, "stats": {"input_scale": jnp.array(1.0)}}
  codes = model.apply(variables, X, method="encode")
  np.testing.assert_allclose(codes, [[0, 1.02, 0, 0]] * 2)

  def l0_penalty(params):
    return model.apply({**variables, "params": params}, X, method="loss")[1]["l0_penalty"]

  np.testing.assert_allclose(l0_penalty(params), 1.0)
  grad = jax.grad(l0_penalty)(params)["log_threshold"]
  # Batch mean of -(1/bw) K, times dt/dlog t = t.
  np.testing.assert_allclose(grad, [-10 * 0.52, -10, -10, 0], rtol=1e-5)
  total, terms, _ = model.apply(variables, X, method="loss", sparsity_coeff=0.25)
  np.testing.assert_allclose(total, terms["mse"] + 0.25 * 1.0, rtol=1e-6)


def test_init_threshold_sets_log_threshold():
  model = JumpReLUSAE(d_in=3, d_sae=5, init_threshold=0.2)
  variables = model.init(jax.random.key(0), jnp.ones((1, 3)))
  np.testing.assert_allclose(variables["params"]["log_threshold"], np.full(5, math.log(0.2)),
                             rtol=1e-6)


@pytest.mark.parametrize("field", ["bandwidth", "init_threshold"])
@pytest.mark.parametrize("value", [0.0, -1e-3, float("nan")])
def test_non_positive_hyperparameters_raise_config_error(field, value):
  with pytest.raises(ConfigError, match=f"'{field}'"):
    JumpReLUSAE(d_in=3, d_sae=5, **{field: value})


def _sparse_data():
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  dictionary = jax.random.normal(k1, (32, 16))
  dictionary /= jnp.linalg.norm(dictionary, axis=1, keepdims=True)
  active = jax.random.bernoulli(k2, 0.1, (512, 32))
  return 3.0 * (active * jax.random.uniform(k3, (512, 32), minval=0.5, maxval=1.5)) @ dictionary


def _train(model, variables, x, coeff, lr, steps):
  opt = optax.adam(lr)

  @jax.jit
  def step(params, opt_state):
    def total(params):
      return model.apply({**variables, "params": params}, x, method="loss",
                         sparsity_coeff=coeff)[0]

    grads = jax.grad(total)(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  params, opt_state = variables["params"], opt.init(variables["params"])
  for _ in range(steps):
    params, opt_state = step(params, opt_state)
  trained = {**variables, "params": params}
  return trained, model.apply(trained, x, method="loss", sparsity_coeff=coeff)[1]


def test_thresholds_move_away_from_init_under_adam():
  model = JumpReLUSAE(d_in=16, d_sae=32)  # default bandwidth and init_threshold 1e-3
  x = _sparse_data()
  variables = init_sae(model, jax.random.key(1), x)
  trained, _ = _train(model, variables, x, coeff=1e-2, lr=1e-2, steps=300)
  moved = trained["params"]["log_threshold"] - math.log(1e-3)
  assert float(jnp.mean(moved)) > math.log(2.0), moved
  assert float(jnp.min(moved)) > 0, moved


def test_larger_sparsity_coefficient_gives_lower_l0():
  model = JumpReLUSAE(d_in=16, d_sae=32, bandwidth=0.1, init_threshold=0.1)
  x = _sparse_data()
  variables = init_sae(model, jax.random.key(1), x)
  _, low = _train(model, variables, x, coeff=3e-3, lr=2e-2, steps=200)
  _, high = _train(model, variables, x, coeff=3e-2, lr=2e-2, steps=200)
  assert float(high["l0"]) < 0.7 * float(low["l0"]), (low, high)
  assert float(high["mse"]) > float(low["mse"])  # the sparsity/fidelity trade-off
