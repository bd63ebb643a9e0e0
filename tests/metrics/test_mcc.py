"""Tests for identi.metrics.mcc."""

import chex
import numpy as np
import pytest

from helpers import stream_batches
from identi.errors import ConfigError, DataError
from identi.metrics.mcc import mcc, streamed_mcc



def _sparse_latents(n=2000, k=8, p=0.2, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.random((n, k)) < p) * rng.lognormal(0.0, 0.25, (n, k))


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






def test_streamed_mcc_equals_mcc():
  z = _sparse_latents(n=2000)
  rng = np.random.default_rng(7)
  codes = np.concatenate([z[:, [4, 1, 7, 0, 2, 6, 5, 3]] + 0.1 * rng.normal(size=z.shape),
                          rng.normal(size=(2000, 3))], axis=1)
  expected = mcc(z, codes)
  got = streamed_mcc(stream_batches(z[:1000], codes[:1000], [300, 300, 300, 100]),
                     stream_batches(z[1000:], codes[1000:], [512, 488]))
  np.testing.assert_allclose(got.mcc, expected.mcc, atol=1e-5)
  np.testing.assert_array_equal(got.matching, expected.matching)
  np.testing.assert_allclose(got.per_concept, expected.per_concept, atol=1e-5)
  np.testing.assert_allclose(got.corr_fit, expected.corr_fit, atol=1e-5)




def test_streamed_mcc_bad_streams_raise():
  z = _sparse_latents(n=40)
  with pytest.raises(DataError, match="fit stream has 8 concepts and 8 units but the score"):
    streamed_mcc([(z, z)], [(z, z[:, :5])])
  with pytest.raises(DataError, match="score stream held 3 samples; it needs at least 4"):
    streamed_mcc([(z, z)], [(z[:3], z[:3])])


