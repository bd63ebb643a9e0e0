"""The minimal-code inference benchmark runs at toy size and reports rates, work and recovery."""

import json

import pytest

from helpers import run_module


def test_benchmark_smoke(tmp_path):
  out = tmp_path / "bench.json"
  proc = run_module("benchmarks.minimal_codes", "--preset=smoke", "--repeats=2",
                    f"--output={out}")
  assert "samples_per_s" in proc.stdout and "flop_fraction" in proc.stdout
  with open(out) as f:
    result = json.load(f)
  assert result["preset"] == "smoke" and result["matmul_flops_per_s"] > 0
  omp_row, fista_row = result["rows"]
  assert (omp_row["method"], fista_row["method"]) == ("omp", "fista")
  for row in result["rows"]:
    assert (row["d_in"], row["d_sae"], row["batch"], row["active"]) == (32, 128, 64, 3)
    assert row["samples_per_s"] > 0 and row["step_ms"] > 0 and row["compile_s"] > 0
    assert row["flop_fraction"] > 0
    assert row["support"] > 0.95
  # Noiseless 3-sparse data: OMP finds every planted atom in 3 adds and one stopping step.
  assert omp_row["max_atoms"] == 6 and omp_row["l0"] == 3 and omp_row["steps"] == 4
  assert omp_row["rel_error"] < 1e-4
  step = 2 * 32 * 128 + 10 * 6 * 32 + 6**3 / 3 + 4 * 6 * 6
  assert omp_row["flops_per_sample"] == pytest.approx(4 * step)
  assert fista_row["num_iters"] == 200 and fista_row["rel_error"] < 0.2
  lipschitz = 2 * 128 * 32 * 32 + 100 * 2 * 32 * 32
  assert fista_row["flops_per_sample"] == pytest.approx(
      200 * (4 * 32 * 128 + 11 * 128 + 32) + lipschitz / 64)


def test_unknown_method_is_a_one_line_error():
  proc = run_module("benchmarks.minimal_codes", "--preset=smoke", "--methods=omp,lasso",
                    check=False)
  assert proc.returncode == 2 and "unknown ['lasso']" in proc.stderr
  assert "Traceback" not in proc.stderr
