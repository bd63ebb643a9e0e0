"""Atomic file output: a reader never sees a half-written JSON, JSONL, .npy or binary file."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import Any, Iterable, Iterator

import numpy as np

from identi.errors import DataError


def new_file_mode() -> int:
  """The permissions `open()` gives a new file (0o666 less the process umask), read without
  changing the umask. Temporary files start private (0o600); atomic writes set this mode on them,
  so a replaced output is as readable as one written in place."""
  try:
    with open("/proc/self/status", encoding="ascii") as f:
      for line in f:
        if line.startswith("Umask:"):
          return 0o666 & ~int(line.split()[1], 8)
  except (OSError, ValueError):
    pass
  return 0o644


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
  """A temporary file beside `path` to write (for writers that need a path, such as a memmap),
  with the permissions a new file gets; moved onto `path` when the block ends without an error,
  removed otherwise."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  # The name ends like `path` (".tmp-<random>-codes.npy"): writers such as np.save add a suffix
  # that is missing.
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix="-" + os.path.basename(path))
  try:
    os.fchmod(fd, new_file_mode())
    os.close(fd)
    yield tmp
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def _atomic_write(path, write) -> None:
  with atomic_path(path) as tmp, open(tmp, "wb") as f:
    write(f)
    f.flush()
    os.fsync(f.fileno())


def write_json(path: str, obj: Any) -> None:
  """Writes `obj` as indented JSON, atomically."""
  data = (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()
  _atomic_write(path, lambda f: f.write(data))


def write_bytes(path: str, data: bytes) -> None:
  """Writes `data` to `path`, atomically."""
  _atomic_write(path, lambda f: f.write(data))


def write_jsonl(path: str, records: Iterable[dict[str, Any]]) -> None:
  """Rewrites a JSONL file with `records`, atomically."""
  data = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode()
  _atomic_write(path, lambda f: f.write(data))


def append_jsonl(path: str, record: dict[str, Any]) -> None:
  """Appends one record as a single line (one write call, so a kill leaves whole lines)."""
  with open(path, "a", encoding="utf-8") as f:
    f.write(json.dumps(record, sort_keys=True) + "\n")
    f.flush()


def read_jsonl(path: str) -> list[dict[str, Any]]:
  """Reads a JSONL file, skipping a torn last line left by a killed writer."""
  if not os.path.exists(path):
    return []
  records = []
  with open(path, encoding="utf-8") as f:
    for line in f:
      try:
        records.append(json.loads(line))
      except json.JSONDecodeError:
        break
  return records


def save_npy(path, array: np.ndarray) -> None:
  """Saves an array as .npy, atomically (the temp name never ends in .npy)."""
  _atomic_write(path, lambda f: np.save(f, np.asarray(array), allow_pickle=False))


def write_tensors(path: str, tensors: dict[str, np.ndarray],
                  metadata: dict[str, str] | None = None) -> None:
  """Writes named arrays as a safetensors file (the ecosystem's weight format), atomically."""
  from safetensors.numpy import save  # pylint: disable=import-outside-toplevel

  arrays = {k: np.array(v, order="C") for k, v in tensors.items()}  # 0-d stays 0-d
  data = save(arrays, metadata=metadata)
  _atomic_write(path, lambda f: f.write(data))


def read_tensors(path: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
  """The arrays and string metadata of a .safetensors or .npz file.

  Raises DataError naming the file when it is missing, truncated or not in either format.
  """
  from safetensors import SafetensorError  # pylint: disable=import-outside-toplevel
  from safetensors.numpy import load  # pylint: disable=import-outside-toplevel

  if not os.path.isfile(path):
    raise DataError(f"{path} does not exist; pass the path of the weights file")
  try:
    if path.endswith(".npz"):
      with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}, {}
    with open(path, "rb") as f:
      data = f.read()
    tensors = load(data)
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + header_len])
    return tensors, dict(header.get("__metadata__") or {})
  except (SafetensorError, ValueError, OSError, EOFError) as e:
    detail = " ".join(str(e).split())[:200]
    raise DataError(f"{path} is not a readable {'.npz' if path.endswith('.npz') else 'safetensors'}"
                    f" file ({type(e).__name__}: {detail}); re-download or re-export it") from e
