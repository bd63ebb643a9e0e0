"""Tests for identi.metrics.regression (held-out linear and kernel-ridge R^2)."""
import chex
import numpy as np
import pytest

from identi.errors import ConfigError, DataError
from identi.metrics.regression import R2Result, kernel_ridge_r2, linear_r2


def test_linear_r2_hand_computed():
  # Fit half: z = u exactly, so z_hat = u. Score half: u = 0..3, z = (1, 1, 3, 3), mean 2:
  # SST = 4, SSE = 1 + 0 + 1 + 0 = 2, R^2 = 0.5.
  u = np.array([0, 1, 2, 3, 0, 1, 2, 3], float)[:, None]
  z = np.array([0, 1, 2, 3, 1, 1, 3, 3], float)[:, None]
  res = linear_r2(z, u)
  assert isinstance(res, R2Result)
  np.testing.assert_allclose(res.per_concept, [0.5], atol=1e-5)
  # A constant unit predicts the fit-half mean 1 for z = (1, 3, 1, 3): SSE 8, SST 4, R^2 = -1.
  z2 = np.array([0, 2, 0, 2, 1, 3, 1, 3], float)[:, None]
  np.testing.assert_allclose(linear_r2(z2, np.ones((8, 1))).mean, -1.0, atol=1e-9)


def test_linear_r2_sees_through_a_linear_mixing_but_not_a_nonlinearity():
  rng = np.random.default_rng(0)
  z = rng.normal(size=(2000, 3))
  codes = np.concatenate([z @ rng.normal(size=(3, 3)) + 4.0, rng.normal(size=(2000, 2))], 1)
  res = linear_r2(z, codes)
  chex.assert_shape(res.per_concept, (3,))
  np.testing.assert_allclose(res.per_concept, 1.0, atol=1e-6)
  # z^2 is uncorrelated with z: no linear predictor does better than the mean.
  assert abs(linear_r2(z ** 2, z).mean) < 0.02


def test_kernel_ridge_r2_hand_computed_with_an_identity_kernel():
  # 4 distinct, far-apart points repeated in both halves; a tiny lengthscale makes K = I, so the
  # fit shrinks the centred targets by 1 / (1 + alpha * m) = 1/2 with alpha = 0.25, m = 4:
  # SSE = SST / 4 and R^2 = 0.75.
  u = np.array([0.0, 1.0, 2.0, 3.0] * 2)[:, None]
  z = np.array([1.0, -2.0, 0.5, 4.0] * 2)[:, None]
  res = kernel_ridge_r2(z, u, lengthscale=1e-3, alpha=0.25)
  np.testing.assert_allclose(res.per_concept, [0.75], atol=1e-5)


def test_kernel_ridge_r2_predicts_nonlinear_functions_of_a_block():
  rng = np.random.default_rng(1)
  u = rng.normal(size=(2000, 2))
  z = np.stack([u[:, 0] ** 2, np.tanh(u[:, 0] + u[:, 1])], axis=1)
  codes = np.concatenate([u @ np.array([[1.0, 1.0], [-1.0, 1.0]]), rng.normal(size=(2000, 1))], 1)
  res = kernel_ridge_r2(z, codes, max_fit=1000)
  assert np.all(res.per_concept > 0.9)
  assert linear_r2(z, codes).per_concept[0] < 0.05
  unrelated = kernel_ridge_r2(z, rng.normal(size=(2000, 3)), max_fit=1000)
  assert np.all(unrelated.per_concept < 0.05)


def test_constant_concept_scores_zero_and_errors_name_the_fix():
  rng = np.random.default_rng(2)
  z = np.concatenate([rng.normal(size=(40, 1)), np.ones((40, 1))], 1)
  assert linear_r2(z, z[:, :1]).per_concept[1] == 0.0
  with pytest.raises(DataError, match="40 samples but codes has 39"):
    linear_r2(z, z[:39])
  with pytest.raises(DataError, match="at least 4"):
    linear_r2(z[:6], z[:6])
  with pytest.raises(ConfigError, match="fit_fraction=1.5"):
    linear_r2(z, z, fit_fraction=1.5)
  with pytest.raises(ConfigError, match="ridge=-1"):
    linear_r2(z, z, ridge=-1.0)
  with pytest.raises(ConfigError, match="alpha=0"):
    kernel_ridge_r2(z, z, alpha=0.0)
  with pytest.raises(ConfigError, match="max_fit=1"):
    kernel_ridge_r2(z, z, max_fit=1)
  with pytest.raises(ConfigError, match="lengthscale=-2"):
    kernel_ridge_r2(z, z, lengthscale=-2.0)
