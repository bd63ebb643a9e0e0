"""sparsify's TopK SAEs: a directory with `cfg.json` (k, num_latents, ...; d_in) and
`sae.safetensors` (encoder.weight (d_sae, d_in), encoder.bias, W_dec (d_sae, d_in), b_dec).
Its encoder subtracts b_dec: codes = top-k of relu((x - b_dec) @ encoder.weight.T + encoder.bias).
A training run saves one such directory per hook point.
"""

from __future__ import annotations

import os

import numpy as np

from identi import io
from identi.errors import DataError
from identi.formats.base import SAEWeights, checked_weights, read_json_file, register_format

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae.safetensors"


def sae_dir(path: str) -> str:
  """`path`, or the one hook-point directory under it; DataError listing them if several."""
  if os.path.isfile(os.path.join(path, CFG_FILE)):
    return path
  if not os.path.isdir(path):
    raise DataError(f"{path} does not exist; pass a sparsify SAE directory (with {CFG_FILE} and "
                    f"{WEIGHTS_FILE})")
  hooks = sorted(d for d in os.listdir(path) if os.path.isfile(os.path.join(path, d, CFG_FILE)))
  if len(hooks) == 1:
    return os.path.join(path, hooks[0])
  if hooks:
    raise DataError(f"{path} holds SAEs for several hook points ({', '.join(hooks)}); pass one, "
                    f"e.g. --input={os.path.join(path, hooks[0])}")
  raise DataError(f"{path} has no {CFG_FILE}; pass a sparsify SAE directory")


@register_format("sparsify")
class Sparsify:
  """sparsify (EleutherAI) TopK SAE directories."""

  name = "sparsify"
  files = (CFG_FILE, WEIGHTS_FILE)

  def read(self, path: str) -> SAEWeights:
    path = sae_dir(path)
    cfg_path, weights_path = os.path.join(path, CFG_FILE), os.path.join(path, WEIGHTS_FILE)
    cfg = read_json_file(cfg_path)
    activation = cfg.get("activation", "topk")
    if activation != "topk":
      raise DataError(f"{cfg_path}: activation {activation!r} is not supported; identi reads "
                      "sparsify's 'topk' SAEs")
    for flag in ("skip_connection", "transcode"):
      if cfg.get(flag):
        raise DataError(f"{cfg_path}: {flag} is true (a transcoder or skip connection); identi "
                        "reads plain sparsify SAEs only")
    arrays, _ = io.read_tensors(weights_path)
    if "W_skip" in arrays:
      raise DataError(f"{weights_path} has a 'W_skip' tensor; identi reads plain sparsify SAEs "
                      "only")
    if "encoder.weight" in arrays:
      arrays = dict(arrays, **{"encoder.weight": np.asarray(arrays["encoder.weight"]).T})
    w = checked_weights(weights_path, "topk", arrays,
                        {"W_enc": "encoder.weight", "b_enc": "encoder.bias", "W_dec": "W_dec",
                         "b_dec": "b_dec"}, k=cfg.get("k"),
                        metadata={"source_format": "sparsify",
                                  "hook_name": os.path.basename(os.path.normpath(path))})
    if "d_in" in cfg and cfg["d_in"] != w.d_in:
      raise DataError(f"{cfg_path}: d_in is {cfg['d_in']} but {weights_path} holds an SAE with "
                      f"d_in={w.d_in}; the files do not belong together")
    return w

  def write(self, weights: SAEWeights, directory: str) -> None:
    if weights.kind != "topk":
      raise DataError(f"sparsify files hold TopK SAEs; this SAE is {weights.kind}: export it with "
                      "--format=saelens (or --format=gemmascope)")
    cfg = {"activation": "topk", "expansion_factor": max(1, weights.d_sae // weights.d_in),
           "normalize_decoder": True, "num_latents": weights.d_sae, "k": weights.k,
           "multi_topk": False, "skip_connection": False, "transcode": False,
           "d_in": weights.d_in}
    io.write_tensors(os.path.join(directory, WEIGHTS_FILE),
                     {"encoder.weight": weights.W_enc.T, "encoder.bias": weights.b_enc,
                      "W_dec": weights.W_dec, "b_dec": weights.b_dec})
    io.write_json(os.path.join(directory, CFG_FILE), cfg)
