"""SAELens (6.x) SAE directories: `cfg.json` + `sae_weights.safetensors`.

Tensors W_enc (d_in, d_sae), W_dec (d_sae, d_in), b_enc, b_dec, and threshold (d_sae,) for
'jumprelu'. cfg.json names the `architecture` ('standard' = ReLU, 'topk' with `k`, 'jumprelu'),
`apply_b_dec_to_input`, `normalize_activations` (identi reads 'none' only) and `metadata`
(model_name, hook_name, dataset_path, ...). SAELens trains BatchTopK and Matryoshka BatchTopK
SAEs but saves them as 'jumprelu' with their inference threshold broadcast, and identi does the
same. A TopK SAE with `rescale_acts_by_decoder_norm` is read with the decoder norms folded into
the encoder and out of the decoder, which gives SAELens's codes and reconstructions.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from identi import io
from identi.errors import DataError
from identi.formats.base import (SAEWeights, checked_weights, fold_b_dec_into_b_enc,
                                 read_json_file, register_format)

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
#: SAELens architecture -> identi encode rule.
ARCHITECTURES = {"standard": "relu", "topk": "topk", "jumprelu": "jumprelu"}
#: metadata keys identi carries across (others are kept in the imported workdir's record).
METADATA_KEYS = ("model_name", "hook_name", "hook_head_index", "dataset_path", "context_size",
                 "prepend_bos", "model_from_pretrained_kwargs")
SAELENS_VERSION = "6.54.12"  # The release whose files the tests read and write.


@register_format("saelens")
class SAELens:
  """SAELens's `SAE.save_model` / `SAE.load_from_disk` directory."""

  name = "saelens"
  files = (CFG_FILE, WEIGHTS_FILE)

  def read(self, path: str) -> SAEWeights:
    if not os.path.isdir(path):
      raise DataError(f"{path} is not a directory; pass the directory SAELens saved the SAE to "
                      f"(with {CFG_FILE} and {WEIGHTS_FILE})")
    cfg_path, weights_path = os.path.join(path, CFG_FILE), os.path.join(path, WEIGHTS_FILE)
    cfg = read_json_file(cfg_path)
    arch = cfg.get("architecture")
    if arch not in ARCHITECTURES:
      raise DataError(f"{cfg_path}: architecture {arch!r} is not supported; identi reads "
                      f"{', '.join(ARCHITECTURES)} SAEs (BatchTopK and Matryoshka are saved as "
                      "jumprelu)")
    norm = cfg.get("normalize_activations", "none")
    if norm not in ("none", None):
      raise DataError(f"{cfg_path}: normalize_activations is {norm!r}; identi reads SAEs that "
                      "take raw activations ('none'): fold the scaling into the weights first")
    if cfg.get("reshape_activations", "none") not in ("none", None):
      raise DataError(f"{cfg_path}: reshape_activations is {cfg['reshape_activations']!r}; "
                      "identi reads SAEs on flat activations ('none')")
    arrays, _ = io.read_tensors(weights_path)
    metadata = {k: v for k, v in (cfg.get("metadata") or {}).items() if k in METADATA_KEYS}
    metadata["source_format"] = "saelens"
    kind = ARCHITECTURES[arch]
    w = checked_weights(weights_path, kind, arrays,
                        {n: n for n in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold")},
                        k=cfg.get("k"), metadata=metadata)
    for key in ("d_in", "d_sae"):
      if key in cfg and cfg[key] != getattr(w, key):
        raise DataError(f"{cfg_path}: {key} is {cfg[key]} but {weights_path} holds an SAE with "
                        f"{key}={getattr(w, key)}; the files do not belong together")
    b_enc, W_enc, W_dec = w.b_enc, w.W_enc, w.W_dec
    if not cfg.get("apply_b_dec_to_input", True):
      b_enc = fold_b_dec_into_b_enc(b_enc, w.b_dec, W_enc)
    if kind == "topk" and cfg.get("rescale_acts_by_decoder_norm"):
      norms = np.linalg.norm(W_dec.astype(np.float64), axis=1)
      W_enc = (W_enc * norms).astype(np.float32)
      b_enc = (b_enc * norms).astype(np.float32)
      W_dec = (W_dec / norms[:, None]).astype(np.float32)
    return SAEWeights(kind=kind, W_enc=W_enc, b_enc=b_enc, W_dec=W_dec, b_dec=w.b_dec,
                      threshold=w.threshold, k=w.k, metadata=metadata)

  def write(self, weights: SAEWeights, directory: str) -> None:
    arch = {v: k for k, v in ARCHITECTURES.items()}[weights.kind]
    metadata: dict[str, Any] = {"sae_lens_version": SAELENS_VERSION,
                                "sae_lens_training_version": SAELENS_VERSION}
    metadata.update({k: v for k, v in weights.metadata.items() if k in METADATA_KEYS})
    cfg: dict[str, Any] = {
        "architecture": arch, "d_in": weights.d_in, "d_sae": weights.d_sae, "dtype": "float32",
        "device": "cpu", "apply_b_dec_to_input": True, "normalize_activations": "none",
        "reshape_activations": "none", "metadata": metadata}
    if arch == "topk":
      cfg.update(k=weights.k, rescale_acts_by_decoder_norm=False)
    io.write_tensors(os.path.join(directory, WEIGHTS_FILE), weights.arrays())
    io.write_json(os.path.join(directory, CFG_FILE), cfg)
