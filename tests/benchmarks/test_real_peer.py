"""The SAELens-on-real-activations benchmark: its peer script's command line (no torch here) and
its flags. The comparison itself runs in the peer venv: `python -m benchmarks.real_peer`."""

import subprocess
import sys

from helpers import ROOT, run_module


def test_peer_trainer_help_needs_no_torch():
  proc = subprocess.run([sys.executable, "benchmarks/peers/saelens_train.py", "--help"],
                        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
  for arg in ("--train", "--eval", "--output", "--d_sae", "--k", "--steps", "--batch", "--lr",
              "--warmup", "--decay", "--seed", "--threads"):
    assert arg in proc.stdout


def test_benchmark_help_needs_no_torch():
  proc = run_module("benchmarks.real_peer", "--help", check=False)  # absl exits 1 after help.
  assert "Traceback" not in proc.stderr and "torch" not in proc.stdout + proc.stderr
  for flag in ("--layer", "--workdir", "--repeats", "--smoke"):
    assert flag in proc.stdout + proc.stderr
