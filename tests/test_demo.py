"""The demo binary on its smoke config: a table with MCC and a figure on disk."""

import json
import os

from conftest import ROOT, run_module


def test_demo_smoke_prints_table_and_writes_figure(tmp_path):
  proc = run_module("identi.bin.demo", f"--config={ROOT}/configs/demo.py:smoke",
                    f"--workdir={tmp_path}")
  header = [l for l in proc.stdout.splitlines() if l.strip().startswith("sae")]
  assert header and "mcc" in header[0] and "fvu" in header[0]
  for ext in ("png", "pdf"):
    assert os.path.getsize(tmp_path / f"identifiability.{ext}") > 1000
  with open(tmp_path / "demo.json") as f:
    result = json.load(f)
  assert len(result["per_concept"]) == 32
  assert abs(result["mcc"] - sum(result["per_concept"]) / 32) < 1e-6
