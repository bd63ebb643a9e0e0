"""The identify stage: config validation, external data, and the smoke experiment end to end."""

import json
import os

import jax
import numpy as np
import pytest

from helpers import ROOT
from identi import generators
from identi.errors import ConfigError, DataError
from identi.train import load_config
from identi.experiments.identify import run, training_config, validate_config

SMOKE = f"{ROOT}/configs/identify_hsm.py:smoke"


def test_demo_config_is_the_spec_world_with_every_method():
  config = load_config(f"{ROOT}/configs/identify_hsm.py")
  assert validate_config(config) == ["relu", "topk", "batchtopk", "jumprelu", "matryoshka", "mp",
                                     "identifiable", "pca", "linear_ae", "ica"]
  assert config.world.eps == 0.05 and config.world.level_sizes[0] == 128 and config.view.d == 64
  assert config.sae.d_sae == 2 * config.world.level_sizes[0]


def test_weak_selection_config_keeps_the_original_experiment():
  config = load_config(f"{ROOT}/configs/identify_hsm_eps03.py")
  assert validate_config(config) == ["relu", "topk", "batchtopk", "jumprelu", "pca",
                                     "linear_ae", "ica"]
  assert config.world.eps == generators.default_world().eps == 0.3
  assert config.world.pi == generators.default_world().pi and config.sae.d_sae == 512


def test_the_identifiable_method_trains_batchtopk_with_the_minimality_stage():
  config = load_config(SMOKE)
  tc = training_config(config, "identifiable")
  assert tc.sae.kind == "batchtopk" and tc.minimality.enabled
  assert not training_config(config, "batchtopk").minimality.enabled


def test_per_kind_overrides_reach_the_training_config():
  config = load_config(SMOKE)
  config.per_kind.relu.sae.l1_coeff = 0.123
  tc = training_config(config, "relu")
  assert tc.sae.kind == "relu" and tc.sae.l1_coeff == 0.123 and not tc.sae.normalize_decoder
  assert training_config(config, "topk").sae.l1_coeff != 0.123


@pytest.mark.parametrize("mutate,pattern", [
    (lambda c: setattr(c, "methods", "topk,sparse_pca"), "sparse_pca"),
    (lambda c: c.per_kind.relu.sae.__setattr__("l1_coef", 1.0), "per_kind.relu.sae.l1_coef"),
    (lambda c: c.world.__setattr__("levels", 3), "unknown config key 'world.levels'"),
    (lambda c: c.minimal.__setattr__("method", "lars"), "minimal.method"),
])
def test_bad_configs_name_the_key(mutate, pattern):
  config = load_config(SMOKE)
  mutate(config)
  with pytest.raises(ConfigError, match=pattern):
    validate_config(config)


@pytest.mark.xdist_group("identify")
def test_smoke_run_scores_every_method(identify_run):
  records = identify_run.results["records"]
  saes = ["relu", "topk", "batchtopk", "jumprelu", "matryoshka", "mp", "identifiable"]
  assert [r["name"] for r in records] == saes + ["pca", "linear_ae", "ica"]
  for r in records:
    assert np.isfinite(r["fvu"]) and r["seconds"] > 0
    assert ("mcc_minimal" in r) == (r["name"] in saes)
  # Even at smoke size (60 steps, eps = 0.05) the identifiable recipe's units beat PCA's
  # components (the plain TopK-style kinds need the full run to do so at this leak).
  by_name = {r["name"]: r for r in records}
  for kind in ("relu", "jumprelu", "identifiable"):
    assert by_name[kind]["mcc"] > by_name["pca"]["mcc"] + 0.05, kind
  assert identify_run.results["data"]["source"] == "hsm"
  assert os.path.getsize(os.path.join(identify_run.workdir, "identifiability.png")) > 1000


def test_external_data_runs_unchanged(tmp_path):
  world = generators.sparse_superposition(jax.random.key(3), 3000, num_features=12, d=8,
                                          active_per_sample=2.0)
  data = tmp_path / "data"
  data.mkdir()
  np.save(data / "x.npy", world["x"])
  np.save(data / "z.npy", world["z"])
  config = load_config(SMOKE)
  config.data.path = str(data)
  config.methods = "topk,pca"
  records = run(config, str(tmp_path / "out"))
  assert [r["name"] for r in records] == ["topk", "pca"]
  with open(tmp_path / "out" / "results.json") as f:
    assert json.load(f)["data"]["source"] == str(data)


def test_external_data_missing_file(tmp_path):
  config = load_config(SMOKE)
  config.data.path = str(tmp_path)
  with pytest.raises(DataError, match="x.npy does not exist"):
    run(config, str(tmp_path / "out"))

