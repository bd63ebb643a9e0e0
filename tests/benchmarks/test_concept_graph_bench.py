"""The concept-graph benchmark runs at toy size and reports times and F1 (no timing is asserted)."""

import json

from helpers import run_module


def test_benchmark_smoke(tmp_path):
  out = tmp_path / "bench.json"
  proc = run_module("benchmarks.concept_graph", "--preset=smoke", "--repeats=2", f"--output={out}")
  assert "steady_s" in proc.stdout and "f1" in proc.stdout
  with open(out) as f:
    result = json.load(f)
  assert (result["units"], result["levels"], result["samples"]) == (64, 3, 2048)
  assert result["compile_s"] > 0 and result["steady_s"] > 0
  assert [p["pair"] for p in result["pairs"]] == ["1->2", "2->3"]
  assert result["precision"] > 0.9 and result["f1"] > 0.8
