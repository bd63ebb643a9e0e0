"""Export of trained SAEs to plain arrays that work on raw activations without identi."""

from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np

from identi.errors import DataError

_REQUIRED = {"params": ("W_enc", "b_enc", "W_dec", "b_dec"), "stats": ("input_scale",)}


def _check_variables(variables: Mapping[str, Any]) -> None:
  for collection, names in _REQUIRED.items():
    have = variables.get(collection, {})
    missing = [n for n in names if n not in have]
    if missing:
      raise DataError(f"SAE variables lack {collection} {missing}; pass the full variables dict "
                      "({'params': ..., 'stats': ...}) returned by init_sae or the trainer")


def fold_input_scale(variables: Mapping[str, Any]) -> dict[str, Any]:
  """Returns equivalent variables with input_scale 1.

  With s = input_scale: W_enc' = s W_enc, b_dec' = b_dec / s, W_dec' = W_dec / s, so encode and
  decode of raw inputs give the same codes and reconstructions. Pre-activations are unchanged, so
  thresholds stay as they are.
  """
  _check_variables(variables)
  params, stats = variables["params"], variables["stats"]
  s = stats["input_scale"]
  folded = {**params, "W_enc": params["W_enc"] * s, "b_dec": params["b_dec"] / s,
            "W_dec": params["W_dec"] / s}
  return {**variables, "params": folded, "stats": {**stats, "input_scale": jnp.ones_like(s)}}


def export_weights(variables: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """Folded float32 numpy weights W_enc, b_enc, W_dec, b_dec (+ 'threshold' where the type has one).

  On raw x: pre = (x - b_dec) @ W_enc + b_enc; codes = relu(pre) then the type's gate (top-k per
  sample for TopK; pre > threshold for BatchTopK and JumpReLU, threshold per latent for JumpReLU
  and a scalar for BatchTopK); x_hat = codes @ W_dec + b_dec.
  """
  folded = fold_input_scale(variables)
  params, stats = folded["params"], folded["stats"]
  out = {n: np.asarray(params[n], np.float32) for n in _REQUIRED["params"]}
  if "log_threshold" in params:
    out["threshold"] = np.asarray(jnp.exp(params["log_threshold"]), np.float32)
  elif "threshold" in stats:
    out["threshold"] = np.asarray(stats["threshold"], np.float32)
  return out
