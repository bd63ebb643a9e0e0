"""train_and_evaluate end to end on smoke configs: outputs, learning, sharding, bad input."""

import json
import os
import shutil

import jax
import numpy as np
import pytest

from helpers import python_json, run_module, smoke_config, xla_flags
from identi import data as data_lib
from identi import io
from identi.errors import ConfigError, DataError, NonFiniteError
from identi.train import abstract_state, load_trained, train_and_evaluate
from identi.train import trainer as trainer_lib


def _params(workdir):
  _, _, variables = load_trained(workdir)
  return jax.tree.map(np.asarray, variables)


#: Kinds also trained latent-sharded, with the mesh's model axis: (data 2, model 4) or (1, 8).
#: (TopK is trained latent-sharded by tests/train/test_multihost.py, over two processes.)
LATENT_SHARDED = {"sae_batchtopk": 8, "sae_jumprelu": 8, "sae_relu": 4}


@pytest.mark.parametrize("name", ["sae_relu", "sae_topk", "sae_batchtopk", "sae_jumprelu",
                                  "sae_matryoshka", "sae_mp"])
def test_every_kind_trains_and_writes_outputs(tmp_path, name):
  # Four latents per feature and a short dead-latent window, so that latents die and AuxK (with its
  # top-k over dead latents) takes part.
  overrides = ({"train__dead_window_tokens": 256, "sae__d_sae": 128} if name in LATENT_SHARDED
               else {})
  final = train_and_evaluate(smoke_config(name, **overrides), str(tmp_path))
  records = io.read_jsonl(str(tmp_path / "metrics.jsonl"))
  assert [r["step"] for r in records] == [20, 40, 60]
  assert records[-1]["mse"] < records[0]["mse"]
  for key in ("loss", "fvu", "l0", "dead_fraction", "tokens_per_s", "learning_rate"):
    assert np.isfinite(records[-1][key]), key
  with open(tmp_path / "final.json") as f:
    assert json.load(f) == pytest.approx(final)
  assert final["step"] == 60 and final["kind"] == name.removeprefix("sae_")
  # 60 steps beat the mean predictor (fvu < 1); they do not yet move MCC off its value at
  # initialisation (about 0.3-0.4 here), which test_topk_learns_the_true_features measures.
  assert 0 < final["fvu"] < 1 and final["l0"] > 0 and np.isfinite(final["mcc"])
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["20", "40", "60"]
  if name in LATENT_SHARDED:
    # The same run with the latents split over a 'model' mesh axis: the same SAE.
    sharded = train_and_evaluate(
        smoke_config(name, mesh__model=LATENT_SHARDED[name], **overrides),
        str(tmp_path / "sharded"))
    for a, b in zip(jax.tree.leaves(_params(tmp_path)),
                    jax.tree.leaves(_params(tmp_path / "sharded"))):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert sharded["fvu"] == pytest.approx(final["fvu"], rel=1e-5)
    if name == "sae_batchtopk":  # AuxK and its top-k ran sharded too.
      assert max(r["dead_fraction"] for r in records) > 0


def test_topk_learns_the_true_features(tmp_path):
  # 16 features in d = 16, 2 active: the world without superposition, where a TopK SAE must
  # recover the features; 32 random codes score about 0.2 here.
  config = smoke_config("sae_topk", train__num_steps=600, train__learning_rate=3e-3, sae__k=3,
                        data__superposition__num_features=16,
                        data__superposition__active_per_sample=2.0)
  final = train_and_evaluate(config, str(tmp_path))
  assert final["fvu"] < 0.15
  assert final["mcc"] > 0.85


def test_one_and_eight_devices_agree(tmp_path, trained_workdir):
  one = str(tmp_path / "one")
  run_module("identi.bin.train", f"--config={smoke_config.__globals__['ROOT']}/configs/"
             "sae_topk.py:smoke", f"--workdir={one}", devices=1)
  eight, single = _params(trained_workdir), _params(one)
  for a, b in zip(jax.tree.leaves(eight), jax.tree.leaves(single)):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
  with open(os.path.join(one, "final.json")) as f:
    one_final = json.load(f)
  with open(os.path.join(trained_workdir, "final.json")) as f:
    eight_final = json.load(f)
  assert one_final["fvu"] == pytest.approx(eight_final["fvu"], rel=1e-3)


def test_same_seed_same_parameters(tmp_path, trained_workdir):
  train_and_evaluate(smoke_config("sae_topk"), str(tmp_path))
  for a, b in zip(jax.tree.leaves(_params(trained_workdir)), jax.tree.leaves(_params(tmp_path))):
    np.testing.assert_array_equal(a, b)


def test_rerun_of_finished_run_is_a_no_op(trained_workdir):
  before = _params(trained_workdir)
  final = train_and_evaluate(smoke_config("sae_topk"), trained_workdir)
  assert final["step"] == 60
  for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(_params(trained_workdir))):
    np.testing.assert_array_equal(a, b)


def test_resume_with_another_config_is_refused(trained_workdir):
  with pytest.raises(ConfigError, match=r"different config \(sae.d_sae: 64 -> 32\)"):
    train_and_evaluate(smoke_config("sae_topk", sae__d_sae=32), trained_workdir)


def test_batch_not_divisible_by_devices(tmp_path):
  with pytest.raises(ConfigError, match="'train.batch_size' is 60, not divisible by the 8"):
    train_and_evaluate(smoke_config("sae_topk", train__batch_size=60), str(tmp_path))


def test_nan_in_data_names_the_row(tmp_path):
  x = np.random.default_rng(0).normal(size=(1024, 16)).astype(np.float32)
  x[700, 3] = np.nan
  with pytest.raises(DataError, match="row 700"):
    train_and_evaluate(smoke_config("sae_topk"), str(tmp_path), source=data_lib.ArraySource(x))


class _PoisonedSource(data_lib.ArraySource):
  """Returns a NaN batch from a given call on, bypassing the source-level check."""

  def __init__(self, x, poison_after):
    super().__init__(x)
    self.calls, self.poison_after = 0, poison_after

  def get(self, indices):
    self.calls += 1
    x = self._gather(np.asarray(indices))
    if self.calls > self.poison_after:
      x = x.copy()
      x[0, 0] = np.inf
    return x


def test_nonfinite_batch_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
  # Streamed from the host (a training set kept on the devices is read and checked once).
  monkeypatch.setattr(trainer_lib, "DEVICE_ROWS_MAX_BYTES", 0)
  x = np.random.default_rng(0).normal(size=(2048, 16)).astype(np.float32)
  # Call 1 draws the init sample; training step s uses call s + 2, so step 45 is the first bad one.
  source = _PoisonedSource(x, poison_after=46)
  expected = r"non-finite input batch .* at step 45.*checkpoint \(step 40\) is intact"
  with pytest.raises(NonFiniteError, match=expected):
    train_and_evaluate(smoke_config("sae_topk", data__num_eval=256), str(tmp_path), source=source)
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["20", "40"]
  params = _params(tmp_path)
  assert all(np.all(np.isfinite(a)) for a in jax.tree.leaves(params))


def test_rows_kept_on_the_devices_train_bit_identically_to_streamed_rows(tmp_path):
  # With XLA's default fusion emitters, as users compile (the suite's faster-compiling emitters
  # fuse the device path's gather differently): in a process of its own.
  code = f"""
import json, sys
sys.path.insert(0, "tests")
import jax, numpy as np
from helpers import smoke_config
from identi.train import load_trained, train_and_evaluate, trainer
config = smoke_config("sae_topk", sae__decoder="sparse")
train_and_evaluate(config, "{tmp_path}/device")
trainer.DEVICE_ROWS_MAX_BYTES = 0
train_and_evaluate(config, "{tmp_path}/host")
leaves = [jax.tree.leaves(jax.tree.map(np.asarray, load_trained(f"{tmp_path}/{{p}}")[2]))
          for p in ("device", "host")]
print(json.dumps({{"leaves": len(leaves[0]), "unequal": [i for i, (a, b) in
                  enumerate(zip(*leaves)) if not np.array_equal(a, b)]}}))
"""
  out = python_json(code, timeout=300, env={"XLA_FLAGS": xla_flags(8, fusion_emitters=True)})
  assert out["leaves"] >= 4 and out["unequal"] == []


def test_sparse_topk_path_trains_like_the_dense_one_on_eight_devices(tmp_path):
  # The sparse decoder (blocked gathers, scatter-add gradients, custom VJPs) under the 8-device
  # data-parallel step gives the dense path's parameters up to float rounding.
  dense = train_and_evaluate(smoke_config("sae_topk", sae__decoder="dense"),
                             str(tmp_path / "dense"))
  sparse = train_and_evaluate(smoke_config("sae_topk", sae__decoder="sparse"),
                              str(tmp_path / "sparse"))
  assert jax.device_count() == 8
  for a, b in zip(jax.tree.leaves(_params(tmp_path / "dense")),
                  jax.tree.leaves(_params(tmp_path / "sparse"))):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
  assert sparse["fvu"] == pytest.approx(dense["fvu"], rel=1e-3)


def test_bfloat16_compute_trains_with_float32_master_weights(tmp_path, trained_workdir):
  # bf16 matmuls (sparse TopK paths included) on 8 devices: the loss falls, the saved parameters
  # and optimiser state are float32, and the result is close to the float32 run's.
  config = smoke_config("sae_topk", sae__compute_dtype="bfloat16", sae__decoder="sparse")
  final = train_and_evaluate(config, str(tmp_path))
  records = io.read_jsonl(str(tmp_path / "metrics.jsonl"))
  assert records[-1]["loss"] < records[0]["loss"] and records[-1]["mse"] < records[0]["mse"]
  _, model, variables = load_trained(str(tmp_path))
  assert model.matmul_dtype.name == "bfloat16"
  assert {a.dtype for a in jax.tree.leaves(variables)} == {np.dtype(np.float32)}
  opt_state = abstract_state(config, model.d_in)["opt_state"]
  assert {a.dtype for a in jax.tree.leaves(opt_state)} <= {np.dtype(np.float32), np.dtype(np.int32)}
  with open(os.path.join(trained_workdir, "final.json")) as f:
    assert final["fvu"] == pytest.approx(json.load(f)["fvu"], rel=0.1)


def test_workdir_written_before_a_schema_key_existed_still_resumes_and_loads(tmp_path,
                                                                             trained_workdir):
  # Runs saved before `sae.decoder` existed lack the key; it reads as its default, not a change.
  workdir = str(tmp_path / "old")
  shutil.copytree(trained_workdir, workdir)
  with open(os.path.join(workdir, "run.json")) as f:
    saved = json.load(f)
  del saved["config"]["sae"]["decoder"]
  io.write_json(os.path.join(workdir, "run.json"), saved)
  final = train_and_evaluate(smoke_config("sae_topk"), workdir)
  assert final["step"] == 60
  config, model, _ = load_trained(workdir)
  assert config.sae.decoder == "auto" and model.decoder == "auto"
