"""Tests of input-scale folding and numpy export (identi/sae/export.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from identi.errors import DataError
from identi.sae import export_weights, fold_input_scale, init_sae, make_sae

D_IN, D_SAE, K = 5, 12, 3
HPARAMS = {"relu": {}, "topk": {"k": K}, "batchtopk": {"k": K}, "jumprelu": {}}


def _trained_like(kind):
  """Variables with input_scale far from 1 and non-trivial thresholds."""
  model = make_sae(kind, D_IN, D_SAE, **HPARAMS[kind])
  x = 20.0 * jax.random.normal(jax.random.key(0), (32, D_IN)) + 5.0
  variables = init_sae(model, jax.random.key(1), x)
  params = {**variables["params"],
            "b_enc": 0.3 * jax.random.normal(jax.random.key(2), (D_SAE,))}
  if kind == "jumprelu":
    params["log_threshold"] = jnp.log(jnp.linspace(0.05, 1.0, D_SAE))
  variables = {**variables, "params": params}
  if kind == "batchtopk":
    _, new = model.apply(variables, x, method="loss", mutable=["stats"])
    variables = {**variables, "stats": new["stats"]}
    assert float(variables["stats"]["threshold"]) > 0.1
  assert abs(float(variables["stats"]["input_scale"]) - 1.0) > 0.5
  return model, variables, x


def _numpy_encode(kind, w, x):
  pre = (x - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
  acts = np.maximum(pre, 0.0)
  if kind == "topk":
    kth = np.sort(acts, axis=1)[:, -K][:, None]
    return np.where(acts >= kth, acts, 0.0)
  if kind in ("batchtopk", "jumprelu"):
    return np.where(pre > w["threshold"], acts, 0.0)
  return acts


@pytest.mark.parametrize("kind", list(HPARAMS))
def test_fold_input_scale_preserves_codes_and_reconstructions(kind):
  model, variables, x = _trained_like(kind)
  folded = fold_input_scale(variables)
  assert float(folded["stats"]["input_scale"]) == 1.0
  codes, x_hat = model.apply(variables, x)
  folded_codes, folded_x_hat = model.apply(folded, x)
  assert int(jnp.count_nonzero(codes)) > 0
  np.testing.assert_allclose(folded_codes, codes, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(folded_x_hat, x_hat, rtol=1e-5, atol=1e-4)
  s = variables["stats"]["input_scale"]
  np.testing.assert_allclose(folded["params"]["W_dec"], variables["params"]["W_dec"] / s)


@pytest.mark.parametrize("kind", list(HPARAMS))
def test_exported_numpy_weights_reproduce_codes_and_reconstructions(kind):
  model, variables, x = _trained_like(kind)
  weights = export_weights(variables)
  expected_keys = {"W_enc", "b_enc", "W_dec", "b_dec"}
  if kind in ("batchtopk", "jumprelu"):
    expected_keys.add("threshold")
  assert set(weights) == expected_keys
  assert all(isinstance(a, np.ndarray) and a.dtype == np.float32 for a in weights.values())
  x_np = np.asarray(x)
  codes = _numpy_encode(kind, weights, x_np)
  x_hat = codes @ weights["W_dec"] + weights["b_dec"]
  ref_codes, ref_x_hat = model.apply(variables, x)
  if kind in ("batchtopk", "jumprelu"):  # the threshold gate really removes activations
    relu_pre = np.maximum((x_np - weights["b_dec"]) @ weights["W_enc"] + weights["b_enc"], 0.0)
    assert 0 < np.count_nonzero(codes) < np.count_nonzero(relu_pre)
  np.testing.assert_allclose(codes, ref_codes, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(x_hat, ref_x_hat, rtol=1e-5, atol=1e-5)


def test_export_of_incomplete_variables_raises_data_error():
  _, variables, _ = _trained_like("relu")
  with pytest.raises(DataError, match=r"lack stats \['input_scale'\]"):
    export_weights({"params": variables["params"]})
  with pytest.raises(DataError, match=r"lack params \['W_dec'\]"):
    params = {n: a for n, a in variables["params"].items() if n != "W_dec"}
    fold_input_scale({**variables, "params": params})
