"""The HSM generation benchmark at toy size and its SAELens peer's command line (no timing is
asserted; nothing here needs torch)."""

import json
import subprocess
import sys

from helpers import ROOT, python_json, run_module


def test_smoke_preset_without_peer(tmp_path):
  out = tmp_path / "bench.json"
  proc = run_module("benchmarks.hsm_generation", "--preset=smoke", "--peer=none", "--repeats=2",
                    f"--output={out}")
  assert "samples_per_s" in proc.stdout and "warning" not in proc.stderr
  with open(out) as f:
    result = json.load(f)
  [world] = result["worlds"]
  assert world["levels"] == [256, 128, 32] and world["max_component"] <= 16
  assert world["setup_s"] > 0 and world["saelens_build_s"] is None
  assert world["config"]["overlap"] == 0.0 and world["config"]["pi"] == 0.4
  assert [r["path"] for r in result["rows"]] == ["public", "device", "x_only"]
  for row in result["rows"]:
    assert (row["num_features"], row["d_in"], row["batch"]) == (256, 32, 128)
    assert row["samples_per_s"] > 0 and row["first_s"] > 0 and row["batch_ms"] > 0
    assert row["l0"] > 0 and row["matches_public"] is True
    assert row["saelens_samples_per_s"] is None and row["ratio"] is None
  assert result["saelens"] == []


def test_peer_script_help_needs_no_torch():
  proc = subprocess.run([sys.executable, "benchmarks/peers/saelens_generate.py", "--help"],
                        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
  for arg in ("--num_features", "--d_in", "--batch", "--repeats", "--threads", "--hierarchy"):
    assert arg in proc.stdout


def test_peer_command_parses():
  # In a subprocess: the benchmark's absl flags share names with sae_throughput's.
  code = (
      "import json, sys\n"
      "from benchmarks import hsm_generation as h\n"
      "from benchmarks.peers import saelens_generate as g\n"
      "cmd = h.peer_command('py', 16384, 768, 1024, 3, 2)\n"
      "a = g.parse_args(cmd[2:])\n"
      "print(json.dumps({'head': cmd[:2], 'script': h.PEER_SCRIPT, 'args': vars(a),\n"
      "                  'torch': 'torch' in sys.modules}))\n")
  result = python_json(code)
  assert result["head"] == ["py", result["script"]]
  assert result["args"] == {"num_features": 16384, "d_in": 768, "batch": 1024, "repeats": 3,
                            "threads": 2, "seed": 0, "hierarchy": "on"}
  assert not result["torch"]
