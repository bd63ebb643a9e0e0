"""The identi shard format: activations as a directory of memory-mapped .npy files.

Layout::

  DIR/shard_00000.npy         (rows_0, dim) activations, float16/float32/float64
  DIR/shard_00001.npy         (rows_1, dim) same dim and dtype
  ...
  DIR/latents/shard_00000.npy (rows_0, k) optional ground-truth latents, same file names and rows

- Shards are every ``*.npy`` file directly in DIR, taken in sorted name order; rows are numbered
  globally in that order. Any file name works; ``write_shards`` uses ``<prefix>_<5 digits>.npy``.
- All shards are 2-D with the same number of columns (dim) and the same floating dtype.
- ``DIR/latents/`` is optional; when present it must hold a file of the same name and row count
  for every shard, all with the same number of columns.
- A single .npy file is also a (one-shard) source; its latents, if any, live in
  ``<its directory>/latents/<its name>``.

Shards are opened with ``np.load(mmap_mode='r')``: opening reads only headers, and ``get`` reads
only the requested rows, so datasets larger than memory stream from disk.
"""
import pathlib

import ml_dtypes
import numpy as np

from identi import io
from identi.data.sources import (ActivationSource, check_finite_rows, check_float_dtype,
                                 check_indices)
from identi.checks import check_count
from identi.errors import DataError

LATENTS_DIR = "latents"


def _open_npy(path: pathlib.Path) -> np.ndarray:
  """Memory-maps one .npy file, turning any read failure into a DataError naming the file."""
  try:
    return np.load(path, mmap_mode="r", allow_pickle=False)
  except (OSError, ValueError, EOFError) as e:
    raise DataError(
        f"shard {path} is not a readable .npy file ({type(e).__name__}: {e}): re-write it with "
        "np.save or identi.data.write_shards") from e


def _require_2d(arr: np.ndarray, path: pathlib.Path) -> None:
  if arr.ndim != 2:
    hint = f"reshape to (-1, {arr.shape[-1]})" if arr.ndim else "save a (examples, features) array"
    raise DataError(
        f"shard {path} has {arr.ndim} dimensions (shape {arr.shape}); activation shards must be "
        f"2-D (examples, features): {hint} before saving")


def _gather_rows(arrays: list[np.ndarray], offsets: np.ndarray, idx: np.ndarray,
                 width: int) -> np.ndarray:
  """Float32 rows at global indices ``idx`` of the row-concatenation of ``arrays``.

  Indices are sorted and grouped per array so that each memmap is read with one fancy index in
  increasing order; the requested order is restored in the output.
  """
  out = np.empty((idx.shape[0], width), np.float32)
  order = np.argsort(idx, kind="stable")
  sorted_idx = idx[order]
  which = np.searchsorted(offsets, sorted_idx, side="right") - 1
  bounds = np.searchsorted(which, np.arange(len(arrays) + 1), side="left")
  for s in np.flatnonzero(np.diff(bounds)):
    lo, hi = bounds[s], bounds[s + 1]
    out[order[lo:hi]] = arrays[s][sorted_idx[lo:hi] - offsets[s]]
  return out


class NpyShardSource(ActivationSource):
  """Activations streamed from a directory of .npy shards (or one .npy file); see module docstring.

  Everything is validated at open (existence, readability, 2-D, one dim and floating dtype, latents
  that fit); rows are read lazily and checked finite when fetched.
  """

  def __init__(self, path):
    self.path = pathlib.Path(path)
    if not self.path.exists():
      raise DataError(
          f"activation path {self.path} does not exist: pass a directory of .npy shards (or a "
          "single .npy file), e.g. one written by identi.data.write_shards")
    if self.path.is_dir():
      files = sorted(p for p in self.path.glob("*.npy") if p.is_file())
      latents_dir = self.path / LATENTS_DIR
      if not files:
        raise DataError(
            f"directory {self.path} holds no .npy shards: write activations there with "
            "identi.data.write_shards or np.save(DIR/'shard_00000.npy', x)")
    else:
      files = [self.path]
      latents_dir = self.path.parent / LATENTS_DIR
    self.files = files
    self._arrays = [_open_npy(f) for f in files]

    first, first_file = self._arrays[0], files[0]
    _require_2d(first, first_file)
    check_float_dtype(first.dtype, f"shard {first_file}")
    for arr, f in zip(self._arrays, files):
      _require_2d(arr, f)
      if arr.shape[1] != first.shape[1] or arr.dtype != first.dtype:
        raise DataError(
            f"shard {f} has shape {arr.shape} and dtype {arr.dtype} but {first_file} has "
            f"{first.shape[1]} columns and dtype {first.dtype}: all shards need the same dim and "
            "dtype; re-write the odd one out")

    rows = np.array([a.shape[0] for a in self._arrays], np.int64)
    self._offsets = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)
    self.num_examples = int(self._offsets[-1])
    self.dim = int(first.shape[1])
    self.dtype = first.dtype
    self._latents = self._open_latents(latents_dir) if latents_dir.is_dir() else None

  def _open_latents(self, latents_dir: pathlib.Path) -> list[np.ndarray]:
    """Opens and validates the latents file of every shard."""
    arrays = []
    for f, arr in zip(self.files, self._arrays):
      lf = latents_dir / f.name
      if not lf.is_file():
        raise DataError(
            f"latents directory {latents_dir} has no file for shard {f.name}: write {lf} with "
            f"{arr.shape[0]} rows, or remove {latents_dir} if there are no ground-truth latents")
      lat = _open_npy(lf)
      _require_2d(lat, lf)
      if lat.shape[0] != arr.shape[0]:
        raise DataError(
            f"latents {lf} have {lat.shape[0]} rows but shard {f} has {arr.shape[0]}: write one "
            "latent row per activation row")
      if not (np.issubdtype(lat.dtype, np.number) or lat.dtype == np.bool_):
        raise DataError(f"latents {lf} have dtype {lat.dtype}: save them as float32")
      if arrays and lat.shape[1] != arrays[0].shape[1]:
        raise DataError(
            f"latents {lf} have {lat.shape[1]} columns but {latents_dir / self.files[0].name} has "
            f"{arrays[0].shape[1]}: all latents files need the same number of columns")
      arrays.append(lat)
    return arrays

  def _gather(self, idx: np.ndarray) -> np.ndarray:
    return _gather_rows(self._arrays, self._offsets, idx, self.dim)

  def locate(self, index: int) -> tuple[str, int]:
    s = int(np.searchsorted(self._offsets, index, side="right") - 1)
    return f"shard {self.files[s]}", index - int(self._offsets[s])

  def latents(self, indices: np.ndarray) -> np.ndarray | None:
    if self._latents is None:
      return None
    idx = check_indices(indices, self.num_examples)
    z = _gather_rows(self._latents, self._offsets, idx, self._latents[0].shape[1])
    bad = ~np.isfinite(z)
    if bad.any():
      index = int(idx[int(np.argmax(bad.any(axis=1)))])
      s = int(np.searchsorted(self._offsets, index, side="right") - 1)
      raise DataError(
          f"latents {self.files[s].parent / LATENTS_DIR / self.files[s].name} row "
          f"{index - int(self._offsets[s])} holds NaN/Inf: fix or drop that row and re-write it")
    return z


def open_source(path) -> NpyShardSource:
  """Opens a shard directory (or a single .npy file) as an activation source."""
  return NpyShardSource(path)


def write_shards(directory, x, z=None, rows_per_shard: int = 65536,
                 prefix: str = "shard") -> list[pathlib.Path]:
  """Writes activations ``x`` (and latents ``z``) in the identi shard format.

  Files ``<prefix>_00000.npy, ...`` of at most ``rows_per_shard`` rows are written atomically (temp
  file in the same directory, then os.replace), creating the directory; ``x`` keeps its dtype.
  Refuses a directory that already holds other .npy files, which would be read as extra shards.

  Returns:
    The shard paths written, in order.
  """
  directory = pathlib.Path(directory)
  x = np.asarray(x)
  if x.ndim != 2:
    raise DataError(
        f"x has {x.ndim} dimensions (shape {x.shape}); activations must be 2-D (examples, "
        f"features): reshape to (-1, {x.shape[-1] if x.ndim else 1})")
  if x.dtype == np.dtype(ml_dtypes.bfloat16):
    raise DataError("x has dtype bfloat16, which .npy cannot store: cast with x.astype(np.float32)")
  check_float_dtype(x.dtype, "x")
  check_finite_rows(x, "x")
  if x.shape[0] == 0:
    raise DataError("x has no rows: pass at least one example")
  if z is not None:
    z = np.asarray(z)
    if z.ndim != 2 or z.shape[0] != x.shape[0]:
      raise DataError(
          f"z has shape {z.shape} but x has {x.shape[0]} rows: pass z of shape "
          f"({x.shape[0]}, num_latents), one row per example")
    check_finite_rows(z, "z")
  rows_per_shard = check_count(rows_per_shard, "rows_per_shard")

  num = -(-x.shape[0] // rows_per_shard)
  names = [f"{prefix}_{i:05d}.npy" for i in range(num)]
  latents_dir = directory / LATENTS_DIR
  for folder, wanted in ((directory, True), (latents_dir, z is not None)):
    if folder.is_dir():
      stale = sorted(p.name for p in folder.glob("*.npy") if not wanted or p.name not in names)
      if stale:
        raise DataError(
            f"{folder} already holds .npy files that would mix with the new shards ({stale[0]}, "
            f"...): write to an empty directory or delete them first")
  directory.mkdir(parents=True, exist_ok=True)
  if z is not None:
    latents_dir.mkdir(exist_ok=True)
  paths = []
  for i, name in enumerate(names):
    rows = slice(i * rows_per_shard, (i + 1) * rows_per_shard)
    io.save_npy(directory / name, x[rows])
    if z is not None:
      io.save_npy(latents_dir / name, z[rows])
    paths.append(directory / name)
  return paths
