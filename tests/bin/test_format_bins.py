"""identi.bin.export and identi.bin.import_sae: a trained workdir leaves as SAELens files and comes
back as a workdir that encodes bit-identically."""

import json

import numpy as np

from helpers import run_module
from identi.train import load_trained


def test_export_then_import(tmp_path, trained_workdir):
  out = tmp_path / "saelens"
  proc = run_module("identi.bin.export", f"--workdir={trained_workdir}", "--format=saelens",
                    f"--output={out}", "--hook_name=blocks.2.hook_resid_post", devices=1)
  assert "wrote the topk SAE as saelens (topk)" in proc.stdout
  assert json.loads((out / "cfg.json").read_text())["metadata"]["hook_name"] == (
      "blocks.2.hook_resid_post")
  proc = run_module("identi.bin.import_sae", "--format=saelens", f"--input={out}",
                    f"--workdir={tmp_path / 'w'}", devices=1)
  assert "imported a topk SAE (d_in=16, d_sae=64)" in proc.stdout
  assert "exact identi variables" in proc.stdout
  x = np.random.default_rng(0).normal(size=(20, 16)).astype(np.float32)
  codes = []
  for workdir in (trained_workdir, tmp_path / "w"):
    _, model, variables = load_trained(str(workdir))
    codes.append(np.asarray(model.apply(variables, x, method="encode")))
  np.testing.assert_array_equal(*codes)
