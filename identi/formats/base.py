"""The common form of an SAE in a file format, and the registry of formats.

Every format reads to and writes from `SAEWeights`: float32 arrays with identi's encode rule on
raw inputs, pre = (x - b_dec) @ W_enc + b_enc, then relu and the kind's gate (top-k per sample for
'topk', pre > threshold for 'jumprelu', nothing for 'relu'), and x_hat = codes @ W_dec + b_dec.
A format whose encoder does not subtract b_dec (Gemma Scope, SAELens with
apply_b_dec_to_input=false) folds it into b_enc on read and out of it on write.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Callable, Protocol

import numpy as np

from identi.errors import ConfigError, DataError

#: The encode rules a file format can express (identi's BatchTopK is written as 'jumprelu').
KINDS = ("relu", "topk", "jumprelu")


@dataclasses.dataclass(frozen=True)
class SAEWeights:
  """An SAE as files hold it: arrays, the encode rule and what is known of where it came from.

  Attributes:
    kind: 'relu', 'topk' or 'jumprelu' (see the module docstring).
    W_enc: (d_in, d_sae). b_enc: (d_sae,). W_dec: (d_sae, d_in). b_dec: (d_in,).
    threshold: (d_sae,) for 'jumprelu', else None.
    k: active latents per sample for 'topk', else None.
    metadata: free-form facts (hook name, model name, data set), kept as strings or numbers.
  """

  kind: str
  W_enc: np.ndarray
  b_enc: np.ndarray
  W_dec: np.ndarray
  b_dec: np.ndarray
  threshold: np.ndarray | None = None
  k: int | None = None
  metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def d_in(self) -> int:
    return int(self.W_enc.shape[0])

  @property
  def d_sae(self) -> int:
    return int(self.W_enc.shape[1])

  def arrays(self) -> dict[str, np.ndarray]:
    """The weight arrays by identi's names (threshold only where the kind has one)."""
    out = {"W_enc": self.W_enc, "b_enc": self.b_enc, "W_dec": self.W_dec, "b_dec": self.b_dec}
    if self.threshold is not None:
      out["threshold"] = self.threshold
    return out


def checked_weights(source: str, kind: str, arrays: dict[str, Any], names: dict[str, str],
                    k: Any = None, metadata: dict[str, Any] | None = None) -> SAEWeights:
  """SAEWeights from a file's arrays, after checking kind, shapes and values.

  `names` maps identi's array names (W_enc, b_enc, W_dec, b_dec, threshold) to the file's keys,
  so that every error names the file (`source`) and the key as the file spells it.
  """
  if kind not in KINDS:
    raise DataError(f"{source}: SAE kind {kind!r} is not supported; identi reads "
                    f"{', '.join(KINDS)} SAEs")
  needed = ["W_enc", "b_enc", "W_dec", "b_dec"] + (["threshold"] if kind == "jumprelu" else [])
  out = {}
  for name in needed:
    key = names[name]
    if key not in arrays:
      found = ", ".join(sorted(arrays)) or "none"
      raise DataError(f"{source} has no tensor {key!r} (found: {found}); a {kind} SAE needs "
                      f"{', '.join(names[n] for n in needed)}")
    a = np.asarray(arrays[key])
    if not np.issubdtype(a.dtype, np.floating):
      raise DataError(f"{source}: tensor {key!r} has dtype {a.dtype}; expected floating point")
    if not np.all(np.isfinite(a)):
      raise DataError(f"{source}: tensor {key!r} holds NaN or Inf values; the SAE is broken, "
                      "re-export it from a healthy checkpoint")
    out[name] = a.astype(np.float32)
  if out["W_enc"].ndim != 2:
    raise DataError(f"{source}: tensor {names['W_enc']!r} has shape {out['W_enc'].shape}; "
                    "expected 2-D (d_in, d_sae)")
  d_in, d_sae = out["W_enc"].shape
  expected = {"b_enc": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,), "threshold": (d_sae,)}
  for name, shape in expected.items():
    if name in out and out[name].shape != shape:
      raise DataError(f"{source}: tensor {names[name]!r} has shape {out[name].shape}; expected "
                      f"{shape} for an SAE with d_in={d_in} and d_sae={d_sae} (from "
                      f"{names['W_enc']!r})")
  if kind == "jumprelu" and np.any(out["threshold"] < 0):
    raise DataError(f"{source}: tensor {names['threshold']!r} has negative entries; JumpReLU "
                    "thresholds must be >= 0")
  if kind == "topk":
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= d_sae:
      raise DataError(f"{source}: k is {k!r}; a TopK SAE needs an integer k in [1, {d_sae}]")
    k = int(k)
  else:
    k = None
  return SAEWeights(kind=kind, k=k, metadata=dict(metadata or {}), **{
      n: out.get(n) for n in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold")})


def fold_b_dec_into_b_enc(b_enc: np.ndarray, b_dec: np.ndarray, W_enc: np.ndarray) -> np.ndarray:
  """b_enc + b_dec @ W_enc (float64 sums): with it, (x - b_dec) @ W_enc gives x @ W_enc + b_enc."""
  return (b_enc.astype(np.float64) + b_dec.astype(np.float64) @ W_enc.astype(np.float64)
          ).astype(np.float32)


def unfold_b_dec_from_b_enc(b_enc: np.ndarray, b_dec: np.ndarray,
                            W_enc: np.ndarray) -> np.ndarray:
  """The inverse of `fold_b_dec_into_b_enc`, for formats whose encoder does not subtract b_dec."""
  return (b_enc.astype(np.float64) - b_dec.astype(np.float64) @ W_enc.astype(np.float64)
          ).astype(np.float32)


def read_json_file(path: str) -> dict[str, Any]:
  """A JSON object file; DataError naming the file when it is missing or malformed."""
  if not os.path.isfile(path):
    raise DataError(f"{path} does not exist; pass the directory the SAE was saved to")
  try:
    with open(path, encoding="utf-8") as f:
      obj = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise DataError(f"{path} is not valid JSON ({e}); re-download or re-export the SAE") from e
  if not isinstance(obj, dict):
    raise DataError(f"{path} holds a JSON {type(obj).__name__}; expected an object")
  return obj


class SAEFormat(Protocol):
  """What a file format provides. `read` takes the path a user passes (a directory or a file);
  `write` creates the format's files in an existing empty directory."""

  name: str
  #: The file names `write` creates, so that readers and docs know the layout.
  files: tuple[str, ...]

  def read(self, path: str) -> SAEWeights: ...

  def write(self, weights: SAEWeights, directory: str) -> None: ...


_FORMATS: dict[str, SAEFormat] = {}


def register_format(name: str) -> Callable[[type], type]:
  """Class decorator: registers an `SAEFormat` implementation under `name`."""

  def register(cls: type) -> type:
    if name in _FORMATS:
      raise ValueError(f"SAE format {name!r} is registered twice")
    instance = cls()
    instance.name = name
    _FORMATS[name] = instance
    return cls

  return register


def format_names() -> tuple[str, ...]:
  return tuple(_FORMATS)


def get_format(name: str) -> SAEFormat:
  """The registered format `name`; ConfigError listing the known ones otherwise."""
  if name not in _FORMATS:
    raise ConfigError(f"unknown SAE format {name!r}; choose one of {', '.join(_FORMATS)}")
  return _FORMATS[name]
