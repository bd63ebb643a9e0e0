"""Tests for identi.infer.fista (non-negative LASSO by FISTA)."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import planted_codes
from identi.errors import ConfigError, DataError
from identi.generators import sparse_superposition
from identi.infer.fista import fista, lipschitz_constant
from identi.metrics.mcc import mcc



def test_orthonormal_dictionary_gives_non_negative_soft_thresholding():
  # With D = I the problem separates: c_j = max(0, x_j - lam).
  x = np.array([[2.0, 0.05, -1.0, 0.5]], np.float32)
  out = fista(x, np.eye(4, dtype=np.float32), lam=0.1, num_iters=50)
  np.testing.assert_allclose(out, [[1.9, 0.0, 0.0, 0.4]], atol=1e-5)


def test_lipschitz_constant_bounds_the_top_eigenvalue():
  _, dictionary = planted_codes(n=1)
  top = np.linalg.eigvalsh(dictionary.astype(np.float64).T @ dictionary)[-1]
  assert top <= float(lipschitz_constant(dictionary)) <= 1.02 * top


def test_recovers_planted_codes_with_small_lam():
  codes, dictionary = planted_codes()
  out = np.asarray(fista(codes @ dictionary, dictionary, lam=1e-3, num_iters=300))
  chex.assert_shape(out, codes.shape)
  assert np.all(out >= 0)
  np.testing.assert_array_equal(out > 1e-3, codes > 0)
  np.testing.assert_allclose(out, codes, atol=1e-2)


def test_solution_satisfies_the_lasso_optimality_conditions():
  codes, dictionary = planted_codes(seed=1)
  x = codes @ dictionary + 0.1 * np.random.default_rng(2).normal(size=(64, 64)).astype(np.float32)
  lam = 0.05
  out = np.asarray(fista(x, dictionary, lam=lam, num_iters=1000), np.float64)
  grad = (out @ dictionary - x) @ dictionary.T
  # KKT of min 0.5||x - cD||^2 + lam sum c, c >= 0: grad = -lam where c > 0, grad >= -lam elsewhere.
  np.testing.assert_allclose(grad[out > 1e-4], -lam, atol=2e-3)
  assert np.all(grad >= -lam - 2e-3)


def test_warm_start_from_the_solution_is_a_fixed_point():
  codes, dictionary = planted_codes(n=16, seed=3)
  x = codes @ dictionary
  solution = fista(x, dictionary, lam=0.01, num_iters=500)
  np.testing.assert_allclose(fista(x, dictionary, lam=0.01, num_iters=5, init=solution),
                             solution, atol=1e-4)
  cold = fista(x, dictionary, lam=0.01, num_iters=5)
  warm = fista(x, dictionary, lam=0.01, num_iters=5, init=codes)
  assert np.abs(warm - solution).max() < 0.2 * np.abs(cold - solution).max()


def test_batched_equals_per_sample_jit_and_b_dec():
  codes, dictionary = planted_codes(n=8, seed=4)
  b_dec = np.linspace(-1.0, 1.0, 64).astype(np.float32)
  x = codes @ dictionary + b_dec
  run = functools.partial(fista, lam=0.01, num_iters=100, b_dec=b_dec)
  batched = np.asarray(run(x, dictionary))
  single = np.concatenate([np.asarray(run(x[i:i + 1], dictionary)) for i in range(8)])
  np.testing.assert_allclose(batched, single, atol=1e-5)
  jitted = jax.jit(run)(jnp.asarray(x), jnp.asarray(dictionary))
  np.testing.assert_allclose(jitted, batched, atol=1e-5)
  np.testing.assert_allclose(batched, codes, atol=0.05)


def test_demo_world_true_dictionary_reaches_the_minimal_code_ceiling():
  data = sparse_superposition(jax.random.key(0), 4096)
  out = np.asarray(fista(data["x"], data["A"].T, lam=0.01, num_iters=200))
  assert mcc(data["z"], out).mcc > 0.97


def test_bad_input_raises_errors_naming_the_fix():
  _, dictionary = planted_codes(n=1)
  x = np.zeros((2, 64), np.float32)
  with pytest.raises(DataError, match="atoms as rows"):
    fista(x, dictionary[0], lam=0.1, num_iters=2)
  with pytest.raises(DataError, match=r"init has shape \(2, 3\)"):
    fista(x, dictionary, lam=0.1, num_iters=2, init=np.zeros((2, 3)))
  with pytest.raises(ConfigError, match="lam=-1"):
    fista(x, dictionary, lam=-1.0, num_iters=2)
  with pytest.raises(ConfigError, match="num_iters=0"):
    fista(x, dictionary, lam=0.1, num_iters=0)
