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
  # The vectorised step trains the same SAEs as the loop that CPUs run by default.
  vmapped = smoke_config("sae_topk", sweep__init_seeds="0,7", sweep__batching="vmap")
  train_sweep(vmapped, str(tmp_path / "vmapped"))
  for s in (0, 7):
    _close(_params(tmp_path / "vmapped" / f"seed_{s}"), _params(tmp_path / "sweep" / f"seed_{s}"))
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


def _layers(tmp_path, rows=(4096, 4096), dims=(16, 16)):
  """Directories 'layer_1', 'layer_2' of activations with latents, as a capture writes them."""
  from identi import data as data_lib  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  paths = []
  for i, (n, d) in enumerate(zip(rows, dims)):
    z = rng.exponential(size=(n, 32)) * (rng.random((n, 32)) < 0.1)
    x = (z @ rng.normal(size=(32, d))).astype(np.float32)
    data_lib.write_shards(tmp_path / f"layer_{i + 1}", x, z.astype(np.float32))
    paths.append(str(tmp_path / f"layer_{i + 1}"))
  return ",".join(paths)


def test_data_sweep_trains_one_sae_per_directory_as_single_runs_do(tmp_path):
  from identi.train import train_and_evaluate  # pylint: disable=g-import-not-at-top
  paths = _layers(tmp_path)
  config = smoke_config("sae_topk", data__source="npy", sweep__data_paths=paths,
                        sae__d_sae=32, sae__k=4)
  finals = train_sweep(config, str(tmp_path / "sweep"))
  assert [f["member"] for f in finals] == ["layer_1", "layer_2"]
  for name, path in zip(("layer_1", "layer_2"), paths.split(",")):
    with open(tmp_path / "sweep" / name / "run.json") as f:
      assert json.load(f)["config"]["data"]["path"] == path
    single = smoke_config("sae_topk", data__source="npy", data__path=path, sae__d_sae=32,
                          sae__k=4)
    final = train_and_evaluate(single, str(tmp_path / f"single_{name}"))
    _close(_params(tmp_path / "sweep" / name), _params(tmp_path / f"single_{name}"))
    assert finals[int(name[-1]) - 1]["mcc"] == pytest.approx(final["mcc"], abs=1e-4)
  w1, w2 = (_params(tmp_path / "sweep" / n)["params"]["W_dec"] for n in ("layer_1", "layer_2"))
  assert not np.allclose(w1, w2)  # Same init seed, different data: different SAEs.


def test_bad_data_sweeps_are_refused(tmp_path):
  from identi.errors import DataError  # pylint: disable=g-import-not-at-top
  paths = _layers(tmp_path, rows=(4096, 2048))
  with pytest.raises(DataError, match="differ in rows or width"):
    train_sweep(smoke_config("sae_topk", data__source="npy", sweep__data_paths=paths),
                str(tmp_path / "sweep"))
  for overrides, message in [
      ({"sweep__data_paths": "a/x,b/x", "data__source": "npy"}, "last components differ"),
      ({"sweep__data_paths": "a/x,a/y", "data__source": "npy", "sweep__init_seeds": "0,1"},
       "both set"),
      ({"sweep__data_paths": "a/x,a/y"}, "data.source='npy'"),
  ]:
    with pytest.raises(ConfigError, match=message):
      validate_config(smoke_config("sae_topk", **overrides))


def test_bad_source_sweeps_are_refused(tmp_path):
  from identi import data as data_lib  # pylint: disable=g-import-not-at-top
  from identi.errors import DataError  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  a = data_lib.ArraySource(rng.normal(size=(600, 16)).astype(np.float32))
  b = data_lib.ArraySource(rng.normal(size=(600, 8)).astype(np.float32))
  config = smoke_config("sae_topk")
  with pytest.raises(DataError,
                     match=r"differ in rows or width \(a: 600 rows x 16, b: 600 rows x 8"):
    train_sweep(config, str(tmp_path / "w"), sources={"a": a, "b": b})
  with pytest.raises(ConfigError, match="a data sweep needs two or more"):
    train_sweep(config, str(tmp_path / "w"), sources={"a": a})
  with pytest.raises(ConfigError, match="`sources` are the sweep"):
    train_sweep(smoke_config("sae_topk", sweep__init_seeds="0,1"), str(tmp_path / "w"),
                sources={"a": a, "c": a})
  # A workdir that holds another sweep is not resumed with these SAEs.
  io.write_json(str(tmp_path / "other" / "run.json"), {"sweep": ["x", "y"]})
  with pytest.raises(ConfigError, match=r"holds a sweep of \['x', 'y'\], not of \['a', 'c'\]"):
    train_sweep(config, str(tmp_path / "other"), sources={"a": a, "c": a})
