"""Config schema validation: typos, wrong types and impossible values fail with the key named."""

import pytest

from helpers import ROOT, smoke_config
from identi.errors import ConfigError
from identi.train import default_config, load_config, validate_config
from identi.train.config import sae_hparams
from identi.train.trainer import build_model


@pytest.mark.parametrize("name", ["sae_relu", "sae_topk", "sae_batchtopk", "sae_jumprelu",
                                  "sae_matryoshka", "sae_mp"])
def test_shipped_configs_validate(name):
  validate_config(load_config(f"{ROOT}/configs/{name}.py"))
  smoke = load_config(f"{ROOT}/configs/{name}.py:smoke")
  validate_config(smoke)
  assert smoke.sae.kind == name.removeprefix("sae_")
  assert smoke.train.num_steps < 100


def test_unknown_key_is_named_with_its_neighbours():
  config = default_config()
  config.sae.kk = 3
  with pytest.raises(ConfigError, match=r"unknown config key 'sae.kk'.*d_sae"):
    validate_config(config)


def test_wrong_type_is_named():
  config = default_config()
  config.unlock()
  del config.train["batch_size"]
  config.train.batch_size = "64"
  with pytest.raises(ConfigError, match=r"'train.batch_size' has type str"):
    validate_config(config)


def test_int_accepted_where_float_expected():
  config = default_config()
  config.unlock()
  del config.train["learning_rate"]
  config.train.learning_rate = 1
  validate_config(config)


@pytest.mark.parametrize("key,value,pattern", [
    ("sae.kind", "gated", "choose one of relu, topk"),
    ("train.num_steps", 0, "must be > 0"),
    ("sae.k", 5000, "k must be <= d_sae"),
    ("train.decay_fraction", 1.5, r"\[0, 1\]"),
    ("sae.l1_coeff", -1.0, ">= 0"),
    ("sae.compute_dtype", "float16", r"'sae.compute_dtype' is 'float16'; choose one of float32, "
                                     "bfloat16"),
])
def test_impossible_values(key, value, pattern):
  config = default_config()
  section, leaf = key.split(".")
  config[section][leaf] = value
  with pytest.raises(ConfigError, match=pattern):
    validate_config(config)


def test_npy_source_needs_a_path():
  config = default_config()
  config.data.source = "npy"
  with pytest.raises(ConfigError, match="data.path"):
    validate_config(config)


def test_missing_key_is_named():
  config = default_config()
  del config.eval["mcc_method"]
  with pytest.raises(ConfigError, match="'eval.mcc_method' is missing"):
    validate_config(config)


def test_unknown_variant_and_missing_file():
  with pytest.raises(ConfigError, match="unknown config variant ':tiny'"):
    load_config(f"{ROOT}/configs/sae_topk.py:tiny")
  with pytest.raises(ConfigError, match="does not exist"):
    load_config(f"{ROOT}/configs/nope.py")


def test_smoke_config_helper_overrides():
  assert smoke_config("sae_relu", train__num_steps=7).train.num_steps == 7


@pytest.mark.parametrize("kind", ["relu", "topk", "batchtopk", "jumprelu"])
def test_compute_dtype_reaches_every_sae_kind(kind):
  config = default_config()
  config.sae.kind = kind
  assert build_model(config, 8).compute_dtype == "float32"
  config.sae.compute_dtype = "bfloat16"
  validate_config(config)
  assert sae_hparams(config)["compute_dtype"] == "bfloat16"
  assert build_model(config, 8).matmul_dtype.name == "bfloat16"


def test_impossible_meshes_are_refused():
  from identi.train import sharding  # pylint: disable=g-import-not-at-top

  with pytest.raises(ConfigError, match=r"'mesh.model' is 3; it must divide the 8 devices: use "
                                        r"one of 1, 2, 4, 8"):
    sharding.training_mesh(3)
  with pytest.raises(ConfigError, match=r"'mesh.model' is 8 but sae.d_sae \(60\)"):
    validate_config(smoke_config("sae_topk", mesh__model=8, sae__d_sae=60))
  with pytest.raises(ConfigError, match="'sae.decoder' is 'sparse' but mesh.model > 1"):
    validate_config(smoke_config("sae_topk", mesh__model=2, sae__decoder="sparse"))
  assert sae_hparams(smoke_config("sae_topk", mesh__model=2, sae__decoder="auto"))["decoder"] == (
      "dense")
