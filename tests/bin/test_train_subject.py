"""identi.bin.train_subject: trains and exports the smoke subjects (diffusion and transformer);
config typos fail in one line."""

import json
import os

from helpers import ROOT, run_module

CONFIG = f"--config={ROOT}/configs/diffusion_scenes.py:smoke"
LM_CONFIG = f"--config={ROOT}/configs/grammar_lm.py:smoke"


def test_train_subject_binary_writes_outputs_and_exports(tmp_path):
  path = tmp_path / "subject.bin"
  proc = run_module("identi.bin.train_subject", CONFIG, f"--workdir={tmp_path / 'w'}",
                    f"--export={path}", "--config.train.num_steps=10")
  assert "coherence_generated" in proc.stdout and "export_mb" in proc.stdout
  assert f"subject: {path}" in proc.stdout
  assert "step 10/10" in proc.stderr and "img/s" in proc.stderr and "ETA" in proc.stderr
  with open(tmp_path / "w" / "final.json") as f:
    assert json.load(f)["step"] == 10
  assert os.path.getsize(path) > 0


def test_train_subject_binary_trains_the_transformer_on_a_grammar_config(tmp_path):
  path = tmp_path / "lm.bin"
  proc = run_module("identi.bin.train_subject", LM_CONFIG, f"--workdir={tmp_path / 'w'}",
                    f"--export={path}", "--config.train.num_steps=10",
                    "--config.model.d_model=16")
  assert "grammatical_rate" in proc.stdout and "export_mb" in proc.stdout
  assert "coherence_generated" not in proc.stdout
  assert f"subject: {path}" in proc.stdout
  assert "step 10/10" in proc.stderr and "seq/s" in proc.stderr
  with open(tmp_path / "w" / "final.json") as f:
    assert json.load(f)["step"] == 10
  assert os.path.exists(tmp_path / "w" / "samples.txt") and os.path.getsize(path) > 0


def test_unknown_override_key_of_the_subject_schema(tmp_path):
  # sae.k is a key of the SAE schema but not of the subject trainer's: checked against its own.
  for key in ("train.stepz", "sae.k"):
    proc = run_module("identi.bin.train_subject", CONFIG, f"--workdir={tmp_path}",
                      f"--config.{key}=3", check=False)
    lines = [l for l in proc.stderr.strip().splitlines() if l.startswith("error:")]
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr[-2000:]
    assert f"unknown config key '{key}'" in lines[0] and "Traceback" not in proc.stderr
