"""Tests for identi.generators.superposition."""
import chex
import jax
import numpy as np
import pytest

from identi.errors import ConfigError
from identi.generators import sparse_superposition


def test_same_key_same_data_and_shapes():
  a = sparse_superposition(jax.random.key(0), 50, num_features=12, d=5)
  b = sparse_superposition(jax.random.key(0), 50, num_features=12, d=5)
  c = sparse_superposition(jax.random.key(1), 50, num_features=12, d=5)
  chex.assert_trees_all_equal(a, b)
  assert not np.array_equal(a["x"], c["x"])
  chex.assert_shape([a["x"], a["z"], a["a"], a["A"]], [(50, 5), (50, 12), (50, 12), (5, 12)])
  assert a["x"].dtype == a["z"].dtype == a["A"].dtype == np.float32
  assert a["a"].dtype == np.bool_


def test_structure_of_the_sample():
  out = sparse_superposition(jax.random.key(2), 4000, num_features=64, d=16, active_per_sample=4.0)
  np.testing.assert_allclose(np.linalg.norm(out["A"], axis=0), 1.0, rtol=1e-5)
  np.testing.assert_array_equal(out["z"] != 0, out["a"])
  np.testing.assert_allclose(out["x"], out["z"] @ out["A"].T, rtol=1e-4, atol=1e-5)
  assert abs(out["a"].sum(axis=1).mean() - 4.0) < 0.15
  log_m = np.log(out["z"][out["a"]])
  assert abs(log_m.mean()) < 0.02 and abs(log_m.std() - 0.25) < 0.02


def test_uniform_magnitudes_and_noise():
  out = sparse_superposition(
      jax.random.key(3), 3000, num_features=32, d=8, active_per_sample=3.0, magnitude="uniform",
      noise_std=0.1)
  m = out["z"][out["a"]]
  assert 0.5 <= m.min() and m.max() <= 1.5 and abs(m.mean() - 1.0) < 0.02
  resid = out["x"] - out["z"] @ out["A"].T
  assert abs(resid.std() - 0.1) < 0.005


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_samples=0), "num_samples=0"),
        (dict(num_features=0), "num_features=0"),
        (dict(d=-1), "d=-1"),
        (dict(num_features=8, active_per_sample=8.0), r"active_per_sample=8.0 is outside \(0, "),
        (dict(active_per_sample=0.0), "active_per_sample"),
        (dict(noise_std=-0.1), "noise_std"),
        (dict(magnitude="gamma"), "lognormal, uniform"),
    ],
)
def test_impossible_settings_raise(kwargs, match):
  args = dict(num_samples=10, num_features=16, d=4)
  args.update(kwargs)
  with pytest.raises(ConfigError, match=match):
    sparse_superposition(jax.random.key(0), **args)


def test_rejects_integer_seed_as_key():
  with pytest.raises(ConfigError, match="jax.random.key"):
    sparse_superposition(0, 10)
