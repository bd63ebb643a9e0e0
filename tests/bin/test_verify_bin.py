"""identi.bin.verify on the smoke config prints the method table."""

from conftest import ROOT, run_module


def test_verify_binary_prints_table(tmp_path):
  proc = run_module("identi.bin.verify", f"--config={ROOT}/configs/identify_hsm.py:smoke",
                    f"--workdir={tmp_path}", "--config.methods=topk,pca")
  lines = proc.stdout.splitlines()
  header = next(l for l in lines if l.strip().startswith("name"))
  assert "mcc_minimal" in header
  assert any(l.strip().startswith("topk") for l in lines)
  assert any(l.strip().startswith("pca") for l in lines)
  assert (tmp_path / "results.json").exists()
