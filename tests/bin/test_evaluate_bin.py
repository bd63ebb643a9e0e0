"""identi.bin.evaluate: the metrics table and eval.json, on the held-out split or on shards."""

import json

import numpy as np

from helpers import run_module
from identi import data as data_lib


def test_evaluate_held_out_split(trained_workdir):
  proc = run_module("identi.bin.evaluate", f"--workdir={trained_workdir}")
  with open(f"{trained_workdir}/eval.json") as f:
    result = json.load(f)
  with open(f"{trained_workdir}/final.json") as f:
    final = json.load(f)
  assert result["fvu"] == final["fvu"] and result["mcc"] == final["mcc"]
  assert "fvu" in proc.stdout and f"{result['fvu']:.4g}" in proc.stdout


def test_evaluate_on_shards(tmp_path, trained_workdir):
  x = np.random.default_rng(1).normal(size=(300, 16)).astype(np.float32)
  data_lib.write_shards(str(tmp_path / "shards"), x, rows_per_shard=128)
  run_module("identi.bin.evaluate", f"--workdir={trained_workdir}",
             f"--data={tmp_path / 'shards'}")
  with open(f"{trained_workdir}/eval.json") as f:
    result = json.load(f)
  assert result["num_tokens"] == 300 and "mcc" not in result


def test_evaluate_missing_workdir(tmp_path):
  proc = run_module("identi.bin.evaluate", f"--workdir={tmp_path}/nothing", check=False)
  assert proc.returncode != 0 and "does not exist" in proc.stderr
  assert "Traceback" not in proc.stderr


def test_evaluate_wrong_dimension(tmp_path, trained_workdir):
  np.save(tmp_path / "x.npy", np.zeros((10, 7), np.float32))
  proc = run_module("identi.bin.evaluate", f"--workdir={trained_workdir}",
                    f"--data={tmp_path / 'x.npy'}", check=False)
  assert proc.returncode != 0 and "has 7 features per example" in proc.stderr
