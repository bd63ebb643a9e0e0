"""Tests of the BatchTopK SAE (identi/sae/batchtopk.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from identi.errors import ConfigError
from identi.sae import BatchTopKSAE, init_sae

D_IN, D_SAE, K, B = 5, 12, 3, 16
MOMENTUM = 0.1


def _setup():
  model = BatchTopKSAE(d_in=D_IN, d_sae=D_SAE, k=K, threshold_momentum=MOMENTUM)
  x = 3.0 * jax.random.normal(jax.random.key(0), (B, D_IN)) + 1.0
  return model, init_sae(model, jax.random.key(1), x), x


def _relu_pre(variables, x):
  p, s = variables["params"], variables["stats"]["input_scale"]
  return np.maximum(np.asarray((x * s - p["b_dec"]) @ p["W_enc"] + p["b_enc"]), 0.0)


def test_training_keeps_exactly_k_times_batch_largest_over_the_batch():
  model, variables, x = _setup()
  codes = np.asarray(model.apply(variables, x, method="encode", train=True))
  acts = _relu_pre(variables, x)
  assert (acts > 0).sum() > K * B  # so the selection is not trivial
  assert np.count_nonzero(codes) == K * B
  per_sample = (codes != 0).sum(axis=1)
  assert per_sample.min() < K < per_sample.max()  # variable per sample, mean k
  cutoff = np.sort(acts.ravel())[-K * B]
  np.testing.assert_allclose(codes, np.where(acts >= cutoff, acts, 0.0), rtol=1e-6)
  _, terms, _ = model.apply(variables, x, method="loss")
  np.testing.assert_allclose(terms["l0"], K)


def test_inference_thresholds_each_sample_independently():
  model, variables, x = _setup()
  stats = {**variables["stats"], "threshold": jnp.array(0.8)}
  variables = {**variables, "stats": stats}
  codes = np.asarray(model.apply(variables, x, method="encode"))
  acts = _relu_pre(variables, x)
  np.testing.assert_allclose(codes, np.where(acts > 0.8, acts, 0.0), rtol=1e-6)
  alone = np.asarray(model.apply(variables, x[3:4], method="encode"))
  np.testing.assert_allclose(alone[0], codes[3], rtol=1e-6)


def test_threshold_is_a_debiased_running_minimum_of_kept_activations():
  model, variables, x = _setup()
  x2 = x[::-1] * 0.5 + 0.3
  assert float(variables["stats"]["threshold"]) == 0.0

  def min_kept(variables, x):
    return np.sort(_relu_pre(variables, x).ravel())[-K * B]

  _, new = model.apply(variables, x, method="loss", mutable=["stats"])
  a = min_kept(variables, x)
  assert a > 0
  np.testing.assert_allclose(new["stats"]["threshold"], a, rtol=1e-5)  # debiased first step
  variables = {**variables, "stats": new["stats"]}
  _, new = model.apply(variables, x2, method="encode", train=True, mutable=["stats"])
  b = min_kept(variables, x2)
  ema = (1 - MOMENTUM) * MOMENTUM * a + MOMENTUM * b
  np.testing.assert_allclose(new["stats"]["threshold"], ema / (1 - (1 - MOMENTUM) ** 2),
                             rtol=1e-5)
  np.testing.assert_allclose(new["stats"]["threshold_steps"], 2.0)


def test_threshold_untouched_at_inference_or_without_mutable_stats():
  model, variables, x = _setup()
  _, new = model.apply(variables, x, method="loss", train=False, mutable=["stats"])
  jax.tree.map(np.testing.assert_array_equal, new["stats"], variables["stats"])
  _, new = model.apply(variables, x, train=False, mutable=["stats"])
  jax.tree.map(np.testing.assert_array_equal, new["stats"], variables["stats"])
  # Training without mutable stats works and returns no state.
  total, _, _ = jax.jit(lambda v, x: model.apply(v, x, method="loss"))(variables, x)
  assert np.isfinite(float(total))
  # Initialising in training mode does not count as a training step.
  fresh = model.init(jax.random.key(0), x, train=True)
  assert float(fresh["stats"]["threshold_steps"]) == 0.0


def test_threshold_update_works_under_jit_and_grad():
  model, variables, x = _setup()

  def total(params, stats):
    (out, new) = model.apply({"params": params, "stats": stats}, x, method="loss",
                             mutable=["stats"])
    return out[0], new["stats"]

  (_, stats), grads = jax.jit(jax.value_and_grad(total, has_aux=True))(
      variables["params"], variables["stats"])
  assert float(stats["threshold"]) > 0
  assert float(jnp.abs(grads["W_enc"]).max()) > 0


def test_auxk_is_shared_with_topk():
  model, variables, x = _setup()
  _, terms, _ = model.apply(variables, x, method="loss")
  assert float(terms["auxk"]) == 0.0
  total, terms, _ = model.apply(variables, x, method="loss", dead_mask=jnp.arange(D_SAE) < 6)
  assert float(terms["auxk"]) > 0
  np.testing.assert_allclose(total, terms["mse"] + terms["auxk"] / 32, rtol=1e-6)


@pytest.mark.parametrize("momentum", [0.0, 1.5, -0.1])
def test_bad_momentum_raises_config_error(momentum):
  with pytest.raises(ConfigError, match="'threshold_momentum'"):
    BatchTopKSAE(d_in=D_IN, d_sae=D_SAE, k=K, threshold_momentum=momentum)
