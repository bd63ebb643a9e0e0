"""Tests of geometric_median and init_sae (identi/sae/init.py)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from helpers import count_compiles
from identi.errors import ConfigError, DataError
from identi.sae import geometric_median, init_sae, make_sae

D_IN, D_SAE = 4, 10


def _cloud_with_outlier():
  rng = np.random.default_rng(0)
  centre = np.array([1.0, -2.0, 0.5, 3.0])
  offsets = rng.normal(size=(20, 4))
  points = np.concatenate([centre + offsets, centre - offsets, [centre + 1000.0]])
  return centre, points.astype(np.float32)


def _scipy_geometric_median(points):
  points = points.astype(np.float64)

  def cost(y):
    return np.sum(np.linalg.norm(points - y, axis=1))

  def grad(y):
    diff = y - points
    return np.sum(diff / np.linalg.norm(diff, axis=1, keepdims=True), axis=0)

  result = scipy.optimize.minimize(cost, np.median(points, axis=0), jac=grad, method="BFGS",
                                   options={"gtol": 1e-10})
  return result.x


def test_geometric_median_of_symmetric_points_is_the_centre():
  centre, points = _cloud_with_outlier()
  np.testing.assert_allclose(geometric_median(jnp.asarray(points[:-1])), centre, atol=1e-4)


def test_geometric_median_matches_scipy_and_resists_the_outlier():
  centre, points = _cloud_with_outlier()
  median = np.asarray(geometric_median(jnp.asarray(points), num_iters=200))
  np.testing.assert_allclose(median, _scipy_geometric_median(points), atol=1e-3)
  assert np.linalg.norm(median - centre) < 0.2
  assert np.linalg.norm(points.mean(axis=0) - centre) > 40.0  # the mean is dragged away
  fast = np.asarray(jax.jit(geometric_median)(jnp.asarray(points)))  # default 50 iterations
  np.testing.assert_allclose(fast, median, atol=1e-2)


def test_geometric_median_rejects_non_2d_input():
  with pytest.raises(DataError, match=r"\(3,\)"):
    geometric_median(jnp.ones(3))


def _sample(seed=0):
  return 7.0 * jax.random.normal(jax.random.key(seed), (64, D_IN)) + 3.0


@pytest.mark.parametrize("kind,hparams", [("relu", {}), ("topk", {"k": 2}),
                                          ("batchtopk", {"k": 2}),
                                          ("jumprelu", {"init_threshold": 0.05})])
def test_init_sae_sets_scale_tied_weights_and_median_bias(kind, hparams):
  model = make_sae(kind, D_IN, D_SAE, **hparams)
  x = _sample()
  variables = init_sae(model, jax.random.key(3), x)
  params, stats = variables["params"], variables["stats"]
  s = float(stats["input_scale"])
  mean_norm = np.mean(np.linalg.norm(np.asarray(x) * s, axis=1))
  np.testing.assert_allclose(mean_norm, math.sqrt(D_IN), rtol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(params["W_dec"], axis=1), 1.0, rtol=1e-5)
  np.testing.assert_array_equal(params["W_enc"], params["W_dec"].T)
  np.testing.assert_array_equal(params["b_enc"], 0.0)
  np.testing.assert_allclose(params["b_dec"], geometric_median(x * s), rtol=1e-5, atol=1e-6)
  assert float(jnp.linalg.norm(params["b_dec"])) > 0.5  # data is off-centre
  if kind == "jumprelu":
    np.testing.assert_allclose(params["log_threshold"], np.full(D_SAE, math.log(0.05)), rtol=1e-6)
  jax.tree.map(lambda a: np.testing.assert_(a.dtype == jnp.float32), variables)


def test_init_sae_is_deterministic_in_key_and_sample():
  model = make_sae("topk", D_IN, D_SAE, k=2)
  a = init_sae(model, jax.random.key(3), _sample())
  b = init_sae(model, jax.random.key(3), _sample())
  jax.tree.map(np.testing.assert_array_equal, a, b)
  c = init_sae(model, jax.random.key(4), _sample())
  assert not np.allclose(a["params"]["W_dec"], c["params"]["W_dec"])


def test_init_sae_rejects_bad_samples():
  model = make_sae("relu", D_IN, D_SAE)
  key = jax.random.key(0)
  with pytest.raises(DataError, match=r"shape \(2, 3, 4\) \(3-D\)"):
    init_sae(model, key, jnp.ones((2, 3, D_IN)))
  with pytest.raises(DataError, match=r"shape \(8, 5\).*d_in=4"):
    init_sae(model, key, jnp.ones((8, 5)))
  bad = np.ones((8, D_IN), np.float32)
  bad[0, 0] = bad[3, 1] = np.nan
  bad[5, 2] = np.inf
  with pytest.raises(DataError, match="2 NaN and 1 Inf"):
    init_sae(model, key, bad)
  with pytest.raises(DataError, match="all zeros"):
    init_sae(model, key, np.zeros((8, D_IN)))
  with pytest.raises(DataError, match="no rows"):
    init_sae(model, key, np.zeros((0, D_IN)))


def test_init_sae_rejects_non_sae_models():
  with pytest.raises(ConfigError, match="identi SAE"):
    init_sae(object(), jax.random.key(0), _sample())



def test_a_second_sae_of_the_same_model_initialises_without_compiling():
  # A sweep initialises many SAEs of one model: the first compiles, the others reuse it.
  x = np.abs(np.random.default_rng(0).normal(size=(64, 11))).astype(np.float32)
  first, n_first = count_compiles(
      lambda: init_sae(make_sae("topk", 11, 37, k=3), jax.random.key(0), x))
  second, n_second = count_compiles(
      lambda: init_sae(make_sae("topk", 11, 37, k=3), jax.random.key(1), x))
  assert n_first > 0 and n_second == 0
  assert not np.allclose(first["params"]["W_dec"], second["params"]["W_dec"])  # Its own key.
  np.testing.assert_array_equal(first["stats"]["input_scale"], second["stats"]["input_scale"])
