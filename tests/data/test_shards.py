"""Tests for identi.data.shards."""
import os

import numpy as np
import pytest

from identi.data import NpyShardSource, iterate_batches, open_source, write_shards
from identi.errors import ConfigError, DataError


def _data(n=23, d=4, k=2):
  rng = np.random.default_rng(0)
  return rng.normal(size=(n, d)).astype(np.float32), rng.normal(size=(n, k))


def test_write_then_read_across_shard_boundaries(tmp_path):
  x, z = _data()
  paths = write_shards(tmp_path / "acts", x, z, rows_per_shard=5)
  assert [p.name for p in paths] == [f"shard_{i:05d}.npy" for i in range(5)]
  assert sorted(os.listdir(tmp_path / "acts")) == ["latents"] + [p.name for p in paths]
  src = open_source(tmp_path / "acts")
  assert (src.num_examples, src.dim, src.dtype) == (23, 4, np.float32)
  assert all(isinstance(a, np.memmap) for a in src._arrays)
  idx = np.array([22, 0, 5, 4, 9, 10, 4, 17, 3])
  got = src.get(idx)
  assert got.dtype == np.float32
  np.testing.assert_array_equal(got, x[idx])
  np.testing.assert_allclose(src.latents(idx), z[idx].astype(np.float32))
  np.testing.assert_array_equal(np.concatenate([b for b, _ in iterate_batches(src, 7)]), x)


def test_shards_keep_dtype_and_sorted_name_order(tmp_path):
  x, _ = _data(6)
  np.save(tmp_path / "b.npy", x[3:].astype(np.float16))
  np.save(tmp_path / "a.npy", x[:3].astype(np.float16))
  src = NpyShardSource(tmp_path)
  assert src.dtype == np.float16 and src.latents(np.array([0])) is None
  np.testing.assert_array_equal(src.get(np.arange(6)), x.astype(np.float16).astype(np.float32))


def test_single_file_source(tmp_path):
  x, z = _data()
  write_shards(tmp_path, x, z, rows_per_shard=10)
  src = NpyShardSource(tmp_path / "shard_00001.npy")
  assert src.num_examples == 10
  np.testing.assert_array_equal(src.get(np.array([0, 9])), x[[10, 19]])
  np.testing.assert_allclose(src.latents(np.array([2])), z[[12]].astype(np.float32))


def test_missing_path_and_empty_directory(tmp_path):
  with pytest.raises(DataError, match=r"nowhere does not exist: pass a directory of \.npy shards"):
    NpyShardSource(tmp_path / "nowhere")
  with pytest.raises(DataError, match="holds no .npy shards"):
    NpyShardSource(tmp_path)


def test_truncated_shard_is_named(tmp_path):
  x, _ = _data()
  paths = write_shards(tmp_path, x, rows_per_shard=8)
  size = os.path.getsize(paths[1])
  with open(paths[1], "r+b") as f:
    f.truncate(size - 20)
  with pytest.raises(DataError, match=f"shard {paths[1]} is not a readable .npy file"):
    NpyShardSource(tmp_path)


def test_garbage_file_is_named(tmp_path):
  (tmp_path / "junk.npy").write_bytes(b"not an npy file at all")
  with pytest.raises(DataError, match="junk.npy is not a readable"):
    NpyShardSource(tmp_path)


def test_shard_with_other_dim_is_named(tmp_path):
  x, _ = _data()
  write_shards(tmp_path, x, rows_per_shard=10)
  np.save(tmp_path / "shard_00003.npy", np.zeros((4, 5), np.float32))
  with pytest.raises(DataError, match=r"shard_00003.npy has shape \(4, 5\).*4 columns"):
    NpyShardSource(tmp_path)


def test_shard_with_other_dtype_or_rank_is_named(tmp_path):
  x, _ = _data()
  write_shards(tmp_path, x, rows_per_shard=10)
  np.save(tmp_path / "shard_00003.npy", np.zeros((4, 4), np.float64))
  with pytest.raises(DataError, match="shard_00003.npy has shape .* dtype float64"):
    NpyShardSource(tmp_path)
  np.save(tmp_path / "shard_00003.npy", np.zeros((4, 4, 1), np.float32))
  with pytest.raises(DataError, match=r"shard_00003.npy has 3 dimensions.*reshape to \(-1, 1\)"):
    NpyShardSource(tmp_path)


def test_integer_shards_are_rejected(tmp_path):
  np.save(tmp_path / "a.npy", np.zeros((3, 2), np.int32))
  with pytest.raises(DataError, match=r"a.npy has dtype int32.*astype\(np.float32\)"):
    NpyShardSource(tmp_path)


def test_nan_is_reported_with_file_and_row(tmp_path):
  x, _ = _data()
  x[13, 2] = np.nan
  directory = tmp_path / "d"
  directory.mkdir()
  for i, rows in enumerate([slice(0, 10), slice(10, 23)]):
    np.save(directory / f"s{i}.npy", x[rows])
  src = NpyShardSource(directory)
  np.testing.assert_array_equal(src.get(np.array([12, 1])), x[[12, 1]])
  with pytest.raises(DataError, match=f"shard {directory / 's1.npy'} row 3 holds NaN/Inf"):
    src.get(np.array([0, 13]))


def test_latents_must_match_shards(tmp_path):
  x, z = _data()
  write_shards(tmp_path, x, z, rows_per_shard=10)
  np.save(tmp_path / "latents" / "shard_00001.npy", np.zeros((3, 2)))
  with pytest.raises(DataError, match="latents .*shard_00001.npy have 3 rows"):
    NpyShardSource(tmp_path)
  os.remove(tmp_path / "latents" / "shard_00001.npy")
  with pytest.raises(DataError, match="no file for shard shard_00001.npy"):
    NpyShardSource(tmp_path)


def test_write_shards_refuses_to_mix_with_existing_files(tmp_path):
  x, _ = _data()
  write_shards(tmp_path, x, rows_per_shard=5)
  write_shards(tmp_path, x, rows_per_shard=5)
  with pytest.raises(DataError, match=r"\(shard_00002.npy, ...\): write to an empty directory"):
    write_shards(tmp_path, x, rows_per_shard=15)
  assert np.load(tmp_path / "shard_00000.npy").shape == (5, 4)
  assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_write_shards_validates_input(tmp_path):
  with pytest.raises(DataError, match="2-D"):
    write_shards(tmp_path, np.zeros((3,), np.float32))
  with pytest.raises(DataError, match="astype"):
    write_shards(tmp_path, np.zeros((3, 2), np.int8))
  with pytest.raises(DataError, match="z has shape"):
    write_shards(tmp_path, np.zeros((3, 2), np.float32), np.zeros((2, 1)))
  with pytest.raises(ConfigError, match="rows_per_shard"):
    write_shards(tmp_path, np.zeros((3, 2), np.float32), rows_per_shard=0)
  assert not os.listdir(tmp_path)
