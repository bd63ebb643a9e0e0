"""The SAEs of a pipeline's sites: an SAE imported into ``sae_<site>`` is used, not retrained."""

import json
import os

import jax
import numpy as np
import pytest

from benchmarks import formats_peer
from helpers import ROOT
from identi import data as data_lib
from identi import formats
from identi.errors import DataError
from identi.experiments.saes import train_saes
from identi.train import load_config, load_trained, minimality


def test_imported_sae_serves_its_site(tmp_path):
  rng = np.random.default_rng(0)
  data_lib.write_shards(tmp_path / "capture" / "block_1", rng.normal(size=(600, 16)))
  data_lib.write_shards(tmp_path / "capture" / "block_2", rng.normal(size=(600, 8)))
  formats_peer.make_workdir("jumprelu", str(tmp_path / "orig"))
  formats.export_sae(str(tmp_path / "orig"), "gemmascope", str(tmp_path / "gs"))
  formats.import_sae("gemmascope", str(tmp_path / "gs" / "params.npz"),
                     str(tmp_path / "w" / "sae_block_1"))
  config = load_config(os.path.join(ROOT, "configs", "grammar_concepts.py:smoke"))
  config.data.num_eval = 100
  ((model, variables, eval_source),) = train_saes(config, str(tmp_path / "capture"),
                                                  str(tmp_path / "w"), ["block_1"], 4, 2.0)
  assert not os.path.exists(tmp_path / "w" / "sae_block_1" / "checkpoints")
  _, _, original = load_trained(str(tmp_path / "orig"))
  np.testing.assert_array_equal(variables["params"]["W_enc"], original["params"]["W_enc"])
  assert eval_source.num_examples == 100 and model.d_sae == 48
  formats.import_sae("gemmascope", str(tmp_path / "gs"), str(tmp_path / "w" / "sae_block_2"))
  with pytest.raises(DataError, match="reads 16 features but site 'block_2' has 8"):
    train_saes(config, str(tmp_path / "capture"), str(tmp_path / "w"), ["block_2"], 4, 2.0)


def test_sites_of_one_width_train_as_one_sweep_like_alone(tmp_path):
  rng = np.random.default_rng(0)
  z = np.abs(rng.normal(size=(600, 4))) * (rng.random((600, 4)) < 0.5)
  for name, d in (("block_1", 16), ("block_2", 16), ("block_3", 8)):
    data_lib.write_shards(tmp_path / "capture" / name, (z @ rng.normal(size=(4, d))).astype(
        np.float32))
  config = load_config(os.path.join(ROOT, "configs", "grammar_concepts.py:smoke"))
  config.data.num_eval = 100
  config.train.num_steps = 20
  capture, work = str(tmp_path / "capture"), tmp_path / "w"
  names = ["block_1", "block_2", "block_3"]
  swept = train_saes(config, capture, str(work), names, 4, 2.0)
  # block_1 and block_2 (width 16) trained as one sweep; block_3 (width 8) alone.
  with open(work / "sweep_d16" / "run.json") as f:
    assert json.load(f)["sweep"] == ["sae_block_1", "sae_block_2"]
  assert not os.path.exists(work / "sweep_d8")
  for name in names:
    assert os.path.exists(work / f"sae_{name}" / "final.json")
  # Each swept SAE is the SAE its site trains alone.
  for i, name in enumerate(names[:2]):
    alone = train_saes(config, capture, str(tmp_path / f"alone_{name}"), [name], 4, 2.0)[0]
    for a, b in zip(jax.tree.leaves(swept[i][1]), jax.tree.leaves(alone[1])):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert not np.allclose(swept[0][1]["params"]["W_dec"], swept[1][1]["params"]["W_dec"])
  # Finished sites are not trained again; a site trained alone before finishes alone.
  mtime = os.path.getmtime(work / "sae_block_1" / "final.json")
  train_saes(config, capture, str(work), names, 4, 2.0)
  assert os.path.getmtime(work / "sae_block_1" / "final.json") == mtime
  os.remove(tmp_path / "alone_block_1" / "sae_block_1" / "final.json")
  train_saes(config, capture, str(tmp_path / "alone_block_1"), ["block_1", "block_2"], 4, 2.0)
  assert not os.path.exists(tmp_path / "alone_block_1" / "sweep_d16")


@pytest.mark.parametrize("name", ["scenes_identifiable", "grammar_identifiable",
                                  "grammar_ancestors"])
def test_identifiable_subject_configs_train_the_recipe_at_every_site(tmp_path, name):
  """configs/<subject>_identifiable.py: each site's SAE is trained at twice the width, then the
  minimality stage keeps at most sae_width x concepts atoms; the graph is sign-aware."""
  rng = np.random.default_rng(0)
  z = np.abs(rng.normal(size=(600, 4))) * (rng.random((600, 4)) < 0.4)
  x = (z @ rng.normal(size=(4, 16))).astype(np.float32)
  for site in ("a", "b"):  # The same rows: the second site's stage reuses the first's programs.
    data_lib.write_shards(tmp_path / "capture" / site, x, z=z)
  config = load_config(os.path.join(ROOT, "configs", f"{name}.py:smoke"))
  assert config.graph.sign_aware and config.minimality.enabled
  assert config.minimality.ancestors == ("always" if name.endswith("_ancestors") else "refined")
  config.data.num_eval = 100
  config.train.num_steps = 20
  saes = train_saes(config, str(tmp_path / "capture"), str(tmp_path / "w"), ["a", "b"], 4, 1.6)
  for site, (model, variables, _) in zip(("a", "b"), saes):
    with open(tmp_path / "w" / f"sae_{site}" / "run.json") as f:
      assert json.load(f)["config"]["sae"]["d_sae"] == 8
    assert minimality.report(str(tmp_path / "w" / f"sae_{site}"))[0] == {"step": "start",
                                                                           "atoms": 16}
    # The final SAE: d_sae = sae_width x 4 concepts latents, at most that many atoms in use.
    assert type(model).__name__ == "JumpReLUSAE" and model.d_sae == 8
    assert 0 < (np.abs(variables["params"]["W_dec"]).sum(1) > 0).sum() <= 8
