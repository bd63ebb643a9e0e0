"""Many SAEs in one pass (identi/train/sweep.py): a vmapped sweep over init seeds trains the SAEs
that one-by-one runs train, writes a workdir per SAE and resumes as a whole."""

import json
import os
import shutil

import jax
import numpy as np
import pytest

from helpers import smoke_config
from identi import io
from identi.errors import ConfigError
from identi.train import load_trained, train_sweep, validate_config


def _params(workdir):
  return jax.tree.map(np.asarray, load_trained(str(workdir))[2])


def _close(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_sweep_trains_what_single_runs_train_and_resumes(tmp_path, trained_workdir):
  config = smoke_config("sae_topk", sweep__init_seeds="0,7")
  finals = train_sweep(config, str(tmp_path / "sweep"))
  assert [f["init_seed"] for f in finals] == [0, 7] and all(f["step"] == 60 for f in finals)
  # Seed 0 is the default run, trained alone (train.init_seed -1 means train.seed = 0).
  _close(_params(tmp_path / "sweep" / "seed_0"), _params(trained_workdir))
  with open(os.path.join(trained_workdir, "final.json")) as f:
    assert finals[0]["fvu"] == pytest.approx(json.load(f)["fvu"], rel=1e-4)
  w0, w7 = (_params(tmp_path / "sweep" / f"seed_{s}")["params"]["W_dec"] for s in (0, 7))
  assert not np.allclose(w0, w7)  # Different initialisations, different SAEs.
  # Each member is a training workdir: its config, metrics and final.json.
  member = tmp_path / "sweep" / "seed_7"
  with open(member / "run.json") as f:
    assert json.load(f)["config"]["train"]["init_seed"] == 7
  records = io.read_jsonl(str(member / "metrics.jsonl"))
  assert [r["step"] for r in records] == [20, 40, 60] and isinstance(records[-1]["fvu"], float)
  sweep_records = io.read_jsonl(str(tmp_path / "sweep" / "metrics.jsonl"))
  assert len(sweep_records[-1]["fvu"]) == 2
  # Killed after its checkpoint at step 40: the sweep resumes and ends where it ended.
  killed = tmp_path / "killed"
  shutil.copytree(tmp_path / "sweep", killed)
  shutil.rmtree(killed / "checkpoints" / "60")
  for s in (0, 7):
    shutil.rmtree(killed / f"seed_{s}")
  train_sweep(config, str(killed))
  for s in (0, 7):
    for x, y in zip(jax.tree.leaves(_params(killed / f"seed_{s}")),
                    jax.tree.leaves(_params(tmp_path / "sweep" / f"seed_{s}"))):
      np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("seeds,message", [("0,0", "distinct"), ("1,x", "comma-separated"),
                                           ("0,-2", "distinct and >= 0")])
def test_bad_sweeps_are_refused(seeds, message):
  with pytest.raises(ConfigError, match=f"'sweep.init_seeds' is .*{message}"):
    validate_config(smoke_config("sae_topk", sweep__init_seeds=seeds))
  with pytest.raises(ConfigError, match="a sweep trains data-parallel"):
    validate_config(smoke_config("sae_topk", sweep__init_seeds="0,1", mesh__model=2))
