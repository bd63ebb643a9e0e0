"""The MCC-at-scale benchmark runs at toy size and reports sane fields (no timing is asserted)."""

import json

from helpers import run_module


def test_benchmark_smoke(tmp_path):
  out = tmp_path / "bench.json"
  proc = run_module("benchmarks.mcc_scale", "--preset=smoke", f"--output={out}")
  assert "samples_per_s" in proc.stdout and "matching_s" in proc.stdout
  with open(out) as f:
    result = json.load(f)
  assert (result["concepts"], result["units"], result["samples"]) == (64, 64, 2048)
  assert result["devices"] == 8  # Batches sharded over the 8 forced CPU devices.
  assert result["mcc"] > 0.85 and abs(result["mcc"] - result["expected_mcc"]) < 0.03
  assert result["own_unit_matched"] == 1.0
  assert result["matcher"] == "dense"
  assert result["accumulator_gib"] * 2**30 >= 64 * 64 * 4
  assert result["compile_s"] > 0 and result["samples_per_s"] > 0 and result["peak_rss_gib"] > 0


def test_samples_must_fill_whole_batches_of_both_halves():
  proc = run_module("benchmarks.mcc_scale", "--preset=smoke", "--samples=1000", check=False)
  assert proc.returncode == 2 and "--samples is 1000" in proc.stderr
