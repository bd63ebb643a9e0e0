"""Tests for identi.metrics.quality."""
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from identi.errors import DataError
from identi.metrics import quality

# Three examples, two features; hand-computed values below.
X = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 2.0]], np.float32)
X_HAT = np.array([[1.0, 1.0], [0.0, 2.0], [2.0, 2.0]], np.float32)
CODES = np.array([[0.0, 1.5, 0.0], [0.0, 0.0, 0.0], [2.0, -1.0, 0.0]], np.float32)
# Squared errors per row: 1, 0, 1 -> 2 in total over 6 elements.
# Feature means 4/3, 4/3; sum of squared deviations 42/9 + 24/9 = 22/3. FVU = 2 / (22/3) = 3/11.
FVU = 3.0 / 11.0
MSE = 1.0 / 3.0
L0 = 1.0  # (1 + 0 + 2) / 3
SHRINK = (math.sqrt(2.0) + 1.0 + math.sqrt(8.0 / 13.0)) / 3.0
COSINE = (1.0 / math.sqrt(2.0) + 1.0 + 10.0 / math.sqrt(104.0)) / 3.0


def test_one_shot_reference_values():
  np.testing.assert_allclose(quality.fvu(X, X_HAT), FVU, rtol=1e-6)
  np.testing.assert_allclose(quality.mse(X, X_HAT), MSE, rtol=1e-6)
  np.testing.assert_allclose(quality.l0(CODES), L0, rtol=1e-6)
  np.testing.assert_allclose(quality.shrinkage(X, X_HAT), SHRINK, rtol=1e-6)
  np.testing.assert_allclose(quality.cosine_similarity(X, X_HAT), COSINE, rtol=1e-6)


def test_zero_norm_examples_are_skipped():
  x = np.concatenate([X, np.zeros((1, 2), np.float32)])
  x_hat = np.concatenate([X_HAT, np.array([[5.0, 5.0]], np.float32)])
  np.testing.assert_allclose(quality.shrinkage(x, x_hat), SHRINK, rtol=1e-6)
  np.testing.assert_allclose(quality.cosine_similarity(x, x_hat), COSINE, rtol=1e-6)


def test_zero_reconstruction_has_cosine_zero_and_shrinkage_zero():
  x_hat = X_HAT.copy()
  x_hat[1] = 0.0
  expected_cos = (1.0 / math.sqrt(2.0) + 0.0 + 10.0 / math.sqrt(104.0)) / 3.0
  np.testing.assert_allclose(quality.cosine_similarity(X, x_hat), expected_cos, rtol=1e-6)
  np.testing.assert_allclose(
      quality.shrinkage(X, x_hat), (math.sqrt(2.0) + math.sqrt(8.0 / 13.0)) / 3.0, rtol=1e-6)


def test_perfect_and_mean_reconstruction():
  np.testing.assert_allclose(quality.fvu(X, X), 0.0, atol=1e-7)
  mean = np.broadcast_to(X.mean(axis=0), X.shape)
  np.testing.assert_allclose(quality.fvu(X, mean), 1.0, rtol=1e-6)
  assert math.isnan(float(quality.fvu(np.ones((4, 2)), np.zeros((4, 2)))))


def test_fvu_with_large_offset():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(200, 8)).astype(np.float32)
  x_hat = x + 0.3 * rng.normal(size=x.shape).astype(np.float32)
  ref = np.sum((x - x_hat).astype(np.float64)**2) / np.sum((x - x.mean(0)).astype(np.float64)**2)
  np.testing.assert_allclose(quality.fvu(x + 1000.0, x_hat + 1000.0), ref, rtol=2e-3)


def test_shape_mismatch_raises():
  with pytest.raises(DataError, match="x_hat has shape"):
    quality.fvu(X, X_HAT[:2])


def test_tokens_since_fired_resets_and_advances():
  tsf = jnp.array([0, 5, 7], jnp.int32)
  new = quality.update_tokens_since_fired(tsf, CODES)
  chex.assert_trees_all_equal(new, jnp.array([0, 0, 10], jnp.int32))
  new = quality.update_tokens_since_fired(new, np.zeros((4, 3), np.float32))
  chex.assert_trees_all_equal(new, jnp.array([4, 4, 14], jnp.int32))
  chex.assert_type(new, jnp.int32)


def test_tokens_since_fired_saturates():
  big = jnp.iinfo(jnp.int32).max
  tsf = jnp.array([big - 1, big, 0], jnp.int32)
  new = jax.jit(quality.update_tokens_since_fired)(tsf, np.zeros((3, 3), np.float32))
  chex.assert_trees_all_equal(new, jnp.array([big, big, 3], jnp.int32))


def test_dead_mask_and_fraction():
  tsf = jnp.array([0, 9, 10, 11], jnp.int32)
  chex.assert_trees_all_equal(quality.dead_mask(tsf, 10), jnp.array([False, False, True, True]))
  np.testing.assert_allclose(quality.dead_fraction(tsf, 10), 0.5)
  np.testing.assert_allclose(jax.jit(quality.dead_fraction, static_argnums=1)(tsf, 12), 0.0)


def test_streaming_reference_values():
  state = quality.quality_init(2, 3)
  state = quality.quality_update(state, X[:1], X_HAT[:1], CODES[:1])
  state = quality.quality_update(state, X[1:], X_HAT[1:], CODES[1:])
  res = quality.quality_result(state)
  np.testing.assert_allclose(res["fvu"], FVU, rtol=1e-6)
  np.testing.assert_allclose(res["mse"], MSE, rtol=1e-6)
  np.testing.assert_allclose(res["l0"], L0, rtol=1e-6)
  np.testing.assert_allclose(res["shrinkage"], SHRINK, rtol=1e-6)
  np.testing.assert_allclose(res["cosine"], COSINE, rtol=1e-6)
  np.testing.assert_allclose(res["dead_fraction"], 1.0 / 3.0, rtol=1e-6)
  assert res["num_tokens"] == 3


@pytest.mark.parametrize("offset", [0.0, 1000.0])
def test_streaming_uneven_batches_match_one_shot(offset):
  rng = np.random.default_rng(1)
  n, d_in, d_sae = 37, 5, 6
  x = rng.normal(size=(n, d_in)).astype(np.float32) + np.float32(offset)
  x[3] = 0.0
  x_hat = (x + 0.5 * rng.normal(size=x.shape)).astype(np.float32)
  codes = rng.normal(size=(n, d_sae)).astype(np.float32) * (rng.random((n, d_sae)) < 0.3)
  codes[:, 4] = 0.0
  state = quality.quality_init(d_in, d_sae)
  for lo, hi in [(0, 10), (10, 11), (11, 30), (30, 37)]:
    state = quality.quality_update(state, x[lo:hi], x_hat[lo:hi], codes[lo:hi])
  res = quality.quality_result(state)

  x64, h64 = x.astype(np.float64), x_hat.astype(np.float64)
  ref_fvu = np.sum((x64 - h64)**2) / np.sum((x64 - x64.mean(0))**2)
  np.testing.assert_allclose(res["fvu"], ref_fvu, rtol=1e-4)
  np.testing.assert_allclose(res["fvu"], quality.fvu(x, x_hat), rtol=1e-3)
  np.testing.assert_allclose(res["mse"], quality.mse(x, x_hat), rtol=1e-4)
  np.testing.assert_allclose(res["l0"], quality.l0(codes), rtol=1e-5)
  np.testing.assert_allclose(res["shrinkage"], quality.shrinkage(x, x_hat), rtol=1e-5)
  np.testing.assert_allclose(res["cosine"], quality.cosine_similarity(x, x_hat), rtol=1e-5)
  expected_dead = np.mean(~np.any(codes != 0, axis=0))
  assert expected_dead > 0
  np.testing.assert_allclose(res["dead_fraction"], expected_dead)
  assert res["num_tokens"] == n


def test_streaming_state_is_a_pytree_usable_in_scan():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(4, 8, 3)).astype(np.float32)
  codes = np.abs(rng.normal(size=(4, 8, 2))).astype(np.float32)

  def body(state, batch):
    xb, cb = batch
    return quality.quality_update(state, xb, 0.5 * xb, cb), None

  state, _ = jax.lax.scan(body, quality.quality_init(3, 2), (x, codes))
  res = quality.quality_result(state)
  assert res["num_tokens"] == 32
  np.testing.assert_allclose(res["shrinkage"], 0.5, rtol=1e-6)
  np.testing.assert_allclose(res["cosine"], 1.0, rtol=1e-6)
  np.testing.assert_allclose(res["l0"], 2.0)


def test_empty_state_result():
  res = quality.quality_result(quality.quality_init(3, 4))
  assert res["num_tokens"] == 0
  assert math.isnan(res["fvu"]) and math.isnan(res["cosine"])
  assert res["dead_fraction"] == 1.0


def test_update_rejects_wrong_sizes():
  with pytest.raises(DataError, match="quality_init"):
    quality.quality_update(quality.quality_init(3, 3), X, X_HAT, CODES)
