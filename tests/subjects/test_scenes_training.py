"""train_subject on the smoke config: outputs, resume, export and load, bad configs."""

import json
import os

import jax
import ml_collections
import numpy as np
import pytest

from identi.train.runtime import load_run
from helpers import killed_copy, latest_state, smoke_config
from identi import io
from identi.errors import CheckpointError, ConfigError, NonFiniteError
from identi.subjects import scenes_training as training
from identi.subjects.base import without_subject

# One xdist worker runs this module (make test: --dist loadgroup): its fixture is expensive.
pytestmark = pytest.mark.xdist_group("diffusion_training")


def _config(**overrides):
  return smoke_config("diffusion_scenes", **overrides)


def _state(workdir):
  """The latest checkpoint of a workdir, as numpy arrays."""
  config = training.config_from_json(load_run(str(workdir))["config"])
  return latest_state(workdir, training.abstract_state(config))


def test_smoke_run_writes_outputs(scenes_subject):
  workdir, final = scenes_subject
  records = io.read_jsonl(str(workdir / "metrics.jsonl"))
  assert [r["step"] for r in records] == [10, 20]
  for key in ("loss", "grad_norm", "learning_rate", "ema_decay", "images_per_s"):
    assert np.isfinite(records[-1][key]), key
  assert sorted(os.listdir(workdir / "checkpoints")) == ["10", "20"]
  with open(workdir / "final.json") as f:
    saved = json.load(f)
  assert saved.keys() == final.keys() and saved["frequency_gap"] == final["frequency_gap"]
  assert final["step"] == 20 and final["num_samples"] == 16
  # The detector reads the world's own images as coherent scenes; coherence is a share of the 16
  # samples.
  assert final["coherence_train"] > 0.9
  assert (final["coherence_generated"] * 16).is_integer()
  assert final["residual_rmse_train"] < 1e-4
  assert len(final["concepts_per_image_train"]) == 3 and len(final["frequency_gap"]) == 3
  assert os.path.exists(workdir / "samples.png") and os.path.exists(workdir / "samples.pdf")
  with open(workdir / "run.json") as f:
    assert json.load(f)["config"]["model"]["channels"] == [8, 8, 8]


def test_resume_after_a_kill_is_bit_identical(tmp_path, scenes_subject):
  # A run killed after its step-10 checkpoint leaves checkpoint 10 and log lines past it; the
  # resumed run must end with the uninterrupted run's state, every leaf bit for bit.
  workdir, _ = scenes_subject
  killed = killed_copy(workdir, tmp_path / "killed")
  final = training.train_subject(_config(), str(killed))
  assert final["step"] == 20
  resumed, uninterrupted = _state(killed), _state(workdir)
  for a, b in zip(jax.tree.leaves(resumed), jax.tree.leaves(uninterrupted), strict=True):
    np.testing.assert_array_equal(a, b)
  assert [r["step"] for r in io.read_jsonl(str(killed / "metrics.jsonl"))] == [10, 20]


def test_resume_with_another_config_is_refused(scenes_subject):
  workdir, _ = scenes_subject
  with pytest.raises(ConfigError, match=r"different config \(model.channels: \[8, 8, 8\] -> "
                                        r"\[8, 8, 16\]\)"):
    training.train_subject(_config(model__channels=(8, 8, 16)), str(workdir))


def test_export_and_load_round_trip(tmp_path, scenes_subject):
  workdir, _ = scenes_subject
  path = str(tmp_path / "subject.bin")
  shipped = training.export_subject(str(workdir), path)
  assert shipped["bytes"] == os.path.getsize(path) < 20 * 2**20
  model, params, config = training.load_subject(path)
  assert tuple(config.model.channels) == (8, 8, 8) and config.scenes.level_sizes == (18, 6, 2)
  ema = _state(workdir)["ema_params"]
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ema), strict=True):
    np.testing.assert_array_equal(np.asarray(a), b)
  x = np.zeros((2, 16, 16, 1), np.float32)
  assert model.apply({"params": params}, x, 0.5).shape == x.shape


def test_corrupt_or_missing_export_raises(tmp_path, scenes_subject):
  workdir, _ = scenes_subject
  path = tmp_path / "subject.bin"
  training.export_subject(str(workdir), str(path))
  data = bytearray(path.read_bytes())
  data[-10] ^= 0xFF
  path.write_bytes(bytes(data))
  with pytest.raises(CheckpointError, match=rf"{path} is unreadable: .*sha256.*train_subject"):
    training.load_subject(str(path))
  path.write_bytes(bytes(data[:-100]))
  with pytest.raises(CheckpointError, match="truncated"):
    training.load_subject(str(path))
  with pytest.raises(CheckpointError, match="cannot read subject file .*absent"):
    training.load_subject(str(tmp_path / "absent"))


@pytest.mark.parametrize("overrides, message", [
    ({"train__batch_size": 12}, "'train.batch_size' is 12, not divisible by the 8 devices"),
    ({"train__num_stepz": 3}, "unknown config key 'train.num_stepz'"),
    ({"train__num_steps": "many"}, "'train.num_steps' has type str"),
    ({"model__channels": (8, 8)}, "'model.channels' is \\(8, 8\\)"),
    ({"train__ema_decay": 1.0}, "'train.ema_decay' is 1.0"),
    ({"scenes__image_size": 18}, "'scenes.image_size' is 18"),
    ({"scenes__tau": 5}, "ScenesConfig.tau=5"),
])
def test_bad_configs_are_refused(tmp_path, overrides, message):
  config = _config()
  for key, value in overrides.items():  # A new section bypasses ConfigDict's own type checks.
    section, leaf = key.split("__")
    config[section] = ml_collections.ConfigDict(dict(config[section].to_dict(), **{leaf: value}))
  with pytest.raises(ConfigError, match=message):
    training.train_subject(config, str(tmp_path))


def test_diverging_run_stops_with_a_clear_error(tmp_path):
  with pytest.raises(NonFiniteError, match="non-finite .* at step"):
    training.train_subject(_config(train__learning_rate=1e30, train__grad_clip=0.0),
                           str(tmp_path))


def _prompted(**overrides):
  return smoke_config("prompted_scenes", **overrides)


def test_prompted_batches_pack_images_and_prompts_and_unpack_exactly():
  config = without_subject(_prompted())
  scenes = training.make_scenes(training.scenes_config(config))
  rows = training.training_batch(config, scenes, 3)
  assert rows.shape == (16, 16 * 16 + config.prompt.max_len)
  images, prompts = training.unpack_batch(config, rows)
  key = jax.random.fold_in(training.runtime.run_keys(config.train.seed)["data"], 3)
  world = training.sample_scenes(key, scenes, 16)
  np.testing.assert_array_equal(np.asarray(images), world["images"])
  vocab = training.vocabulary(config)
  for level in range(3):  # Every prompt is true of its image.
    assert not np.any(vocab.named(np.asarray(prompts), level) & ~world["a"][level])
  np.testing.assert_array_equal(rows, training.training_batch(config, scenes, 3))


def test_prompted_subject_starts_from_an_unconditional_one_unchanged(tmp_path, scenes_subject):
  workdir, _ = scenes_subject
  path = str(tmp_path / "plain.bin")
  training.export_subject(str(workdir), path)
  config = without_subject(_prompted(model__init_from=path))
  state = training.init_state(config, training.make_optimizer(config), jax.random.key(5))
  plain, plain_params, _ = training.load_subject(path)
  model = training.build_model(config)
  x = jax.random.normal(jax.random.key(1), (2, 16, 16, 1))
  prompts = np.asarray([[9, 10] + [0] * 14, [0] * 16], np.int32)
  np.testing.assert_array_equal(model.apply({"params": state["params"]}, x, 0.4, prompts),
                                plain.apply({"params": plain_params}, x, 0.4))
  with pytest.raises(ConfigError, match="'model.init_from' names .*model.channels"):
    config.model.channels = (8, 8, 16)
    training.init_state(config, training.make_optimizer(config), jax.random.key(5))


@pytest.mark.parametrize("overrides, message", [
    ({"prompt__guidance": -1.0}, "'prompt.guidance' is -1.0"),
    ({"prompt__dropout": 2.0}, "'prompt.dropout' is 2.0"),
    ({"model__init_from": "no_such_subject"}, "'model.init_from' is 'no_such_subject'"),
    ({"model__text_dim": 7}, "'model.text_dim' is 7"),
])
def test_bad_prompted_configs_are_refused(tmp_path, overrides, message):
  config = _prompted()
  for key, value in overrides.items():
    section, leaf = key.split("__")
    config[section] = ml_collections.ConfigDict(dict(config[section].to_dict(), **{leaf: value}))
  with pytest.raises(ConfigError, match=message):
    training.train_subject(config, str(tmp_path))


@pytest.fixture(scope="module")
def prompted_subject(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("prompted_subject")
  return workdir, training.train_subject(_prompted(), str(workdir))


def test_prompted_resume_after_a_kill_is_bit_identical(tmp_path, prompted_subject):
  workdir, _ = prompted_subject
  killed = killed_copy(workdir, tmp_path / "killed")
  assert training.train_subject(_prompted(), str(killed))["step"] == 20
  for a, b in zip(jax.tree.leaves(_state(killed)), jax.tree.leaves(_state(workdir)), strict=True):
    np.testing.assert_array_equal(a, b)


def test_prompted_smoke_run_scores_adherence_and_exports_a_prompted_subject(tmp_path,
                                                                           prompted_subject):
  workdir, final = prompted_subject
  assert final["step"] == 20 and 0.0 <= final["adherence_objects"] <= 1.0
  assert {"objects", "scenes", "all", "exact_objects"} <= set(final["adherence"])
  assert {"objects", "all"} <= set(final["adherence_train"])
  assert final["adherence_train"]["objects"] == 1.0  # World images have what their prompts name.
  path = str(tmp_path / "prompted.bin")
  training.export_subject(str(workdir), path)
  model, params, config = training.load_subject(path)
  assert training.is_prompted(config) and model.vocab_size == 1 + 5 + 26
  x = np.zeros((1, 16, 16, 1), np.float32)
  assert model.apply({"params": params}, x, 0.5, np.ones((1, 16), np.int32)).shape == x.shape
