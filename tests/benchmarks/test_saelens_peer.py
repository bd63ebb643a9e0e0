"""The SAELens peer's command line and the smoke preset without it (nothing here needs torch)."""

import json
import subprocess
import sys

import pytest

from helpers import ROOT, run_module


def test_peer_script_help_needs_no_torch():
  proc = subprocess.run([sys.executable, "benchmarks/peers/saelens_step.py", "--help"], cwd=ROOT,
                        capture_output=True, text=True, timeout=60, check=True)
  for arg in ("--d_in", "--d_sae", "--k", "--batch", "--repeats", "--lr", "--data", "--threads"):
    assert arg in proc.stdout


def test_peer_command_parses(monkeypatch):
  monkeypatch.syspath_prepend(ROOT)
  from benchmarks import sae_throughput  # pylint: disable=g-import-not-at-top
  from benchmarks.peers import saelens_step  # pylint: disable=g-import-not-at-top

  cmd = sae_throughput.peer_command("py", 256, 4096, 32, 1024, 3, 3e-3, "/tmp/x.npy", 2)
  assert cmd[:2] == ["py", sae_throughput.PEER_SCRIPT]
  args = saelens_step.parse_args(cmd[2:])
  assert (args.d_in, args.d_sae, args.k, args.batch, args.repeats) == (256, 4096, 32, 1024, 3)
  assert (args.lr, args.data, args.threads) == (3e-3, "/tmp/x.npy", 2)
  assert "torch" not in sys.modules


def test_smoke_preset_skips_peer(tmp_path):
  out = tmp_path / "bench.json"
  proc = run_module("benchmarks.sae_throughput", "--preset=smoke", "--kinds=topk",
                    "--repeats=2", f"--output={out}")
  assert "saelens_tokens_per_s" in proc.stdout and "warning" not in proc.stderr
  with open(out) as f:
    result = json.load(f)
  assert result["saelens"] == []
  for row in result["rows"]:
    assert row["saelens_tokens_per_s"] is None and row["ratio"] is None


def test_peer_device_defaults_to_auto_and_rejects_unknown(monkeypatch):
  monkeypatch.syspath_prepend(ROOT)
  from benchmarks.peers import saelens_step  # pylint: disable=g-import-not-at-top

  base = ["--d_in=4", "--d_sae=8", "--k=2", "--batch=4", "--lr=1e-3", "--data=x.npy"]
  assert saelens_step.parse_args(base).device == "auto"
  assert saelens_step.parse_args(base + ["--device=cuda"]).device == "cuda"
  with pytest.raises(SystemExit):
    saelens_step.parse_args(base + ["--device=tpu"])


def test_peer_python_from_the_environment(monkeypatch, tmp_path):
  from benchmarks.peers import saelens_env  # pylint: disable=g-import-not-at-top

  monkeypatch.setenv(saelens_env.PYTHON_ENV, sys.executable)
  assert saelens_env.peer_python("saelens", "quick", str(tmp_path)) == sys.executable
  assert saelens_env.peer_python("auto", "smoke", str(tmp_path)) is None  # The peer stays off.
  monkeypatch.setenv(saelens_env.PYTHON_ENV, str(tmp_path / "no-python"))
  with pytest.raises(ValueError, match="IDENTI_PEER_PYTHON.*not an executable python"):
    saelens_env.peer_python("saelens", "quick", str(tmp_path))
  assert not (tmp_path / saelens_env.VENV).exists()  # No venv was created on the way.
