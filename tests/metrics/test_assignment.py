"""Tests for identi.metrics.assignment (the dense and certified sparse matchers)."""
import importlib

import numpy as np
import pytest
import scipy.optimize

from identi.errors import ConfigError
from identi.metrics.assignment import max_weight_assignment

assignment_module = importlib.import_module("identi.metrics.assignment")


@pytest.mark.parametrize("shape, recovered", [((40, 40), 1.0), ((40, 60), 0.5), ((60, 40), 0.5),
                                              ((40, 40), 0.7)])
def test_sparse_matcher_equals_dense_hungarian(monkeypatch, shape, recovered):
  monkeypatch.setattr(assignment_module, "_TOPK_BLOCK_ROWS", 16)  # Several blocks, a padded last one.
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


def _planted_weights(n_r, n_c, recovered, seed):
  """|corr|-like weights: noise ~0.01 and one entry in [0.5, 1) for a `recovered` share of pairs."""
  rng = np.random.default_rng(seed)
  w = np.abs(rng.normal(0.0, 0.01, (n_r, n_c))).astype(np.float32)
  k = min(n_r, n_c)
  rows, cols = rng.permutation(n_r)[:k], rng.permutation(n_c)[:k]
  keep = rng.random(k) < recovered
  w[rows[keep], cols[keep]] = rng.uniform(0.5, 1.0, keep.sum())
  return w
