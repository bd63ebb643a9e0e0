"""The throughput benchmark runs at toy size and reports every kind (no timing is asserted)."""

import json

from helpers import run_module


def test_benchmark_smoke(tmp_path):
  out = tmp_path / "bench.json"
  proc = run_module("benchmarks.sae_throughput", "--preset=smoke", "--repeats=2",
                    "--kinds=topk,jumprelu", "--dtypes=float32,bfloat16", f"--output={out}")
  assert "tokens_per_s" in proc.stdout and "bfloat16" in proc.stdout
  with open(out) as f:
    result = json.load(f)
  kinds = ["topk", "jumprelu"]  # A k-sparse and a thresholded kind: every code path of the table.
  assert [(r["kind"], r["dtype"]) for r in result["rows"]] == [
      (kind, dtype) for kind in kinds for dtype in ("float32", "bfloat16")]
  peaks = result["matmul_flops_per_s_by_dtype"]
  assert set(peaks) == {"float32", "bfloat16"} and peaks["float32"] == result["matmul_flops_per_s"]
  for row in result["rows"]:
    assert row["tokens_per_s"] > 0 and row["compile_s"] > 0
    assert row["necessary_flops"] == 4 * 64 * 16 * 64
    # At least the parameters and Adam's two moments of both weight matrices, and the batch.
    assert row["step_memory_mb"] * 2**20 >= 3 * 2 * 16 * 64 * 4 + 64 * 16 * 4
    assert row["matmul_peak_flops_per_s"] == peaks[row["dtype"]]
    seconds = row["step_ms"] / 1e3
    assert abs(row["roofline_fraction"] * seconds * peaks[row["dtype"]]
               - row["necessary_flops"]) <= 1e-6 * row["necessary_flops"]


def test_unknown_dtype_is_refused():
  proc = run_module("benchmarks.sae_throughput", "--preset=smoke", "--dtypes=float16",
                    check=False)
  assert proc.returncode == 2 and "--dtypes is 'float16'" in proc.stderr
