"""Tests for identi.data.sources."""
import chex
import ml_dtypes
import numpy as np
import pytest

from identi.data import ArraySource, Subset, batch_indices, iterate_batches, train_eval_split
from identi.errors import ConfigError, DataError


def _x(n=10, d=3):
  return np.arange(n * d, dtype=np.float32).reshape(n, d)


def test_array_source_get_and_latents():
  x = _x()
  z = -np.arange(10, dtype=np.float64)[:, None]
  src = ArraySource(x.astype(np.float16), z)
  assert (src.num_examples, src.dim, src.dtype) == (10, 3, np.float16)
  got = src.get(np.array([7, 2, 2]))
  chex.assert_type(got, np.float32)
  np.testing.assert_array_equal(got, x[[7, 2, 2]])
  np.testing.assert_array_equal(src.latents(np.array([7, 2])), [[-7.0], [-2.0]])
  assert src.latents(np.array([1])).dtype == np.float32
  assert ArraySource(x).latents(np.array([0])) is None


def test_array_source_accepts_bfloat16():
  src = ArraySource(_x().astype(ml_dtypes.bfloat16))
  np.testing.assert_array_equal(src.get(np.array([1])), _x()[[1]])


def test_array_source_validation():
  with pytest.raises(DataError, match="2-D"):
    ArraySource(np.zeros((2, 3, 4), np.float32))
  with pytest.raises(DataError, match=r"int64.*astype\(np.float32\)"):
    ArraySource(np.zeros((2, 3), np.int64))
  x = _x()
  x[4, 1] = np.nan
  x[6, 0] = np.inf
  with pytest.raises(DataError, match="mine holds 2 NaN/Inf values, first in row 4"):
    ArraySource(x, name="mine")
  with pytest.raises(DataError, match="10 rows"):
    ArraySource(_x(), np.zeros((9, 2)))


def test_get_rejects_bad_indices():
  src = ArraySource(_x())
  with pytest.raises(DataError, match="outside"):
    src.get(np.array([0, 10]))
  with pytest.raises(DataError, match="outside"):
    src.get(np.array([-1]))
  with pytest.raises(DataError, match="1-D integer"):
    src.get(np.array([0.5]))


def test_batch_indices_matches_concatenated_epoch_permutations():
  n, b, seed = 7, 3, 11
  order = np.concatenate([np.random.default_rng([seed, e]).permutation(n) for e in range(4)])
  for step in range(8):
    got = batch_indices(n, b, step, seed)
    chex.assert_shape(got, (b,))
    np.testing.assert_array_equal(got, order[step * b:(step + 1) * b])


def test_batch_indices_is_pure_and_covers_each_epoch_once():
  n, b = 12, 4
  first = [batch_indices(n, b, t, 0) for t in range(3)]
  np.testing.assert_array_equal(np.sort(np.concatenate(first)), np.arange(n))
  np.testing.assert_array_equal(batch_indices(n, b, 1, 0), first[1])
  assert not np.array_equal(batch_indices(n, b, 0, 1), first[0])
  assert not np.array_equal(np.concatenate([batch_indices(n, b, t, 0) for t in range(3, 6)]),
                            np.concatenate(first))


def test_batch_indices_larger_than_dataset():
  order = np.concatenate([np.random.default_rng([0, e]).permutation(3) for e in range(5)])
  np.testing.assert_array_equal(batch_indices(3, 5, 1, 0), order[5:10])


def test_batch_indices_rejects_bad_arguments():
  with pytest.raises(ConfigError, match="batch_size"):
    batch_indices(10, 0, 0, 0)
  with pytest.raises(ConfigError, match="step"):
    batch_indices(10, 2, -1, 0)
  with pytest.raises(ConfigError, match="num_examples"):
    batch_indices(0, 2, 0, 0)


def test_subset_and_split():
  x = _x(20, 2)
  src = ArraySource(x, np.arange(20.0)[:, None])
  train, ev = train_eval_split(src, 5, seed=3)
  assert (train.num_examples, ev.num_examples) == (15, 5)
  np.testing.assert_array_equal(np.sort(np.concatenate([train.indices, ev.indices])), np.arange(20))
  np.testing.assert_array_equal(ev.get(np.array([4, 0])), x[ev.indices[[4, 0]]])
  np.testing.assert_array_equal(ev.latents(np.array([1]))[:, 0], ev.indices[[1]])
  again, _ = train_eval_split(src, 5, seed=3)
  np.testing.assert_array_equal(again.indices, train.indices)
  with pytest.raises(ConfigError, match="num_eval"):
    train_eval_split(src, 20, seed=0)
  with pytest.raises(DataError, match="outside"):
    ev.get(np.array([5]))


def test_subset_reports_the_underlying_row():
  x = _x()
  x[8, 2] = np.nan
  src = ArraySource(np.zeros((10, 3), np.float32), name="mine")
  src._x = x  # Corrupt after validation, as a file changing on disk would.
  sub = Subset(src, np.array([1, 8]))
  with pytest.raises(DataError, match="mine row 8 holds NaN/Inf"):
    sub.get(np.array([0, 1]))


def test_iterate_batches_includes_partial_last_batch():
  x = _x(7, 2)
  batches = list(iterate_batches(ArraySource(x, x[:, :1]), 3))
  assert [b.shape[0] for b, _ in batches] == [3, 3, 1]
  np.testing.assert_array_equal(np.concatenate([b for b, _ in batches]), x)
  np.testing.assert_array_equal(np.concatenate([z for _, z in batches]), x[:, :1])
  assert all(z is None for _, z in iterate_batches(ArraySource(x), 4))
