"""The LM pipeline on the smoke config: capture per position, the layer x level table, the graph."""

import json
import os

import numpy as np
import pytest

from conftest import smoke_config
from identi import data as data_lib
from identi.errors import ConfigError, DataError
from identi.subjects import lm_experiment
from identi.subjects.experiment import CAPTURE_DIR, GRAPH_FILE
from identi.subjects.grammar import EOS, PAD, parse

# One xdist worker runs the modules sharing lm_graph (make test: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("grammar_pipeline")


def test_kept_positions_run_from_bos_to_the_first_eos():
  tokens = np.array([[1, 5, 3, EOS, PAD, PAD], [1, 5, 6, 3, 5, 3], [1, EOS, 4, EOS, PAD, PAD]])
  np.testing.assert_array_equal(lm_experiment.kept_positions(tokens),
                                [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]])


def test_capture_rows_are_the_positions_up_to_eos(lm_graph):
  config, workdir, summary, _ = lm_graph
  labels = lm_experiment.load_lm_labels(workdir)
  tokens = labels["tokens"]
  keep = lm_experiment.kept_positions(tokens)
  assert summary["sequences"] == tokens.shape[0] == config.capture.num_samples
  assert summary["rows"] == keep.sum() == len(labels["seq_id"])
  # Grammatical sequences keep exactly their non-PAD tokens.
  ok = labels["grammatical"]
  assert ok.mean() > 0.9
  assert keep[ok].sum() == (tokens[ok] != PAD).sum()
  np.testing.assert_array_equal(tokens[labels["seq_id"], labels["position"]] == PAD, False)
  for layer in config.capture.layers:
    source = data_lib.open_source(os.path.join(workdir, CAPTURE_DIR, layer))
    assert source.num_examples == summary["rows"] and source.dim == summary["dim"] == 128


def test_latents_are_one_hot_words_and_phrases_and_sequence_types(lm_graph):
  config, workdir, _, _ = lm_graph
  labels = lm_experiment.load_lm_labels(workdir)
  rows = np.arange(len(labels["seq_id"]))
  z = data_lib.open_source(os.path.join(workdir, CAPTURE_DIR, "block_0")).latents(rows)
  assert z.shape[1] == 18 + 6 + 2
  words, phrases, types = z[:, :18], z[:, 18:24], z[:, 24:]
  tok = labels["tokens"][labels["seq_id"], labels["position"]]
  np.testing.assert_array_equal(words.sum(1), tok >= 4)
  np.testing.assert_array_equal(words.argmax(1)[tok >= 4], tok[tok >= 4] - 4)
  assert set(np.unique(phrases.sum(1))) <= {0.0, 1.0}
  np.testing.assert_array_equal(phrases.sum(1)[tok >= 3], 1.0)  # Words and SEP are in a group.
  np.testing.assert_array_equal(types, labels["a"][2][labels["seq_id"]])
  parsed = parse(lm_experiment.load_lm_world(config)[2], labels["tokens"])
  np.testing.assert_array_equal(labels["a"][1], parsed["a"][1])


def test_graph_table_and_outputs(lm_graph):
  config, workdir, _, result = lm_graph
  assert [r["layer"] for r in result["table"]] == list(config.capture.layers)
  for row in result["table"]:
    for l in (1, 2, 3):
      assert 0.0 <= row[f"level_{l}"] <= 1.0
  assert [p["levels"] for p in result["pairs"]] == [[1, 2], [2, 3]]
  assert [p["true_edges"] for p in result["pairs"]] == [18, 6]
  assert result["test_sequences"] == config.data.num_test
  with open(os.path.join(workdir, GRAPH_FILE)) as f:
    saved = json.load(f)
  for key in ("table", "pairs", "matches", "edges", "level_layers", "capture"):
    assert key in saved
  assert saved["table"] == result["table"]
  assert [len(m["matching"]) for m in saved["matches"]] == [18, 6, 2]
  assert all(os.path.getsize(p) > 100 for p in result["figures"])


def test_per_sequence_presence_is_any_position():
  present = np.array([[1, 0], [0, 0], [0, 1], [0, 0]], bool)
  np.testing.assert_array_equal(
      lm_experiment.per_sequence(present, np.array([3, 3, 7, 9])), [[1, 0], [0, 1], [0, 0]])


def test_bad_configs_name_the_key(tmp_path):
  for key, value, needle in (("capture__layers", ("block_0", "block_0"), "capture.layers"),
                             ("capture__layers", ("block_7",), "capture.layers"),
                             ("graph__level_layers", (0, 1, 3), "graph.level_layers"),
                             ("steer__flat_layer", 3, "steer.flat_layer"),
                             ("data__num_test", 10_000, "data.num_test"),
                             ("graph__rule", "or", "graph.rule"),
                             ("graph__score", "lift", "graph.score")):
    with pytest.raises(ConfigError, match=needle):
      lm_experiment.capture_lm_subject(smoke_config("grammar_concepts", **{key: value}),
                                       str(tmp_path))
  config = smoke_config("grammar_concepts")
  with config.unlocked():
    config.capture.blok = 1
  with pytest.raises(ConfigError, match="capture.blok"):
    lm_experiment.capture_lm_subject(config, str(tmp_path))


def test_missing_capture_is_clear(tmp_path):
  with pytest.raises(DataError, match="identi.bin.capture"):
    lm_experiment.load_lm_labels(str(tmp_path))
