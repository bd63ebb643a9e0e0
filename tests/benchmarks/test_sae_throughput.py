"""The throughput benchmark runs at toy size and reports every kind (no timing is asserted)."""

import json

from conftest import run_module


def test_benchmark_smoke(tmp_path):
  out = tmp_path / "bench.json"
  proc = run_module("benchmarks.sae_throughput", "--preset=smoke", "--repeats=2",
                    f"--output={out}")
  assert "tokens_per_s" in proc.stdout
  with open(out) as f:
    result = json.load(f)
  assert [r["kind"] for r in result["rows"]] == ["topk", "batchtopk", "jumprelu", "relu"]
  for row in result["rows"]:
    assert row["tokens_per_s"] > 0 and row["compile_s"] > 0
    assert row["necessary_flops"] == 4 * 64 * 16 * 64
