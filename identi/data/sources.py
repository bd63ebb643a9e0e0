"""Activation sources: random access to rows of an (examples, dim) activation matrix.

A source has ``num_examples``, ``dim`` and ``dtype`` (the stored dtype), ``get(indices)`` returning
float32 rows and ``latents(indices)`` returning ground-truth latents when the source has them. The
training order is a pure function of (num_examples, batch_size, step, seed) (``batch_indices``),
so a run resumed at step t sees exactly the batches it would have seen.
"""
import abc
import functools
from collections.abc import Iterator

import ml_dtypes
import numpy as np

from identi.checks import check_count, is_int
from identi.errors import ConfigError, DataError

FLOAT_DTYPES = (
    np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16), np.dtype(np.float32),
    np.dtype(np.float64))


def check_float_dtype(dtype: np.dtype, what: str) -> None:
  """Raises DataError unless ``dtype`` is float16, bfloat16, float32 or float64."""
  if np.dtype(dtype) not in FLOAT_DTYPES:
    raise DataError(
        f"{what} has dtype {np.dtype(dtype)}; activations must be float16, bfloat16, float32 or "
        "float64: cast with x.astype(np.float32)")


def check_finite_rows(values: np.ndarray, what: str) -> None:
  """Raises DataError naming the count of NaN/Inf values in ``values`` and its first bad row.

  ``what`` names the data in the message (a file or source name).
  """
  if values.dtype == np.bool_ or np.issubdtype(values.dtype, np.integer):
    return
  bad = ~np.isfinite(values)
  if bad.any():
    first = int(np.argmax(bad.reshape(bad.shape[0], -1).any(axis=1)))
    raise DataError(
        f"{what} holds {int(bad.sum())} NaN/Inf values, first in row {first}: fix or drop "
        "those rows and re-write the data")


def check_indices(indices, num_examples: int) -> np.ndarray:
  """Validates 1-D integer row indices in [0, num_examples) and returns them as int64."""
  idx = np.asarray(indices)
  if idx.ndim != 1 or not (np.issubdtype(idx.dtype, np.integer) or idx.size == 0):
    raise DataError(
        f"row indices must be a 1-D integer array, got dtype {idx.dtype} and shape {idx.shape}: "
        "pass e.g. np.arange(start, stop)")
  idx = idx.astype(np.int64)
  if idx.size and (idx.min() < 0 or idx.max() >= num_examples):
    bad = idx[(idx < 0) | (idx >= num_examples)][0]
    raise DataError(
        f"row index {int(bad)} is outside [0, {num_examples}): pass indices of existing rows "
        "(negative indices are not accepted)")
  return idx


class ActivationSource(abc.ABC):
  """Base of activation sources; subclasses implement ``_gather`` and ``locate``."""

  num_examples: int
  dim: int
  dtype: np.dtype

  def get(self, indices: np.ndarray) -> np.ndarray:
    """Float32 rows ``(len(indices), dim)`` in the order of ``indices``, checked finite."""
    idx = check_indices(indices, self.num_examples)
    x = self._gather(idx)
    bad = ~np.isfinite(x)
    if bad.any():
      pos = int(np.argmax(bad.any(axis=1)))
      where, row = self.locate(int(idx[pos]))
      raise DataError(
          f"{where} row {row} holds NaN/Inf ({int(bad[pos].sum())} values in that row): fix or "
          "drop that row and re-write the data")
    return x

  def latents(self, indices: np.ndarray) -> np.ndarray | None:
    """Float32 ground-truth latents of the rows, or None when the source has none."""
    del indices
    return None

  @abc.abstractmethod
  def _gather(self, idx: np.ndarray) -> np.ndarray:
    """Float32 rows at validated int64 indices."""

  @abc.abstractmethod
  def locate(self, index: int) -> tuple[str, int]:
    """(file or source name, row within it) of a global row index, for error messages."""

  def __len__(self) -> int:
    return self.num_examples


class ArraySource(ActivationSource):
  """In-memory activations ``x`` ``(n, dim)`` with optional ground-truth latents ``z`` ``(n, k)``.

  Validated at construction: x is 2-D, float16/bfloat16/float32/float64 and finite; z, when given,
  is 2-D, numeric, finite and has the same number of rows.
  """

  def __init__(self, x, z=None, name: str = "array"):
    x = np.asarray(x)
    if x.ndim != 2:
      raise DataError(
          f"{name} has {x.ndim} dimensions (shape {x.shape}); activations must be 2-D "
          f"(examples, features): reshape to (-1, {x.shape[-1] if x.ndim else 1})")
    check_float_dtype(x.dtype, name)
    check_finite_rows(x, name)
    if z is not None:
      z = np.asarray(z)
      if z.ndim != 2 or z.shape[0] != x.shape[0]:
        raise DataError(
            f"latents of {name} have shape {z.shape} but x has {x.shape[0]} rows: pass z of shape "
            f"({x.shape[0]}, num_latents), one row per example")
      if not (np.issubdtype(z.dtype, np.number) or z.dtype == np.bool_):
        raise DataError(f"latents of {name} have dtype {z.dtype}: cast with z.astype(np.float32)")
      check_finite_rows(z, f"latents of {name}")
    self._x = x
    self._z = z
    self.name = name
    self.num_examples = x.shape[0]
    self.dim = x.shape[1]
    self.dtype = x.dtype

  def _gather(self, idx: np.ndarray) -> np.ndarray:
    return self._x[idx].astype(np.float32, copy=False)

  def locate(self, index: int) -> tuple[str, int]:
    return self.name, index

  def latents(self, indices: np.ndarray) -> np.ndarray | None:
    if self._z is None:
      return None
    return self._z[check_indices(indices, self.num_examples)].astype(np.float32, copy=False)


class Subset(ActivationSource):
  """A view of the rows ``indices`` of another source (train/eval splits)."""

  def __init__(self, source: ActivationSource, indices):
    self.source = source
    self.indices = check_indices(indices, source.num_examples)
    self.indices.setflags(write=False)
    self.num_examples = int(self.indices.shape[0])
    self.dim = source.dim
    self.dtype = source.dtype

  def get(self, indices: np.ndarray) -> np.ndarray:
    return self.source.get(self.indices[check_indices(indices, self.num_examples)])

  def _gather(self, idx: np.ndarray) -> np.ndarray:
    return self.source.get(self.indices[idx])

  def locate(self, index: int) -> tuple[str, int]:
    return self.source.locate(int(self.indices[index]))

  def latents(self, indices: np.ndarray) -> np.ndarray | None:
    return self.source.latents(self.indices[check_indices(indices, self.num_examples)])


@functools.lru_cache(maxsize=4)
def _epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
  """Read-only permutation of epoch ``epoch``, from np.random.default_rng([seed, epoch])."""
  dtype = np.int32 if num_examples < 2**31 else np.int64
  perm = np.random.default_rng([seed, epoch]).permutation(num_examples).astype(dtype)
  perm.setflags(write=False)
  return perm


def batch_indices(num_examples: int, batch_size: int, step: int, seed: int) -> np.ndarray:
  """Row indices of the batch at global step ``step`` of deterministic shuffled epochs.

  The row order is the concatenation of per-epoch permutations (epoch e shuffled by
  ``np.random.default_rng([seed, e])``); batch t covers positions ``[t * B, (t + 1) * B)`` of it and
  may straddle two epochs. A pure function of its arguments; the last permutations are cached.

  Returns:
    int64 ``(batch_size,)``.
  """
  n = check_count(num_examples, "num_examples", 1)
  b = check_count(batch_size, "batch_size", 1)
  t = check_count(step, "step", 0)
  s = check_count(seed, "seed", 0)
  start = t * b
  out = np.empty((b,), np.int64)
  filled = 0
  while filled < b:
    epoch, offset = divmod(start + filled, n)
    take = min(b - filled, n - offset)
    out[filled:filled + take] = _epoch_permutation(n, s, epoch)[offset:offset + take]
    filled += take
  return out


def train_eval_split(source: ActivationSource, num_eval: int,
                     seed: int) -> tuple[Subset, Subset]:
  """Splits a source into (train, eval) subsets by a permutation seeded with ``seed``.

  ``num_eval`` rows go to eval (0 allowed); both subsets keep their rows in increasing order, which
  keeps reads from memory-mapped shards local.
  """
  n = source.num_examples
  if not is_int(num_eval) or not 0 <= num_eval < n:
    raise ConfigError(
        f"num_eval={num_eval!r} must be an integer in [0, {n}) for a source of {n} examples: "
        "hold out fewer examples for evaluation")
  perm = np.random.default_rng(check_count(seed, "seed", 0)).permutation(n)
  return Subset(source, np.sort(perm[num_eval:])), Subset(source, np.sort(perm[:num_eval]))


def iterate_batches(source: ActivationSource,
                    batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
  """Yields ``(x, z_or_None)`` batches in row order; the last batch may be smaller (evaluation)."""
  b = check_count(batch_size, "batch_size", 1)
  for start in range(0, source.num_examples, b):
    idx = np.arange(start, min(start + b, source.num_examples))
    yield source.get(idx), source.latents(idx)
