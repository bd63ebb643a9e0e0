"""Tests of the ReLU SAE and its decoder-norm-weighted L1 (identi/sae/relu.py)."""

import jax
import jax.numpy as jnp
import numpy as np

from identi.sae import ReLUSAE

# Hand-picked weights: d_in=2, d_sae=3, input_scale=2.
PARAMS = {
    "W_enc": jnp.array([[1.0, -1.0, 0.5], [0.0, 2.0, 1.0]]),
    "b_enc": jnp.array([0.0, -1.0, 0.5]),
    "W_dec": jnp.array([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0]]),  # row norms 5, 1, 2
    "b_dec": jnp.array([1.0, 0.0]),
}
VARIABLES = {"params": PARAMS, "stats": {"input_scale": jnp.array(2.0)}}
X = jnp.array([[1.0, 1.0], [0.5, -1.0]])


def test_codes_and_l1_match_hand_computation():
  model = ReLUSAE(d_in=2, d_sae=3)
  # x_s = [[2, 2], [1, -2]]; x_s - b_dec = [[1, 2], [0, -2]]
  # pre = [[1, 3, 2.5], [0, -4, -2]] + b_enc = [[1, 2, 3], [0, -5, -1.5]]
  codes = model.apply(VARIABLES, X, method="encode")
  np.testing.assert_allclose(codes, [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
  total, terms, _ = model.apply(VARIABLES, X, method="loss", sparsity_coeff=0.5)
  # Per-sample sum_i c_i ||W_dec[i]||: 1*5 + 2*1 + 3*2 = 13 and 0; batch mean 6.5.
  np.testing.assert_allclose(terms["l1"], 6.5, rtol=1e-6)
  # x_hat_s = [[1*3 + 2*1 + 0 + 1, 1*4 + 0 + 3*2 + 0], [1, 0]] = [[6, 10], [1, 0]]
  # squared errors: (2-6)^2, (2-10)^2, (1-1)^2, (-2-0)^2 = 16, 64, 0, 4 -> mean 21.
  np.testing.assert_allclose(terms["mse"], 21.0, rtol=1e-6)
  np.testing.assert_allclose(terms["l0"], 1.5)
  np.testing.assert_allclose(total, 21.0 + 0.5 * 6.5, rtol=1e-6)


def test_l1_gradient_grows_decoder_norm_penalty_not_just_codes():
  model = ReLUSAE(d_in=2, d_sae=3)

  def l1(params):
    return model.apply({**VARIABLES, "params": params}, X, method="loss")[1]["l1"]

  grads = jax.grad(l1)(PARAMS)
  # d l1 / d W_dec[i] = mean_b(c_bi) * W_dec[i] / ||W_dec[i]||; mean codes = [0.5, 1, 1.5].
  expected = np.array([[0.5 * 0.6, 0.5 * 0.8], [1.0, 0.0], [0.0, 1.5]])
  np.testing.assert_allclose(grads["W_dec"], expected, rtol=1e-6)


def test_zero_coefficient_makes_total_the_mse():
  model = ReLUSAE(d_in=2, d_sae=3)
  total, terms, _ = model.apply(VARIABLES, X, method="loss")
  np.testing.assert_allclose(total, terms["mse"])
  assert float(terms["l1"]) > 0
