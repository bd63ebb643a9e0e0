"""identi.bin.identify on the smoke config prints the method table (resuming the session's run)."""

import shutil

import pytest

from helpers import ROOT, run_module

pytestmark = pytest.mark.xdist_group("identify")


def test_identify_binary_prints_table(identify_run, tmp_path):
  workdir = tmp_path / "w"
  shutil.copytree(identify_run.workdir, workdir)  # The binary resumes the finished SAEs.
  proc = run_module("identi.bin.identify", f"--config={ROOT}/configs/identify_hsm.py:smoke",
                    f"--workdir={workdir}", "--config.methods=topk,pca")
  lines = proc.stdout.splitlines()
  header = next(l for l in lines if l.strip().startswith("name"))
  assert "mcc_minimal" in header
  topk = next(l for l in lines if l.strip().startswith("topk")).split()
  expected = next(r for r in identify_run.results["records"] if r["name"] == "topk")
  assert float(topk[1]) == pytest.approx(expected["mcc"], abs=1e-3)  # Same run, same score.
  assert any(l.strip().startswith("pca") for l in lines)
  assert (workdir / "results.json").exists()
