"""identi.bin.train: runs a smoke config, and bad flags fail with one line naming the problem."""

import json
import os

from helpers import ROOT, run_module

CONFIG = f"--config={ROOT}/configs/sae_topk.py:smoke"


def test_train_binary_writes_outputs_and_table(tmp_path):
  proc = run_module("identi.bin.train", CONFIG, f"--workdir={tmp_path}",
                    "--config.train.num_steps=40")
  assert "fvu" in proc.stdout and "mcc" in proc.stdout
  assert "step 40/40" in proc.stderr and "tok/s" in proc.stderr and "ETA" in proc.stderr
  with open(tmp_path / "final.json") as f:
    assert json.load(f)["step"] == 40
  assert os.path.exists(tmp_path / "metrics.jsonl")


def _error_line(proc):
  lines = [l for l in proc.stderr.strip().splitlines() if l.startswith("error:")]
  assert proc.returncode != 0 and len(lines) == 1, proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr
  return lines[0]


def test_unknown_override_key(tmp_path):
  proc = run_module("identi.bin.train", CONFIG, f"--workdir={tmp_path}", "--config.sae.kk=3",
                    check=False)
  assert "unknown config key 'sae.kk'" in _error_line(proc)


def test_wrong_override_type(tmp_path):
  proc = run_module("identi.bin.train", CONFIG, f"--workdir={tmp_path}",
                    "--config.train.num_steps=many", check=False)
  assert "num_steps" in _error_line(proc)


def test_missing_config_file(tmp_path):
  proc = run_module("identi.bin.train", "--config=configs/nope.py", f"--workdir={tmp_path}",
                    check=False)
  assert "nope.py" in _error_line(proc)


def test_impossible_value(tmp_path):
  proc = run_module("identi.bin.train", CONFIG, f"--workdir={tmp_path}", "--config.sae.k=1000",
                    check=False)
  assert "'sae.k' is 1000" in _error_line(proc)


def test_missing_npy_path(tmp_path):
  proc = run_module("identi.bin.train", CONFIG, f"--workdir={tmp_path / 'w'}",
                    "--config.data.source=npy", f"--config.data.path={tmp_path}/absent",
                    check=False)
  assert f"{tmp_path}/absent" in _error_line(proc)


def test_missing_or_unwritable_workdir(tmp_path):
  proc = run_module("identi.bin.train", CONFIG, check=False)
  assert "--workdir" in _error_line(proc)
  blocker = tmp_path / "file"
  blocker.write_text("")
  proc = run_module("identi.bin.train", CONFIG, f"--workdir={blocker}/sub", check=False)
  assert f"cannot create workdir {blocker}/sub" in _error_line(proc)
