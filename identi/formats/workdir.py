"""Moving SAEs between identi workdirs and the ecosystem's file formats.

`export_sae(workdir, format, output)` writes a trained (or imported) SAE in a format, with
identi's input scale folded into the weights, plus `identi_sae.safetensors`: the exact, unfolded
variables and the files' sha256, which the other tools ignore. `import_sae(format, path,
workdir)` creates a workdir that `identi.train.load_trained` (and so `encode`, `evaluate` and the
dashboard) accepts. When the files still carry a matching `identi_sae.safetensors` (they were
exported by identi and not changed since), the import takes those exact variables, so identi ->
format -> identi gives bit-identical codes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from typing import Any, Mapping

import jax
import numpy as np

from identi import io
from identi import sae as sae_lib
from identi.errors import ConfigError, DataError
from identi.formats.base import SAEWeights, get_format
from identi.train import minimality, runtime
from identi.train.config import default_config, sae_hparams
from identi.train.inference import IMPORTED_WEIGHTS, load_trained
from identi.train.runtime import IMPORTED_KEY

#: identi SAE kind -> the encode rule the formats write it with (MP-SAE has none).
EXPORT_RULES = {"relu": "relu", "topk": "topk", "jumprelu": "jumprelu", "batchtopk": "jumprelu",
                "matryoshka": "jumprelu"}
#: The exact identi variables beside the format's own files.
SIDECAR_FILE = "identi_sae.safetensors"
logger = logging.getLogger(__name__)


def weights_of(kind: str, model: Any, variables: Mapping[str, Any],
               metadata: Mapping[str, Any] | None = None) -> SAEWeights:
  """The format-neutral weights of an identi SAE (input scale folded in; the scalar inference
  threshold of (Matryoshka) BatchTopK broadcast to a per-latent JumpReLU threshold)."""
  if kind not in EXPORT_RULES:
    raise DataError(f"an SAE of kind {kind!r} has no counterpart in the toolkits' formats (its "
                    f"encoder is not one of {', '.join(sorted(set(EXPORT_RULES.values())))}); "
                    "export a relu, topk, batchtopk, jumprelu or matryoshka SAE")
  w = sae_lib.export_weights(variables)
  threshold = w.get("threshold")
  if threshold is not None and np.ndim(threshold) == 0:  # One inference threshold for all.
    threshold = np.full((model.d_sae,), threshold, np.float32)
  rule = EXPORT_RULES[kind]
  return SAEWeights(kind=rule, W_enc=w["W_enc"], b_enc=w["b_enc"], W_dec=w["W_dec"],
                    b_dec=w["b_dec"], threshold=threshold,
                    k=int(model.k) if rule == "topk" else None, metadata=dict(metadata or {}))


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def _new_output_dir(output: str) -> str:
  """A temporary directory beside `output` (which must not exist or be empty)."""
  output = os.path.abspath(output)
  if os.path.exists(output) and (not os.path.isdir(output) or os.listdir(output)):
    raise ConfigError(f"output {output} already exists and is not empty; choose a new --output "
                      "or delete it")
  parent = os.path.dirname(output)
  os.makedirs(parent, exist_ok=True)
  return tempfile.mkdtemp(dir=parent, prefix=".tmp-" + os.path.basename(output) + "-")


def _publish_dir(tmp: str, output: str) -> None:
  """Moves the finished temporary directory onto `output` (an empty directory is replaced)."""
  os.chmod(tmp, 0o777 & ~(0o666 ^ io.new_file_mode()) | 0o111)
  if os.path.isdir(output):
    os.rmdir(output)
  os.rename(tmp, output)


def export_sae(workdir: str, format_name: str, output: str,
               metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
  """Writes the SAE of `workdir` to the new directory `output` in `format_name`; returns a record
  (format, output, kind, files). `metadata` (hook_name, model_name, dataset_path) is added to
  what the workdir already knows. The directory appears complete or not at all."""
  fmt = get_format(format_name)
  config, model, variables = load_trained(workdir)
  kind = minimality.final_kind(config)
  known = dict(runtime.load_run(os.path.abspath(workdir)).get(IMPORTED_KEY, {}).get("metadata")
               or {})
  known.update({k: v for k, v in (metadata or {}).items() if v not in (None, "")})
  weights = weights_of(kind, model, variables, known)
  tmp = _new_output_dir(output)
  try:
    fmt.write(weights, tmp)
    hashes = {name: _sha256(os.path.join(tmp, name)) for name in fmt.files}
    # The SAE the workdir serves (after a minimality stage: its JumpReLU at the stage's width);
    # the stage's own arrays (its atoms and ancestor map) are not part of the SAE.
    sae = {**config.sae.to_dict(), "kind": kind, "d_sae": model.d_sae}
    spec = {"kind": kind, "d_in": model.d_in, "d_sae": model.d_sae, "sae": sae,
            "format": fmt.name, "sha256": hashes}
    sae_lib.save_variables(os.path.join(tmp, SIDECAR_FILE),
                           jax.device_get({c: variables[c] for c in ("params", "stats")}), spec)
    _publish_dir(tmp, os.path.abspath(output))
  finally:
    if os.path.isdir(tmp):
      shutil.rmtree(tmp)
  return {"format": fmt.name, "output": os.path.abspath(output), "kind": kind,
          "rule": weights.kind, "files": list(fmt.files) + [SIDECAR_FILE]}


def _exact_variables(fmt, path: str):
  """(variables, spec) from a matching sidecar beside the format's files at `path`, or None."""
  directory = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
  sidecar = os.path.join(directory, SIDECAR_FILE)
  if not os.path.isfile(sidecar):
    return None
  variables, spec, _ = sae_lib.load_variables(sidecar)
  hashes = spec.get("sha256") or {}
  same = (spec.get("format") == fmt.name and hashes and all(
      os.path.isfile(os.path.join(directory, n)) and _sha256(os.path.join(directory, n)) == h
      for n, h in hashes.items()))
  if not same:
    logger.warning("%s does not match the %s files beside it (changed after export?); "
                   "importing the format's weights instead", sidecar, fmt.name)
    return None
  return variables, spec


def _variables_of(weights: SAEWeights) -> tuple[dict[str, Any], dict[str, Any]]:
  """identi variables (input scale 1) and the sae config section for format weights."""
  params = {"W_enc": weights.W_enc, "b_enc": weights.b_enc, "W_dec": weights.W_dec,
            "b_dec": weights.b_dec}
  sae = {"kind": weights.kind, "d_sae": weights.d_sae}
  if weights.kind == "jumprelu":
    with np.errstate(divide="ignore"):  # A threshold of 0 is log 0 = -inf: exp gives 0 back.
      params["log_threshold"] = np.log(weights.threshold.astype(np.float64)).astype(np.float32)
  if weights.kind == "topk":
    sae["k"] = weights.k
    # The imported decoder rows keep their norms: training would renormalise them.
    sae["normalize_decoder"] = False
  stats = {"input_scale": np.ones((), np.float32)}
  return {"params": params, "stats": stats}, sae


def write_workdir(workdir: str, config, d_in: int, variables: Mapping[str, Any],
                  record: Mapping[str, Any]) -> None:
  """Writes an SAE workdir that `identi.train.load_trained` reads: the exact `variables` of the
  SAE that `config.sae` describes, and run.json with `record` (where the SAE came from). run.json
  comes last: a directory without it is no workdir yet, so a killed import is simply redone."""
  os.makedirs(workdir, exist_ok=True)
  sae_lib.save_variables(os.path.join(workdir, IMPORTED_WEIGHTS), jax.device_get(variables),
                         {"kind": config.sae.kind, "d_in": d_in, "d_sae": config.sae.d_sae,
                          "sae": config.sae.to_dict()})
  io.write_json(os.path.join(workdir, runtime.RUN_FILE),
                {"config": config.to_dict(), "d_in": d_in, IMPORTED_KEY: dict(record)})


def import_sae(format_name: str, path: str, workdir: str) -> dict[str, Any]:
  """Creates the workdir `workdir` from the SAE at `path` in `format_name`; returns its record
  (format, path, kind, d_in, d_sae, exact, metadata). Refuses a workdir that holds a run."""
  fmt = get_format(format_name)
  workdir = os.path.abspath(workdir)
  if os.path.exists(os.path.join(workdir, runtime.RUN_FILE)):
    raise ConfigError(f"{workdir} already holds a run; import into a new --workdir")
  weights = fmt.read(path)
  exact = _exact_variables(fmt, path)
  if exact is not None:
    variables, spec = exact
    sae_section, d_in = dict(spec["sae"]), int(spec["d_in"])
    metadata = dict(weights.metadata)
  else:
    variables, sae_section = _variables_of(weights)
    d_in, metadata = weights.d_in, dict(weights.metadata)
  config = default_config()
  for key, value in sae_section.items():
    if key in config.sae:
      config.sae[key] = value
  model = sae_lib.make_sae(config.sae.kind, d_in, config.sae.d_sae,
                           **sae_hparams(config))
  expected = jax.eval_shape(lambda: model.init(jax.random.key(0), np.zeros((1, d_in), np.float32)))
  sae_lib.check_variables_like(variables, expected, os.path.abspath(path))
  record = {"format": fmt.name, "path": os.path.abspath(path), "kind": config.sae.kind,
            "d_in": d_in, "d_sae": config.sae.d_sae, "exact": exact is not None,
            "metadata": metadata}
  write_workdir(workdir, config, d_in, variables, record)
  return record

