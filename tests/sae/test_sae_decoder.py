"""Tests of the unit-norm decoder constraint (identi/sae/decoder.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from identi.errors import DataError
from identi.sae import init_sae, make_sae, normalize_decoder, remove_parallel_grad


def _params():
  k1, k2 = jax.random.split(jax.random.key(0))
  return {"W_dec": 3.0 * jax.random.normal(k1, (6, 4)), "b_dec": jax.random.normal(k2, (4,))}


def test_normalize_decoder_gives_unit_rows_and_keeps_directions():
  params = _params()
  out = normalize_decoder(params)
  norms = np.linalg.norm(out["W_dec"], axis=1)
  np.testing.assert_allclose(norms, 1.0, rtol=1e-6)
  np.testing.assert_allclose(out["W_dec"] * np.linalg.norm(params["W_dec"], axis=1)[:, None],
                             params["W_dec"], rtol=1e-5)
  np.testing.assert_array_equal(out["b_dec"], params["b_dec"])
  zero = normalize_decoder({"W_dec": jnp.zeros((2, 3))})["W_dec"]
  np.testing.assert_array_equal(zero, 0.0)


def test_remove_parallel_grad_is_orthogonal_and_keeps_the_perpendicular_part():
  params = _params()
  w = params["W_dec"]
  perp = jax.random.normal(jax.random.key(5), w.shape)
  perp = perp - jnp.sum(perp * w, 1, keepdims=True) / jnp.sum(w * w, 1, keepdims=True) * w
  coef = jnp.arange(6.0)[:, None] - 2.0
  grads = {"W_dec": perp + coef * w, "b_dec": jnp.ones(4)}
  out = remove_parallel_grad(params, grads)
  np.testing.assert_allclose(jnp.sum(out["W_dec"] * w, axis=1), 0.0, atol=1e-4)
  np.testing.assert_allclose(out["W_dec"], perp, atol=1e-5)
  np.testing.assert_array_equal(out["b_dec"], grads["b_dec"])


def test_projected_sgd_step_changes_row_norms_only_at_second_order():
  params = normalize_decoder(_params())
  grads = {"W_dec": jax.random.normal(jax.random.key(1), (6, 4)), "b_dec": jnp.zeros(4)}
  lr = 1e-3
  projected = remove_parallel_grad(params, grads)
  for g, bound in ((projected, 1e-5), (grads, None)):
    norms = np.linalg.norm(params["W_dec"] - lr * g["W_dec"], axis=1)
    if bound is None:
      assert np.max(np.abs(norms - 1.0)) > 1e-4  # unprojected: first-order change
    else:
      np.testing.assert_allclose(norms, 1.0, atol=bound)


def test_projected_adam_with_renormalisation_keeps_unit_rows_and_learns():
  model = make_sae("topk", 6, 12, k=2)
  x = 2.0 * jax.random.normal(jax.random.key(0), (64, 6))
  variables = init_sae(model, jax.random.key(1), x)
  opt = optax.adam(1e-2)

  @jax.jit
  def step(params, opt_state):
    loss, grads = jax.value_and_grad(
        lambda p: model.apply({**variables, "params": p}, x, method="loss")[0])(params)
    grads = remove_parallel_grad(params, grads)
    updates, opt_state = opt.update(grads, opt_state, params)
    return normalize_decoder(optax.apply_updates(params, updates)), opt_state, loss

  params, opt_state = variables["params"], opt.init(variables["params"])
  losses = []
  for _ in range(25):
    params, opt_state, loss = step(params, opt_state)
    losses.append(float(loss))
  np.testing.assert_allclose(np.linalg.norm(params["W_dec"], axis=1), 1.0, atol=1e-5)
  assert losses[-1] < 0.8 * losses[0], losses
  assert not np.allclose(params["W_dec"], variables["params"]["W_dec"], atol=1e-2)


def test_missing_w_dec_raises_data_error():
  with pytest.raises(DataError, match="variables\\['params'\\]"):
    normalize_decoder({"params": _params()})
  with pytest.raises(DataError, match="grads has no 'W_dec'"):
    remove_parallel_grad(_params(), {"b_dec": jnp.ones(4)})
