"""SAE file formats against the ecosystem's own code: SAELens, sparsify and Gemma Scope.

`python -m benchmarks.formats_peer [--write_native] [--fixtures=tests/fixtures/ecosystem]`

1. identi SAEs of every kind a format can hold (ReLU, TopK, BatchTopK, JumpReLU, Matryoshka; random weights from a fixed seed,
   with an input scale that is not 1) are exported to SAELens (all kinds), sparsify (TopK) and
   Gemma Scope (JumpReLU, BatchTopK) directories under `FIXTURES/identi/`.
2. In the peer venv (`benchmarks/peers/.venv`, created on first use), SAELens
   (`SAE.load_from_disk`), sparsify (`SparseCoder.load_from_disk`) and the Gemma Scope rule encode
   `inputs.npy` with those files; with --write_native the libraries also write SAEs of their own
   (random weights), each with its codes.
3. identi imports every directory and encodes the same rows. The table: for each SAE, the largest
   difference between identi's codes and the library's, with and without identi's exact
   variables file, and whether identi -> format -> identi gives bit-identical codes.

The files, the peer's codes and `results.json` form the fixture that `make test` checks without
torch (tests/formats/test_ecosystem.py).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import jax
import numpy as np
from absl import app, flags

from benchmarks.peers import saelens_env
from identi import formats, io
from identi import sae as sae_lib
from identi.bin import cli
from identi.train import default_config, load_trained
from identi.train.config import sae_hparams

_FIXTURES = flags.DEFINE_string("fixtures", os.path.join("tests", "fixtures", "ecosystem"),
                                "Fixture directory (created or refreshed).")
_WRITE_NATIVE = flags.DEFINE_bool("write_native", False,
                                  "Let the libraries write new SAEs of their own as well.")

D_IN, D_SAE, K, ROWS = 16, 48, 4, 64
#: (format, identi kind) pairs that identi exports.
EXPORTS = (("saelens", "relu"), ("saelens", "topk"), ("saelens", "batchtopk"),
           ("saelens", "jumprelu"), ("saelens", "matryoshka"), ("sparsify", "topk"), ("gemmascope", "jumprelu"),
           ("gemmascope", "batchtopk"))
#: (format, directory under FIXTURES) of the SAEs the libraries wrote.
NATIVE = (("saelens", "saelens/topk"), ("saelens", "saelens/topk_rescale"),
          ("saelens", "saelens/jumprelu"), ("saelens", "saelens/jumprelu_no_bdec"),
          ("saelens", "saelens/standard"), ("saelens", "saelens/topk_trained"),
          ("saelens", "saelens/batchtopk_trained"), ("saelens", "saelens/matryoshka_trained"),
          ("sparsify", "sparsify/layers.3"),
          ("gemmascope", "gemmascope/layer_3/width_48/average_l0_9"))


def make_workdir(kind: str, workdir: str, seed: int = 0) -> None:
  """An identi SAE workdir of `kind` with random weights: every parameter and statistic in
  play (nonzero biases, input_scale 1.7, thresholds in the pre-activations' range)."""
  config = default_config()
  config.sae.kind, config.sae.d_sae, config.sae.k = kind, D_SAE, K
  model = sae_lib.make_sae(kind, D_IN, D_SAE, **sae_hparams(config))
  rng = np.random.default_rng(seed)
  variables = jax.device_get(model.init(jax.random.key(seed), np.zeros((1, D_IN), np.float32)))
  params = dict(variables["params"])
  params["W_enc"] = (rng.normal(size=(D_IN, D_SAE)) / D_IN ** 0.5).astype(np.float32)
  params["b_enc"] = (0.1 * rng.normal(size=D_SAE)).astype(np.float32)
  w_dec = rng.normal(size=(D_SAE, D_IN))
  params["W_dec"] = (w_dec / np.linalg.norm(w_dec, axis=1, keepdims=True)).astype(np.float32)
  params["b_dec"] = (0.3 * rng.normal(size=D_IN)).astype(np.float32)
  stats = dict(variables["stats"], input_scale=np.float32(1.7))
  if kind == "jumprelu":
    params["log_threshold"] = np.log(rng.uniform(0.3, 0.9, D_SAE)).astype(np.float32)
  if kind in ("batchtopk", "matryoshka"):
    stats["threshold"] = np.float32(0.55)
  formats.workdir.write_workdir(workdir, config, D_IN, {"params": params, "stats": stats},
                                {"format": "synthetic", "seed": seed})


def encode(workdir: str, x: np.ndarray) -> np.ndarray:
  _, model, variables = load_trained(workdir)
  return np.asarray(model.apply(variables, x, method="encode"))


def import_codes(fmt: str, path: str, x: np.ndarray, exact: bool = True) -> np.ndarray:
  """identi's codes of `x` after importing `path` (without the exact variables if not `exact`)."""
  with tempfile.TemporaryDirectory() as tmp:
    if not exact:
      copy = os.path.join(tmp, "files")
      shutil.copytree(path, copy, ignore=shutil.ignore_patterns(formats.SIDECAR_FILE, "*.npy"))
      path = copy
    record = formats.import_sae(fmt, path, os.path.join(tmp, "w"))
    assert record["exact"] == exact, record
    return encode(os.path.join(tmp, "w"), x)


def run(fixtures: str, write_native: bool) -> dict:
  os.makedirs(fixtures, exist_ok=True)
  rng = np.random.default_rng(123)
  x = rng.normal(size=(ROWS, D_IN)).astype(np.float32)
  io.save_npy(os.path.join(fixtures, "inputs.npy"), x)
  originals = {}
  with tempfile.TemporaryDirectory() as tmp:
    for kind in sorted({k for _, k in EXPORTS}):
      make_workdir(kind, os.path.join(tmp, kind))
      originals[kind] = encode(os.path.join(tmp, kind), x)
    shutil.rmtree(os.path.join(fixtures, "identi"), ignore_errors=True)
    for fmt, kind in EXPORTS:
      formats.export_sae(os.path.join(tmp, kind), fmt,
                         os.path.join(fixtures, "identi", f"{fmt}_{kind}"),
                         {"hook_name": "blocks.3.hook_resid_post", "model_name": "fixture-model"})
  python = saelens_env.ensure_env(os.getcwd())
  cmd = [python, os.path.join("benchmarks", "peers", "formats_codes.py"),
         f"--fixtures={fixtures}"] + (["--write_native"] if write_native else [])
  peer = saelens_env.run_json(cmd)
  rows = []
  for fmt, kind in EXPORTS:
    path = os.path.join(fixtures, "identi", f"{fmt}_{kind}")
    peer_codes = np.load(os.path.join(path, "peer_codes.npy"))
    exact = import_codes(fmt, path, x)
    rows.append({"sae": f"identi {kind}", "format": fmt, "direction": "export",
                 "round_trip_bit_identical": bool(np.array_equal(exact, originals[kind])),
                 "max_abs_diff": float(np.max(np.abs(originals[kind] - peer_codes))),
                 "max_abs_diff_weights_only": float(np.max(np.abs(
                     import_codes(fmt, path, x, exact=False) - peer_codes))),
                 "active_fraction": float(np.mean(peer_codes > 0))})
  for fmt, rel in NATIVE:
    path = os.path.join(fixtures, rel)
    codes = np.load(os.path.join(path, "codes.npy"))
    rows.append({"sae": rel, "format": fmt, "direction": "import",
                 "max_abs_diff_weights_only": float(np.max(np.abs(
                     import_codes(fmt, path, x, exact=False) - codes))),
                 "active_fraction": float(np.mean(codes > 0))})
  result = {"rows": rows, "versions": peer["versions"], "inputs": [ROWS, D_IN], "d_sae": D_SAE}
  io.write_json(os.path.join(fixtures, "results.json"), result)
  return result


def main(argv):
  del argv
  result = run(_FIXTURES.value, _WRITE_NATIVE.value)
  print(cli.format_table(result["rows"], ["sae", "format", "direction", "round_trip_bit_identical",
                                          "max_abs_diff", "max_abs_diff_weights_only",
                                          "active_fraction"]))
  print(json.dumps(result["versions"]))


if __name__ == "__main__":
  app.run(main)
