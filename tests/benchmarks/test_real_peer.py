"""The SAELens-on-real-activations benchmark: its peer script's command line (no torch here) and
its FVU. The comparison itself runs in the peer venv: `python -m benchmarks.real_peer`."""

import subprocess
import sys

import numpy as np

from helpers import ROOT


def test_peer_trainer_help_needs_no_torch():
  proc = subprocess.run([sys.executable, "benchmarks/peers/saelens_train.py", "--help"],
                        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
  for arg in ("--train", "--eval", "--output", "--d_sae", "--k", "--steps", "--batch", "--lr",
              "--warmup", "--decay", "--seed", "--threads"):
    assert arg in proc.stdout


def test_fvu_is_the_unexplained_fraction_of_variance(monkeypatch):
  monkeypatch.syspath_prepend(ROOT)
  from benchmarks import real_peer  # pylint: disable=g-import-not-at-top

  x = np.random.default_rng(0).normal(size=(500, 8)) + 3.0
  assert real_peer.fvu(x, x) == 0.0
  np.testing.assert_allclose(real_peer.fvu(x, np.broadcast_to(x.mean(0), x.shape)), 1.0)
  np.testing.assert_allclose(real_peer.fvu(x, x.mean(0) + 0.5 * (x - x.mean(0))), 0.25)
  assert "torch" not in sys.modules
