"""Export of trained SAEs: plain arrays that work on raw activations without identi, and exact
variable files (`save_variables` / `load_variables`)."""

import json
from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np

from identi import io
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


#: Metadata key of `save_variables` files that holds the SAE's kind and hyper-parameters.
SAE_SPEC_KEY = "identi_sae"


def save_variables(path: str, variables: Mapping[str, Any], spec: Mapping[str, Any],
                   metadata: Mapping[str, str] | None = None) -> None:
  """Writes SAE variables exactly (every collection, unfolded) as safetensors, atomically.

  `spec` (JSON-able: kind, d_in, d_sae, hyper-parameters) is stored in the file's metadata under
  SAE_SPEC_KEY, beside `metadata`. `load_variables` reads the file back bit for bit.
  """
  _check_variables(variables)
  tensors = {f"{collection}/{name}": np.asarray(value)
             for collection, group in variables.items() for name, value in group.items()}
  io.write_tensors(path, tensors, {**(metadata or {}), SAE_SPEC_KEY: json.dumps(dict(spec))})


def load_variables(path: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
  """(variables, spec, metadata) of a `save_variables` file; DataError if it is not one."""
  tensors, metadata = io.read_tensors(path)
  if SAE_SPEC_KEY not in metadata:
    raise DataError(f"{path} is not an identi SAE file (no {SAE_SPEC_KEY!r} metadata); write it "
                    "with identi.sae.save_variables")
  try:
    spec = json.loads(metadata.pop(SAE_SPEC_KEY))
  except json.JSONDecodeError as e:
    raise DataError(f"{path}: the {SAE_SPEC_KEY!r} metadata is not JSON ({e})") from e
  variables: dict[str, dict[str, Any]] = {}
  for key, value in tensors.items():
    collection, _, name = key.partition("/")
    variables.setdefault(collection, {})[name] = value
  _check_variables(variables)
  return variables, spec, metadata


def check_variables_like(variables: Mapping[str, Any], expected: Mapping[str, Any],
                         source: str) -> None:
  """DataError naming the first array of `variables` whose name, shape or dtype differs from
  `expected` (e.g. `jax.eval_shape` of the module's init)."""
  for collection, group in expected.items():
    for name, ref in group.items():
      have = variables.get(collection, {}).get(name)
      if have is None:
        raise DataError(f"{source} lacks {collection}/{name}; the file does not hold this SAE "
                        "kind")
      if tuple(np.shape(have)) != tuple(ref.shape) or np.asarray(have).dtype != ref.dtype:
        raise DataError(f"{source}: {collection}/{name} has shape {tuple(np.shape(have))} "
                        f"{np.asarray(have).dtype}; the SAE needs {tuple(ref.shape)} {ref.dtype}")
    extra = set(variables.get(collection, {})) - set(group)
    if extra:
      raise DataError(f"{source} has unexpected arrays {collection}/{sorted(extra)[0]}; the file "
                      "holds another SAE kind")
