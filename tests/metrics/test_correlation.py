"""Tests for identi.metrics.correlation (in-memory and streamed correlation matrices)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import nan_batch, offset_pair, stream_batches
from identi.errors import DataError
from identi.metrics.correlation import (correlation_finalize, correlation_init, correlation_matrix,
                                        correlation_update, streamed_correlation)
from identi.train import sharding



def test_correlation_matrix_reference_values():
  a = np.array([[1.0], [2.0], [3.0], [4.0]])
  b = np.array([[1.0, -2.0, 7.0], [3.0, -4.0, 7.0], [2.0, -6.0, 7.0], [4.0, -8.0, 7.0]])
  # Deviations (-1.5, -.5, .5, 1.5) and (-1.5, .5, -.5, 1.5): covariance sum 4, variance sums 5.
  # Column 1 is -2 * a (correlation -1), column 2 is constant (correlation 0, not NaN).
  np.testing.assert_allclose(
      correlation_matrix(a, b), [[0.8, -1.0, 0.0]], rtol=1e-6, atol=1e-7)
  # Spearman: ranks of b[:, 0] are (1, 3, 2, 4), same Pearson value as above.
  np.testing.assert_allclose(
      correlation_matrix(a, b**3, "spearman"), [[0.8, -1.0, 0.0]], rtol=1e-6, atol=1e-7)


def test_correlation_matrix_near_constant_float_column_is_zero():
  a = np.full((6, 1), 0.1)
  b = np.arange(6.0)[:, None]
  np.testing.assert_array_equal(correlation_matrix(a, b), [[0.0]])


@pytest.mark.parametrize("sizes", [[103], [52, 51], [32, 32, 32, 7], [1] * 3 + [100], [50, 0, 53]])
def test_streamed_correlation_equals_in_memory(sizes):
  a, b = offset_pair()
  expected = correlation_matrix(a, b)
  got = streamed_correlation(stream_batches(a, b, sizes))
  chex.assert_shape(got, (4, 5))
  assert got.dtype == np.float32
  np.testing.assert_allclose(got, expected, atol=1e-5)
  np.testing.assert_array_equal(got[:, 3], 0.0)  # The constant column.


def test_offsets_defeat_naive_float32_sums():
  # The data of the test above is hard: raw float32 sums of products lose the covariance.
  a, b = offset_pair()
  n = np.float32(a.shape[0])
  cov = (a.T @ b) / n - np.outer(a.sum(0) / n, b.sum(0) / n)
  std_a = np.sqrt(np.maximum((a * a).sum(0) / n - (a.sum(0) / n) ** 2, 1e-12))
  std_b = np.sqrt(np.maximum((b * b).sum(0) / n - (b.sum(0) / n) ** 2, 1e-12))
  naive = cov / np.outer(std_a, std_b)
  assert np.nanmax(np.abs(naive[:, :2] - correlation_matrix(a, b)[:, :2])) > 1e-2


def test_accumulator_api_is_jit_friendly_pure_state():
  a, b = offset_pair()
  state = correlation_init(4, 5)
  chex.assert_shape(state.comoment, (4, 5))
  for x, y in stream_batches(a, b, [40, 63]):
    state = correlation_update(state, jnp.asarray(x), jnp.asarray(y))
  assert int(state.count) == 103
  chex.assert_trees_all_close(state.mean_a, a.astype(np.float64).mean(0), rtol=1e-6)
  np.testing.assert_allclose(correlation_finalize(state), correlation_matrix(a, b), atol=1e-5)


def test_sharded_batches_give_the_same_correlation():
  mesh = sharding.data_mesh()
  assert mesh.size == 8
  a, b = offset_pair(n=96)
  put = lambda x: jax.device_put(jnp.asarray(x), sharding.batch_sharded(mesh))
  batches = [(put(x), put(y)) for x, y in stream_batches(a, b, [32, 64])]
  assert len(batches[0][0].sharding.device_set) == 8
  np.testing.assert_allclose(streamed_correlation(batches), streamed_correlation(stream_batches(
      a, b, [32, 64])), atol=1e-6)
  np.testing.assert_allclose(streamed_correlation(batches), correlation_matrix(a, b), atol=1e-5)


@pytest.mark.parametrize(
    "batches, match",
    [
        ([(np.zeros((4, 2)), np.zeros((4,)))], "b of batch 0 has 1 dimensions"),
        ([(np.zeros((4, 2)), np.zeros((3, 2)))], "a has 4 samples but b has 3"),
        ([(np.ones((4, 2)), np.ones((4, 3))), nan_batch()], "b of batch 1 holds 1 NaN/Inf"),
        ([(np.ones((4, 2)), np.ones((4, 3))), (np.ones((4, 2)), np.ones((4, 2)))],
         "batch 1 has 2 and 2 columns"),
        ([], "yielded no batches"),
        ([(np.zeros((1, 2)), np.zeros((1, 2)))], "needs at least 2"),
        ([(np.zeros((4, 2)),)], "not an \\(a, b\\) pair"),
        ([(np.zeros((4, 0)), np.zeros((4, 2)))], "no columns"),
        ([(np.array([["x"]] * 4), np.zeros((4, 2)))], "dtype"),
    ],
)
def test_streamed_correlation_bad_batches_raise(batches, match):
  with pytest.raises(DataError, match=match):
    streamed_correlation(iter(batches))
