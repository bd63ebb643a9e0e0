"""train_lm_subject on the smoke config: outputs, resume, export and load, wrong kinds, bad
configs."""

import json
import os

import jax
import ml_collections
import numpy as np
import pytest

from identi.train.runtime import load_run
from helpers import ROOT, killed_copy, latest_state, smoke_config
from identi import io
from identi.errors import CheckpointError, ConfigError
from identi.subjects import grammar_training as lm_training, scenes_training as training
from identi.subjects.grammar import make_grammar, parse

# One xdist worker runs this module (make test: --dist loadgroup): its fixture is expensive.
pytestmark = pytest.mark.xdist_group("lm_training")

DIFFUSION_ASSET = os.path.join(ROOT, "identi", "subjects", "assets", "diffusion_scenes.bin")


def _config(**overrides):
  return smoke_config("grammar_lm", **overrides)


def _state(workdir):
  """The latest checkpoint of a workdir, as numpy arrays."""
  config = lm_training.lm_config_from_json(load_run(str(workdir))["config"])
  return latest_state(workdir, lm_training.abstract_state(config))


def test_smoke_run_writes_outputs(grammar_subject):
  workdir, final = grammar_subject
  records = io.read_jsonl(str(workdir / "metrics.jsonl"))
  assert [r["step"] for r in records] == [10, 20]
  for key in ("loss", "grad_norm", "learning_rate", "ema_decay", "sequences_per_s"):
    assert np.isfinite(records[-1][key]), key
  assert sorted(os.listdir(workdir / "checkpoints")) == ["10", "20"]
  with open(workdir / "final.json") as f:
    saved = json.load(f)
  assert saved.keys() == final.keys() and saved["frequency_gap"] == final["frequency_gap"]
  assert final["step"] == 20 and final["num_samples"] == 16
  assert final["world_grammatical_rate"] > 0.8
  assert final["gate_passed"] == (final["grammatical_rate"] >= lm_training.GRAMMATICAL_GATE)
  assert [len(f) for f in final["frequency_train"]] == [18, 6, 2]
  assert len(final["frequency_gap"]) == 3 and np.isfinite(final["loss_train"])
  lines = (workdir / "samples.txt").read_text().splitlines()
  assert lines[0].startswith("# 16 of 16 samples") and len(lines) == 17
  assert all(line[:2] in ("  ", "! ") and line[2:].startswith("<s>") for line in lines[1:])
  # The rate is the share of samples the parser accepts ('  '; '! ' marks a rejected one).
  assert final["grammatical_rate"] == sum(line[:2] == "  " for line in lines[1:]) / 16
  with open(workdir / "run.json") as f:
    assert json.load(f)["config"]["model"]["d_model"] == 32


def test_resume_after_a_kill_is_bit_identical(tmp_path, grammar_subject):
  workdir, _ = grammar_subject
  killed = killed_copy(workdir, tmp_path / "killed")
  final = lm_training.train_lm_subject(_config(), str(killed))
  assert final["step"] == 20
  resumed, uninterrupted = _state(killed), _state(workdir)
  for a, b in zip(jax.tree.leaves(resumed), jax.tree.leaves(uninterrupted), strict=True):
    np.testing.assert_array_equal(a, b)
  assert [r["step"] for r in io.read_jsonl(str(killed / "metrics.jsonl"))] == [10, 20]


def test_resume_with_another_config_is_refused(grammar_subject):
  workdir, _ = grammar_subject
  with pytest.raises(ConfigError, match=r"different config \(model.d_model: 32 -> 64\)"):
    lm_training.train_lm_subject(_config(model__d_model=64), str(workdir))


def test_training_batches_are_world_sequences():
  config = _config()
  grammar = make_grammar(lm_training.grammar_config(config))
  first = lm_training.training_batch(config, grammar, 3)
  np.testing.assert_array_equal(first, lm_training.training_batch(config, grammar, 3))
  assert first.shape == (16, 26) and parse(grammar, first)["grammatical"].mean() > 0.8


def test_export_and_load_round_trip(tmp_path, grammar_subject):
  workdir, _ = grammar_subject
  path = str(tmp_path / "lm.bin")
  shipped = lm_training.export_lm_subject(str(workdir), path)
  assert shipped["bytes"] == os.path.getsize(path) < 2**20 and shipped["step"] == 20
  model, params, config = lm_training.load_lm_subject(path)
  assert config.model.d_model == 32 and config.grammar.level_sizes == (18, 6, 2)
  ema = _state(workdir)["ema_params"]
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ema), strict=True):
    np.testing.assert_array_equal(np.asarray(a), b)
  tokens = np.ones((2, 26), np.int32)
  assert model.apply({"params": params}, tokens).shape == (2, 26, 22)


def test_loaders_refuse_the_other_kind(tmp_path, grammar_subject):
  workdir, _ = grammar_subject
  path = tmp_path / "lm.bin"
  lm_training.export_lm_subject(str(workdir), str(path))
  with pytest.raises(CheckpointError, match=r"holds a 'transformer_lm' subject, not a "
                                            r"'diffusion_unet' one: load it with "
                                            r"identi.subjects.grammar_training.load_lm_subject"):
    training.load_subject(str(path))
  with pytest.raises(CheckpointError, match=r"holds a 'diffusion_unet' subject, not a "
                                            r"'transformer_lm' one: load it with "
                                            r"identi.subjects.scenes_training.load_subject"):
    lm_training.load_lm_subject(DIFFUSION_ASSET)


def test_corrupt_or_missing_export_raises(tmp_path, grammar_subject):
  workdir, _ = grammar_subject
  path = tmp_path / "lm.bin"
  lm_training.export_lm_subject(str(workdir), str(path))
  data = bytearray(path.read_bytes())
  data[-10] ^= 0xFF
  path.write_bytes(bytes(data))
  with pytest.raises(CheckpointError, match=rf"{path} is unreadable: .*sha256.*grammar_lm"):
    lm_training.load_lm_subject(str(path))
  path.write_bytes(bytes(data[:-100]))
  with pytest.raises(CheckpointError, match="truncated"):
    lm_training.load_lm_subject(str(path))
  path.write_bytes(b"not a subject")
  with pytest.raises(CheckpointError, match="does not start with the identi subject header"):
    lm_training.load_lm_subject(str(path))
  with pytest.raises(CheckpointError, match="cannot read subject file .*absent"):
    lm_training.load_lm_subject(str(tmp_path / "absent"))
  with pytest.raises(ConfigError, match="not a subject training workdir.*grammar_lm"):
    lm_training.export_lm_subject(str(tmp_path), str(path))


@pytest.mark.parametrize("overrides, message", [
    ({"train__batch_size": 12}, "'train.batch_size' is 12, not divisible by the 8 devices"),
    ({"model__d_modl": 3}, "unknown config key 'model.d_modl'"),
    ({"model__d_model": 31}, "'model.d_model' is 31, not a multiple of model.num_heads=2"),
    ({"model__num_layers": 0}, "'model.num_layers' is 0; it must be > 0"),
    ({"sample__temperature": -1.0}, "'sample.temperature' is -1.0; it must be >= 0"),
    ({"train__ema_decay": 1.0}, "'train.ema_decay' is 1.0"),
    ({"grammar__tau": 5}, "GrammarConfig.tau=5"),
    ({"grammar__order": "sorted"}, "GrammarConfig.order='sorted'"),
])
def test_bad_configs_are_refused(tmp_path, overrides, message):
  config = _config()
  for key, value in overrides.items():  # A new section bypasses ConfigDict's own type checks.
    section, leaf = key.split("__")
    config[section] = ml_collections.ConfigDict(dict(config[section].to_dict(), **{leaf: value}))
  with pytest.raises(ConfigError, match=message):
    lm_training.train_lm_subject(config, str(tmp_path))
