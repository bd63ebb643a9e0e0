"""Tests for identi.baselines.pca and the shared Baseline interface."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from identi.baselines import BASELINES, Baseline, fit_ica, fit_linear_ae, fit_pca
from identi.errors import ConfigError, DataError
from identi.generators import sparse_superposition
from identi.metrics import fvu
from identi.metrics.mcc import mcc


def _anisotropic(n=2000, d=8, seed=0):
  rng = np.random.default_rng(seed)
  q, _ = np.linalg.qr(rng.normal(size=(d, d)))
  stds = np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.3, 0.2, 0.1])[:d]
  return (rng.normal(size=(n, d)) * stds @ q.T + 10.0).astype(np.float32)


def test_recovers_the_top_principal_subspace_of_numpy_svd():
  x = _anisotropic()
  model = fit_pca(0, x, 3)
  assert isinstance(model, Baseline) and model.name == "pca" and model.width == 3
  _, s, vt = np.linalg.svd(x.astype(np.float64) - x.mean(0), full_matrices=False)
  # Same subspace: the projectors agree; same axes up to sign.
  ours = np.asarray(model.W_dec, np.float64)
  np.testing.assert_allclose(ours.T @ ours, vt[:3].T @ vt[:3], atol=1e-4)
  np.testing.assert_allclose(np.abs(np.sum(ours * vt[:3], axis=1)), 1.0, atol=1e-5)
  # Scores are uncorrelated, with variances the top eigenvalues s^2 / n.
  codes = np.asarray(model.encode(x), np.float64)
  np.testing.assert_allclose(codes.mean(0), 0.0, atol=1e-3)
  np.testing.assert_allclose(np.cov(codes.T, bias=True), np.diag(s[:3] ** 2 / len(x)), rtol=1e-3,
                             atol=1e-3)
  # The FVU of a width-3 PCA is the share of variance in the other components.
  np.testing.assert_allclose(float(fvu(x, model.decode(model.encode(x)))),
                             np.sum(s[3:] ** 2) / np.sum(s ** 2), rtol=1e-3)


def test_full_width_pca_reconstructs_exactly_and_is_a_jittable_pytree():
  x = _anisotropic(n=500)
  model = fit_pca(jax.random.key(0), x, 8)
  np.testing.assert_allclose(model.decode(model.encode(x)), x, atol=1e-3)
  codes = jax.jit(lambda m, a: m.encode(a))(model, jnp.asarray(x))
  np.testing.assert_allclose(codes, model.encode(x), atol=1e-5)
  chex.assert_shape(codes, (500, 8))


def test_registry_and_errors_naming_the_fix():
  assert BASELINES == {"pca": fit_pca, "linear_ae": fit_linear_ae, "ica": fit_ica}
  x = _anisotropic(n=50)
  with pytest.raises(ConfigError, match="width=9 exceeds the data dimension 8"):
    fit_pca(0, x, 9)
  with pytest.raises(ConfigError, match="width=0"):
    fit_pca(0, x, 0)
  with pytest.raises(DataError, match="must be 2-D"):
    fit_pca(0, x[0], 2)
  bad = x.copy()
  bad[3, 1] = np.nan
  with pytest.raises(DataError, match="1 NaN/Inf"):
    fit_pca(0, bad, 2)
  with pytest.raises(ConfigError, match="key_or_seed"):
    fit_pca("seed", x, 2)
  with pytest.raises(DataError, match=r"shape \(50, 7\)"):
    fit_pca(0, x, 2).encode(x[:, :7])


def test_demo_world_pca_stays_below_the_minimality_free_floor():
  data = sparse_superposition(jax.random.key(0), 8192)
  model = fit_pca(0, data["x"][:4096], 64)
  assert mcc(data["z"][4096:], np.asarray(model.encode(data["x"][4096:]))).mcc <= 0.75
