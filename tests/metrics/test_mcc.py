"""Tests for identi.metrics.mcc."""
import importlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from identi.errors import ConfigError, DataError
from identi.metrics.mcc import (correlation_finalize, correlation_init, correlation_matrix,
                                correlation_update, max_weight_assignment, mcc,
                                streamed_correlation, streamed_mcc)
from identi.train import sharding

mcc_module = importlib.import_module("identi.metrics.mcc")


def _sparse_latents(n=2000, k=8, p=0.2, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.random((n, k)) < p) * rng.lognormal(0.0, 0.25, (n, k))


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


def test_permutation_and_positive_scaling_give_one():
  z = _sparse_latents()
  perm = np.array([3, 0, 7, 1, 5, 2, 6, 4])
  codes = z[:, perm] * np.linspace(0.5, 4.0, 8)
  res = mcc(z, codes)
  np.testing.assert_allclose(res.mcc, 1.0, rtol=1e-5)
  np.testing.assert_array_equal(res.matching, np.argsort(perm))
  chex.assert_shape(res.per_concept, (8,))
  chex.assert_shape(res.corr_fit, (8, 8))


def test_dense_rotation_scores_low():
  z = _sparse_latents(k=16)
  q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(16, 16)))
  res = mcc(z, z @ q)
  assert res.mcc < 0.8


def test_independent_codes_score_near_zero():
  z = _sparse_latents(n=8000)
  codes = np.random.default_rng(2).normal(size=(8000, 8))
  res = mcc(z, codes)
  assert 0.0 <= res.mcc < 0.15


def test_extra_units_do_not_lower_the_score():
  z = _sparse_latents()
  rng = np.random.default_rng(3)
  codes = z + 0.05 * rng.normal(size=z.shape)
  extra = np.concatenate([rng.normal(size=(z.shape[0], 20)), codes, np.zeros((z.shape[0], 3))],
                         axis=1)
  base = mcc(z, codes)
  more = mcc(z, extra)
  assert base.mcc > 0.9
  assert more.mcc >= base.mcc - 1e-6
  np.testing.assert_array_equal(more.matching, np.arange(8) + 20)


def test_fewer_units_leave_concepts_unmatched_with_score_zero():
  z = _sparse_latents()
  res = mcc(z, z[:, [5, 2, 0]])
  np.testing.assert_allclose(res.mcc, 3.0 / 8.0, rtol=1e-5)
  assert sorted(np.flatnonzero(res.matching >= 0)) == [0, 2, 5]
  np.testing.assert_array_equal(res.per_concept[res.matching < 0], 0.0)


def test_dead_units_and_inactive_concepts_are_zero_not_nan():
  z = _sparse_latents()
  z[:, 3] = 0.0
  codes = z.copy()
  codes[:, 6] = 0.0
  res = mcc(z, codes)
  assert np.all(np.isfinite(res.corr_fit))
  assert res.per_concept[3] == 0.0 and res.per_concept[6] == 0.0
  np.testing.assert_allclose(res.mcc, 6.0 / 8.0, rtol=1e-5)


def test_spearman_sees_through_monotone_transforms():
  z = np.random.default_rng(4).normal(size=(2000, 6))
  codes = np.exp(2.0 * z)
  pearson = mcc(z, codes, method="pearson")
  spearman = mcc(z, codes, method="spearman")
  np.testing.assert_allclose(spearman.mcc, 1.0, rtol=1e-5)
  assert pearson.mcc < 0.6


def test_matching_is_fitted_on_first_half_only():
  z = np.random.default_rng(5).normal(size=(100, 2))
  codes = z.copy()
  codes[50:] = z[50:, ::-1]  # The score half swaps the two units.
  res = mcc(z, codes)
  np.testing.assert_array_equal(res.matching, [0, 1])
  assert res.mcc < 0.5


@pytest.mark.parametrize(
    "z, codes, match",
    [
        (np.zeros((10, 2)), np.zeros((9, 2)), "samples"),
        (np.zeros((10,)), np.zeros((10, 2)), "2-D"),
        (np.full((10, 2), np.nan), np.zeros((10, 2)), "NaN"),
        (np.zeros((10, 2)), np.full((10, 2), np.inf), "NaN/Inf"),
        (np.zeros((7, 2)), np.zeros((7, 2)), "at least 4"),
    ],
)
def test_bad_inputs_raise(z, codes, match):
  with pytest.raises(DataError, match=match):
    mcc(z, codes)


def test_bad_config_raises():
  z = _sparse_latents(n=20)
  with pytest.raises(ConfigError, match="method"):
    mcc(z, z, method="kendall")
  with pytest.raises(ConfigError, match="fit_fraction"):
    mcc(z, z, fit_fraction=1.0)


def _offset_pair(n=103, seed=6):
  """float32 (a, b): correlated columns on offsets up to 1e3, a constant and a boolean column."""
  rng = np.random.default_rng(seed)
  a = rng.normal(size=(n, 4))
  b = np.stack([a[:, 0] + 0.5 * rng.normal(size=n), -a[:, 1] + a[:, 2], rng.normal(size=n),
                np.full(n, 0.1), a[:, 3] > 0], axis=1)
  a += np.array([1e3, -1e3, 0.0, 5e2])
  b[:, :2] += 1e3
  return a.astype(np.float32), b.astype(np.float32)


def _batches(a, b, sizes):
  edges = np.cumsum([0, *sizes])
  assert edges[-1] == a.shape[0]
  return [(a[s:e], b[s:e]) for s, e in zip(edges[:-1], edges[1:])]


@pytest.mark.parametrize("sizes", [[103], [52, 51], [32, 32, 32, 7], [1] * 3 + [100], [50, 0, 53]])
def test_streamed_correlation_equals_in_memory(sizes):
  a, b = _offset_pair()
  expected = correlation_matrix(a, b)
  got = streamed_correlation(_batches(a, b, sizes))
  chex.assert_shape(got, (4, 5))
  assert got.dtype == np.float32
  np.testing.assert_allclose(got, expected, atol=1e-5)
  np.testing.assert_array_equal(got[:, 3], 0.0)  # The constant column.


def test_offsets_defeat_naive_float32_sums():
  # The data of the test above is hard: raw float32 sums of products lose the covariance.
  a, b = _offset_pair()
  n = np.float32(a.shape[0])
  cov = (a.T @ b) / n - np.outer(a.sum(0) / n, b.sum(0) / n)
  std_a = np.sqrt(np.maximum((a * a).sum(0) / n - (a.sum(0) / n) ** 2, 1e-12))
  std_b = np.sqrt(np.maximum((b * b).sum(0) / n - (b.sum(0) / n) ** 2, 1e-12))
  naive = cov / np.outer(std_a, std_b)
  assert np.nanmax(np.abs(naive[:, :2] - correlation_matrix(a, b)[:, :2])) > 1e-2


def test_accumulator_api_is_jit_friendly_pure_state():
  a, b = _offset_pair()
  state = correlation_init(4, 5)
  chex.assert_shape(state.comoment, (4, 5))
  for x, y in _batches(a, b, [40, 63]):
    state = correlation_update(state, jnp.asarray(x), jnp.asarray(y))
  assert int(state.count) == 103
  chex.assert_trees_all_close(state.mean_a, a.astype(np.float64).mean(0), rtol=1e-6)
  np.testing.assert_allclose(correlation_finalize(state), correlation_matrix(a, b), atol=1e-5)


def test_sharded_batches_give_the_same_correlation():
  mesh = sharding.data_mesh()
  assert mesh.size == 8
  a, b = _offset_pair(n=96)
  put = lambda x: jax.device_put(jnp.asarray(x), sharding.batch_sharded(mesh))
  batches = [(put(x), put(y)) for x, y in _batches(a, b, [32, 64])]
  assert len(batches[0][0].sharding.device_set) == 8
  np.testing.assert_allclose(streamed_correlation(batches), streamed_correlation(_batches(
      a, b, [32, 64])), atol=1e-6)
  np.testing.assert_allclose(streamed_correlation(batches), correlation_matrix(a, b), atol=1e-5)


def test_streamed_mcc_equals_mcc():
  z = _sparse_latents(n=2000)
  rng = np.random.default_rng(7)
  codes = np.concatenate([z[:, [4, 1, 7, 0, 2, 6, 5, 3]] + 0.1 * rng.normal(size=z.shape),
                          rng.normal(size=(2000, 3))], axis=1)
  expected = mcc(z, codes)
  got = streamed_mcc(_batches(z[:1000], codes[:1000], [300, 300, 300, 100]),
                     _batches(z[1000:], codes[1000:], [512, 488]))
  np.testing.assert_allclose(got.mcc, expected.mcc, atol=1e-5)
  np.testing.assert_array_equal(got.matching, expected.matching)
  np.testing.assert_allclose(got.per_concept, expected.per_concept, atol=1e-5)
  np.testing.assert_allclose(got.corr_fit, expected.corr_fit, atol=1e-5)


def _nan_batch():
  a, b = np.zeros((4, 2)), np.ones((4, 3))
  b[2, 1] = np.nan
  return a, b


@pytest.mark.parametrize(
    "batches, match",
    [
        ([(np.zeros((4, 2)), np.zeros((4,)))], "b of batch 0 has 1 dimensions"),
        ([(np.zeros((4, 2)), np.zeros((3, 2)))], "a has 4 samples but b has 3"),
        ([(np.ones((4, 2)), np.ones((4, 3))), _nan_batch()], "b of batch 1 holds 1 NaN/Inf"),
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


def test_streamed_mcc_bad_streams_raise():
  z = _sparse_latents(n=40)
  with pytest.raises(DataError, match="fit stream has 8 concepts and 8 units but the score"):
    streamed_mcc([(z, z)], [(z, z[:, :5])])
  with pytest.raises(DataError, match="score stream held 3 samples; it needs at least 4"):
    streamed_mcc([(z, z)], [(z[:3], z[:3])])


def _planted_weights(n_r, n_c, recovered, seed):
  """|corr|-like weights: noise ~0.01 and one entry in [0.5, 1) for a `recovered` share of pairs."""
  rng = np.random.default_rng(seed)
  w = np.abs(rng.normal(0.0, 0.01, (n_r, n_c))).astype(np.float32)
  k = min(n_r, n_c)
  rows, cols = rng.permutation(n_r)[:k], rng.permutation(n_c)[:k]
  keep = rng.random(k) < recovered
  w[rows[keep], cols[keep]] = rng.uniform(0.5, 1.0, keep.sum())
  return w


@pytest.mark.parametrize("shape, recovered", [((40, 40), 1.0), ((40, 60), 0.5), ((60, 40), 0.5),
                                              ((40, 40), 0.7)])
def test_sparse_matcher_equals_dense_hungarian(monkeypatch, shape, recovered):
  monkeypatch.setattr(mcc_module, "_TOPK_BLOCK_ROWS", 16)  # Several blocks, a padded last one.
  for seed in range(3):
    w = _planted_weights(*shape, recovered, seed)
    rows, cols = scipy.optimize.linear_sum_assignment(w, maximize=True)
    got = max_weight_assignment(w, "sparse")
    assert got.matcher in ("sparse", "sparse->dense")
    np.testing.assert_array_equal(got.rows, rows)
    np.testing.assert_array_equal(got.cols, cols)


def test_sparse_matcher_certifies_clear_problems_and_falls_back_otherwise():
  assert max_weight_assignment(_planted_weights(40, 40, 1.0, 0), "sparse").matcher == "sparse"
  # A square problem where 30 % of the concepts have no unit: the leftover units must be assigned
  # over noise entries that the candidate graph lacks, so the dense Hungarian decides.
  assert (max_weight_assignment(_planted_weights(40, 40, 0.7, 0), "sparse").matcher
          == "sparse->dense")
  assert max_weight_assignment(_planted_weights(40, 40, 1.0, 0)).matcher == "dense"


def test_sparse_matcher_sets_aside_zero_rows_and_columns():
  w = _planted_weights(30, 30, 1.0, 1)
  w[:, [3, 17]] = 0.0
  w[[5, 9, 20]] = 0.0
  got = max_weight_assignment(w, "sparse")
  rows, cols = scipy.optimize.linear_sum_assignment(w, maximize=True)
  assert got.matcher == "sparse"
  np.testing.assert_array_equal(got.rows, np.arange(30))
  assert len(set(got.cols.tolist())) == 30
  np.testing.assert_allclose(w[got.rows, got.cols].sum(), w[rows, cols].sum(), rtol=1e-6)


def test_bad_matcher_raises():
  with pytest.raises(ConfigError, match="matcher"):
    max_weight_assignment(np.eye(3), "greedy")
