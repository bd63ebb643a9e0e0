"""Tests for identi.generators.views."""
import chex
import jax
import numpy as np
import pytest

from identi.errors import ConfigError, DataError
from identi.generators import (invert_nonlinear_view, level_view, nonlinear_view,
                               superposition_view)


def _codes(key: int, n: int, num: int = 400) -> np.ndarray:
  rng = np.random.default_rng(key)
  return (rng.random((num, n)) < 0.2) * rng.lognormal(0.0, 0.25, (num, n)).astype(np.float32)


def test_superposition_view():
  z = _codes(0, 24)
  x, mixing = superposition_view(jax.random.key(0), z, d=8)
  chex.assert_shape([x, mixing], [(400, 8), (8, 24)])
  np.testing.assert_allclose(np.linalg.norm(mixing, axis=0), 1.0, rtol=1e-5)
  np.testing.assert_allclose(x, z @ mixing.T, rtol=1e-4, atol=1e-6)
  x_noisy, same = superposition_view(jax.random.key(0), z[:100], d=8, sigma=0.2)
  np.testing.assert_array_equal(same, mixing)
  resid = x_noisy - z[:100] @ mixing.T
  assert abs(resid.std() - 0.2) < 0.02
  _, other = superposition_view(jax.random.key(1), z, d=8)
  assert not np.allclose(other, mixing)


def test_level_view_pure_and_cumulative():
  levels = [_codes(1, 12), _codes(2, 5), _codes(3, 2)]
  x, mixing = level_view(jax.random.key(2), levels, level=2, d=4)
  chex.assert_shape([x, mixing], [(400, 4), (4, 5)])
  np.testing.assert_allclose(x, levels[1] @ mixing.T, rtol=1e-4, atol=1e-6)
  x, mixing = level_view(jax.random.key(2), levels, level=2, d=4, cumulative=True)
  chex.assert_shape(mixing, (4, 7))
  np.testing.assert_allclose(np.linalg.norm(mixing, axis=0), 1.0, rtol=1e-5)
  np.testing.assert_allclose(x, np.concatenate(levels[1:], axis=1) @ mixing.T, rtol=1e-4,
                             atol=1e-6)
  _, top = level_view(jax.random.key(2), levels, level=3, d=4, cumulative=True)
  chex.assert_shape(top, (4, 2))


def test_nonlinear_view_is_invertible_and_nonlinear():
  z = _codes(4, 30)
  x, mixing, layers = nonlinear_view(jax.random.key(3), z, d=10, depth=3, negative_slope=0.3)
  chex.assert_shape([x, mixing, layers], [(400, 10), (10, 30), (3, 10, 10)])
  np.testing.assert_allclose(np.linalg.norm(layers, axis=1), 1.0, rtol=1e-5)
  assert np.linalg.cond(layers).max() <= 16.0
  h = z.astype(np.float64) @ mixing.T
  np.testing.assert_allclose(invert_nonlinear_view(x, layers, 0.3), h, atol=1e-4)
  linear, reference = h, h
  for w in layers:
    linear = linear @ w.T
    reference = reference @ w.T
    reference = np.where(reference >= 0, reference, 0.3 * reference)
  np.testing.assert_allclose(x, reference, rtol=1e-4, atol=1e-5)
  assert np.abs(x - linear).max() > 0.1, "the leaky ReLUs must bend the map"


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: superposition_view(jax.random.key(0), np.ones(5), 2), DataError, "2-D"),
        (lambda: superposition_view(jax.random.key(0), np.ones((3, 5)), 0), ConfigError, "d=0"),
        (lambda: superposition_view(jax.random.key(0), np.ones((3, 5)), 2, sigma=-1.0),
         ConfigError, "sigma=-1.0"),
        (lambda: superposition_view(jax.random.key(0), np.full((3, 5), np.nan), 2), DataError,
         "NaN"),
        (lambda: level_view(jax.random.key(0), [np.ones((3, 5))], 2, 2), ConfigError,
         r"level in 1..1"),
        (lambda: level_view(jax.random.key(0), [np.ones((3, 5)), np.ones((4, 2))], 1, 2),
         DataError, "different sample counts"),
        (lambda: nonlinear_view(jax.random.key(0), np.ones((3, 5)), 4, negative_slope=0.0),
         ConfigError, "not invertible"),
        (lambda: nonlinear_view(jax.random.key(0), np.ones((3, 5)), 4, depth=0), ConfigError,
         "depth=0"),
        (lambda: invert_nonlinear_view(np.ones((3, 4)), np.ones((2, 5, 5))), DataError,
         "do not fit"),
    ],
)
def test_bad_input_raises(call, error, match):
  with pytest.raises(error, match=match):
    call()
