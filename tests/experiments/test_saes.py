"""The SAEs of a pipeline's sites: an SAE imported into ``sae_<site>`` is used, not retrained."""

import os

import numpy as np
import pytest

from benchmarks import formats_peer
from helpers import ROOT
from identi import data as data_lib
from identi import formats
from identi.errors import DataError
from identi.experiments.saes import train_saes
from identi.train import load_config, load_trained


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
