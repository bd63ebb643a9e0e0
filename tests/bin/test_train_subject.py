"""identi.bin.train_subject: resumes a killed smoke subject run (the transformer; the diffusion
subject's kill and resume is tested in-process, tests/subjects/test_scenes_training.py), ends where
the uninterrupted run ended and exports it; config typos fail in one line."""

import json
import os

import pytest

from helpers import ROOT, killed_copy, run_module

CONFIG = f"--config={ROOT}/configs/diffusion_scenes.py:smoke"
LM_CONFIG = f"--config={ROOT}/configs/grammar_lm.py:smoke"


def _metrics(final):
  """The final metrics less wall-clock times and output paths."""
  return {k: v for k, v in final.items() if not k.endswith(("_seconds", "_file"))
          and k != "figure"}


def _resume_and_export(tmp_path, subject, config, rate):
  workdir, final = subject
  killed = killed_copy(workdir, tmp_path / "w")
  path = tmp_path / "subject.bin"
  proc = run_module("identi.bin.train_subject", config, f"--workdir={killed}", f"--export={path}")
  assert "export_mb" in proc.stdout and f"subject: {path}" in proc.stdout
  assert "step 20/20" in proc.stderr and rate in proc.stderr and "ETA" in proc.stderr
  with open(killed / "final.json") as f:
    assert _metrics(json.load(f)) == _metrics(final)
  assert os.path.getsize(path) > 0
  return proc


@pytest.mark.xdist_group("lm_training")
def test_binary_resumes_the_transformer_subject_and_exports(tmp_path, grammar_subject):
  proc = _resume_and_export(tmp_path, grammar_subject, LM_CONFIG, "seq/s")
  assert "grammatical_rate" in proc.stdout and "coherence_generated" not in proc.stdout
  assert os.path.exists(tmp_path / "w" / "samples.txt")


def test_unknown_override_key_of_the_subject_schema(tmp_path):
  # sae.k is a key of the SAE schema but not of the subject trainer's: checked against its own.
  for key in ("train.stepz", "sae.k"):
    proc = run_module("identi.bin.train_subject", CONFIG, f"--workdir={tmp_path}",
                      f"--config.{key}=3", check=False)
    lines = [l for l in proc.stderr.strip().splitlines() if l.startswith("error:")]
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr[-2000:]
    assert f"unknown config key '{key}'" in lines[0] and "Traceback" not in proc.stderr
