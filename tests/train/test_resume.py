"""A run killed with SIGKILL resumes from its last checkpoint and ends bit-identical (CPU)."""

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np

from helpers import ROOT, damage_checkpoint, killed_copy, smoke_config
from identi import io
from identi.train import load_trained, train_and_evaluate

_OVERRIDES = {"train__num_steps": 400, "train__log_every_steps": 10, "checkpoint__every_steps": 50}


def _cli_overrides():
  return [f"--config.{k.replace('__', '.')}={v}" for k, v in _OVERRIDES.items()]


def test_sigkill_then_resume_is_bit_identical(tmp_path):
  reference = str(tmp_path / "reference")
  train_and_evaluate(smoke_config("sae_topk", **_OVERRIDES), reference)

  killed = str(tmp_path / "killed")
  cmd = [sys.executable, "-m", "identi.bin.train", f"--config={ROOT}/configs/sae_topk.py:smoke",
         f"--workdir={killed}", *_cli_overrides()]
  proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  first = os.path.join(killed, "checkpoints", "100")
  deadline = time.time() + 240
  while not os.path.isdir(first) and proc.poll() is None and time.time() < deadline:
    time.sleep(0.01)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
  assert not os.path.exists(os.path.join(killed, "final.json"))
  steps = sorted(int(s) for s in os.listdir(os.path.join(killed, "checkpoints")) if s.isdigit())
  assert steps and steps[-1] < 400

  final = train_and_evaluate(smoke_config("sae_topk", **_OVERRIDES), killed)
  assert final["step"] == 400
  _, _, resumed = load_trained(killed)
  _, _, uninterrupted = load_trained(reference)
  for a, b in zip(jax.tree.leaves(resumed), jax.tree.leaves(uninterrupted)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # The log holds each step once: records after the last checkpoint were dropped and redone.
  logged = [r["step"] for r in io.read_jsonl(os.path.join(killed, "metrics.jsonl"))]
  assert logged == list(range(10, 401, 10))


def test_damaged_latest_checkpoint_resumes_from_the_one_before(tmp_path, trained_workdir, caplog):
  """A run whose newest checkpoint's array files were damaged after the kill resumes from the
  checkpoint before it, says so, keeps the damaged files, and ends bit-identical."""
  import shutil  # pylint: disable=g-import-not-at-top

  work = str(tmp_path / "damaged")
  shutil.copytree(trained_workdir, work)
  os.remove(os.path.join(work, "final.json"))
  assert damage_checkpoint(os.path.join(work, "checkpoints", "60"))
  final = train_and_evaluate(smoke_config("sae_topk"), work)
  assert final["step"] == 60
  assert "skipped the unreadable checkpoint at step 60" in caplog.text
  assert "resuming from step 40" in caplog.text
  assert [p.split("-")[0] for p in os.listdir(os.path.join(work, "checkpoints_unreadable"))] == [
      "60"]
  _, _, resumed = load_trained(work)
  _, _, uninterrupted = load_trained(trained_workdir)
  for a, b in zip(jax.tree.leaves(resumed), jax.tree.leaves(uninterrupted)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  logged = [r["step"] for r in io.read_jsonl(os.path.join(work, "metrics.jsonl"))]
  assert logged == sorted(set(logged))


def test_resume_onto_another_mesh(tmp_path, trained_workdir):
  """A data-parallel run killed after step 40 resumes with its latents sharded over 8 devices
  (orbax restores onto the new shardings) and ends with the same parameters."""
  work = killed_copy(trained_workdir, str(tmp_path / "w"), last_step=60)
  final = train_and_evaluate(smoke_config("sae_topk", mesh__model=8), work)
  assert final["step"] == 60
  _, _, resumed = load_trained(work)
  _, _, uninterrupted = load_trained(trained_workdir)
  for a, b in zip(jax.tree.leaves(resumed), jax.tree.leaves(uninterrupted)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
