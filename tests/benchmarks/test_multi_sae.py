"""benchmarks/multi_sae.py: the smoke preset end to end, and the SAELens peer's command line
(nothing here needs torch)."""

import json
import subprocess
import sys

from helpers import ROOT, python_json, run_module


def test_smoke_preset_times_the_sweep_against_single_steps_and_whole_runs(tmp_path):
  out = tmp_path / "multi.json"
  proc = run_module("benchmarks.multi_sae", "--preset=smoke", "--saes=2", "--repeats=2",
                    "--run_steps=20", f"--output={out}")
  assert "vmapped_step_s" in proc.stdout and "warning" not in proc.stderr
  with open(out) as f:
    result = json.load(f)
  assert result["peer"] is None  # The smoke preset leaves SAELens out.
  (row,) = result["rows"]
  assert row["saes"] == 2 and row["sequential_step_s"] > 0 and row["vmapped_step_s"] > 0
  assert row["speedup"] == row["sequential_step_s"] / row["vmapped_step_s"]
  assert row["platform"] == "cpu" and row["device_kind"]
  (run,) = result["runs"]
  assert run["steps"] == 20 and run["sequential_runs_s"] > 0
  assert run["sweep_vmap_s"] > 0 and run["sweep_loop_s"] > 0
  assert run["sweep_s"] == run[f"sweep_{run['sweep_batching']}_s"]
  assert run["speedup_loop"] == run["sequential_runs_s"] / run["sweep_loop_s"]


def test_peer_command_parses():
  # In its own process: benchmarks.multi_sae defines absl flags (--preset) that other benchmarks
  # imported by this test process define too.
  code = ("import json, sys; from benchmarks import multi_sae; "
          "from benchmarks.peers import saelens_multi; "
          "cmd = multi_sae.peer_command('py', 64, 512, 8, 1024, 8, 3, '/tmp/x.npy'); "
          "a = saelens_multi.parse_args(cmd[2:]); "
          "print(json.dumps([cmd[:2] == ['py', multi_sae.PEER_SCRIPT], a.d_in, a.d_sae, a.k, "
          "a.batch, a.saes, a.repeats, a.data, 'torch' in sys.modules]))")
  assert python_json(code) == [True, 64, 512, 8, 1024, 8, 3, "/tmp/x.npy", False]
  proc = subprocess.run([sys.executable, "benchmarks/peers/saelens_multi.py", "--help"], cwd=ROOT,
                        capture_output=True, text=True, timeout=60, check=True)
  assert "--saes" in proc.stdout
