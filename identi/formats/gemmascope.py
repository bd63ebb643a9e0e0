"""Gemma Scope's JumpReLU SAEs: `params.npz` (or `params.safetensors`) with W_enc (d_in, d_sae),
W_dec (d_sae, d_in), b_enc, b_dec and threshold; Gemma Scope 2 spells them in lower case
(w_enc, ...). Its encoder does not subtract b_dec: pre = x @ W_enc + b_enc, codes = relu(pre)
where pre > threshold.
"""

from __future__ import annotations

import os

import numpy as np

from identi import io
from identi.errors import DataError
from identi.formats.base import (SAEWeights, checked_weights, fold_b_dec_into_b_enc,
                                 register_format, unfold_b_dec_from_b_enc)

PARAMS_FILES = ("params.npz", "params.safetensors")
NAMES = ("W_enc", "b_enc", "W_dec", "b_dec", "threshold")


def params_path(path: str) -> str:
  """The params file of `path` (the file itself, or the one a release directory holds)."""
  if os.path.isdir(path):
    for name in PARAMS_FILES:
      if os.path.isfile(os.path.join(path, name)):
        return os.path.join(path, name)
    raise DataError(f"{path} holds neither {' nor '.join(PARAMS_FILES)}; pass a Gemma Scope "
                    "release directory or its params file")
  return path


@register_format("gemmascope")
class GemmaScope:
  """Gemma Scope (and Gemma Scope 2) JumpReLU parameter files."""

  name = "gemmascope"
  files = ("params.npz",)

  def read(self, path: str) -> SAEWeights:
    path = params_path(path)
    arrays, _ = io.read_tensors(path)
    lower = "w_enc" in arrays and "W_enc" not in arrays
    names = {n: (n.lower() if lower else n) for n in NAMES}
    w = checked_weights(path, "jumprelu", arrays, names)
    return SAEWeights(kind="jumprelu", W_enc=w.W_enc, W_dec=w.W_dec, b_dec=w.b_dec,
                      b_enc=fold_b_dec_into_b_enc(w.b_enc, w.b_dec, w.W_enc),
                      threshold=w.threshold, metadata={"source_format": "gemmascope"})

  def write(self, weights: SAEWeights, directory: str) -> None:
    if weights.kind == "topk":
      raise DataError("Gemma Scope files hold JumpReLU SAEs and cannot express per-sample top-k; "
                      "export this TopK SAE with --format=saelens or --format=sparsify")
    threshold = (weights.threshold if weights.threshold is not None
                 else np.zeros(weights.d_sae, np.float32))  # ReLU = JumpReLU at threshold 0.
    arrays = {"W_enc": weights.W_enc, "W_dec": weights.W_dec, "b_dec": weights.b_dec,
              "b_enc": unfold_b_dec_from_b_enc(weights.b_enc, weights.b_dec, weights.W_enc),
              "threshold": threshold}
    with io.atomic_path(os.path.join(directory, self.files[0])) as tmp:
      with open(tmp, "wb") as f:
        np.savez(f, **arrays)
