"""The `grammar` subject: capture per position, the layer x level table and graph, steering during
generation."""

import json
import os

import jax
import numpy as np
import pytest

from helpers import smoke_config
from identi import data as data_lib
from identi.errors import ConfigError, DataError
from identi.experiments import capture as capture_lib
from identi.experiments.steer import STEERING_FILE
from identi.subjects import grammar_lm
from identi.subjects.base import Subject
from identi.subjects.grammar import EOS, PAD, parse

# The session's grammar pipeline runs on one xdist worker (make test: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("grammar")


@pytest.fixture(scope="session")
def subject(grammar_run):
  return grammar_lm.GrammarLM(grammar_run.config)


def test_the_subject_fulfils_the_protocol(subject):
  assert isinstance(subject, Subject) and subject.kind == "grammar"
  assert subject.level_sizes == (18, 6, 2)
  assert subject.sites[:3] == ("embed", "block_0", "block_1")
  world = subject.sample(jax.random.key(0), 4)
  np.testing.assert_array_equal(subject.read(world["obs"])["a"][1], world["a"][1])
  tokens = subject.generate(jax.random.key(1), 2)
  acts = subject.capture(tokens, ("block_0",))
  assert acts["block_0"].shape == (2, tokens.shape[1], 128)


def test_kept_positions_run_from_bos_to_the_first_eos():
  tokens = np.array([[1, 5, 3, EOS, PAD, PAD], [1, 5, 6, 3, 5, 3], [1, EOS, 4, EOS, PAD, PAD]])
  np.testing.assert_array_equal(grammar_lm.kept_positions(tokens),
                                [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]])


def test_capture_rows_are_the_positions_up_to_eos(grammar_run, subject):
  config, workdir = grammar_run.config, grammar_run.workdir
  summary = subject.run_capture(workdir)
  labels = subject.labels(workdir)
  tokens = labels["tokens"]
  keep = grammar_lm.kept_positions(tokens)
  assert summary["sequences"] == tokens.shape[0] == config.capture.num_samples
  assert summary["rows"] == keep.sum() == len(labels["seq_id"])
  # Grammatical sequences keep exactly their non-PAD tokens.
  ok = labels["grammatical"]
  assert ok.mean() > 0.9
  assert keep[ok].sum() == (tokens[ok] != PAD).sum()
  np.testing.assert_array_equal(tokens[labels["seq_id"], labels["position"]] == PAD, False)
  for layer in config.capture.layers:
    source = data_lib.open_source(os.path.join(capture_lib.capture_dir(workdir), layer))
    assert source.num_examples == summary["rows"] and source.dim == summary["dim"] == 128


def test_latents_are_one_hot_words_and_phrases_and_sequence_types(grammar_run, subject):
  workdir = grammar_run.workdir
  labels = subject.labels(workdir)
  rows = np.arange(len(labels["seq_id"]))
  z = data_lib.open_source(os.path.join(capture_lib.capture_dir(workdir),
                                        "block_0")).latents(rows)
  assert z.shape[1] == 18 + 6 + 2
  words, phrases, types = z[:, :18], z[:, 18:24], z[:, 24:]
  tok = labels["tokens"][labels["seq_id"], labels["position"]]
  np.testing.assert_array_equal(words.sum(1), tok >= 4)
  np.testing.assert_array_equal(words.argmax(1)[tok >= 4], tok[tok >= 4] - 4)
  assert set(np.unique(phrases.sum(1))) <= {0.0, 1.0}
  np.testing.assert_array_equal(phrases.sum(1)[tok >= 3], 1.0)  # Words and SEP are in a group.
  np.testing.assert_array_equal(types, labels["a"][2][labels["seq_id"]])
  parsed = parse(subject.grammar, labels["tokens"])
  np.testing.assert_array_equal(labels["a"][1], parsed["a"][1])


def test_graph_table_and_outputs(grammar_run):
  config, graph = grammar_run.config, grammar_run.graph
  assert [r["layer"] for r in graph["table"]] == list(config.capture.layers)
  assert [p["levels"] for p in graph["pairs"]] == [[1, 2], [2, 3]]
  assert [p["true_edges"] for p in graph["pairs"]] == [18, 6]
  assert graph["test_sequences"] == config.data.num_test
  assert [len(m["matching"]) for m in graph["matches"]] == [18, 6, 2]
  # Words enter at embed: its SAE reads them far better than chance.
  assert graph["table"][0]["level_1"] > 0.5
  for stem in ("layer_mcc", "concept_graph"):
    assert os.path.getsize(os.path.join(grammar_run.workdir, f"{stem}.png")) > 100


def test_bad_configs_name_the_key(tmp_path):
  for key, value, needle in (("capture__layers", ("block_0", "block_0"), "capture.layers"),
                             ("capture__layers", ("block_7",), "capture.layers"),
                             ("graph__level_layers", (0, 1, 3), "graph.level_layers"),
                             ("steer__flat_layer", 3, "steer.flat_layer"),
                             ("data__num_test", 10_000, "data.num_test"),
                             ("graph__rule", "or", "graph.rule"),
                             ("graph__score", "lift", "graph.score")):
    with pytest.raises(ConfigError, match=needle):
      capture_lib.run(smoke_config("grammar_concepts", **{key: value}), str(tmp_path))
  config = smoke_config("grammar_concepts")
  with config.unlocked():
    config.capture.blok = 1
  with pytest.raises(ConfigError, match="capture.blok"):
    capture_lib.run(config, str(tmp_path))


def test_missing_capture_is_clear(subject, tmp_path):
  with pytest.raises(DataError, match="identi.bin.capture"):
    subject.labels(str(tmp_path))


def test_every_mode_is_scored(grammar_run):
  rows = {r["mode"]: r for r in grammar_run.steering["rows"]}
  assert set(rows) == set(grammar_lm.MODES)
  assert all(r["samples"] >= 6 for r in rows.values())
  assert rows["phrase"]["units_per_edit"] == rows["flat"]["units_per_edit"] == 1.0
  with open(os.path.join(grammar_run.workdir, STEERING_FILE)) as f:
    assert json.load(f)["rows"] == grammar_run.steering["rows"]
  assert os.path.getsize(os.path.join(grammar_run.workdir, "steering.png")) > 100


def test_no_edit_reproduces_the_control_and_an_edit_changes_it(grammar_run, subject):
  st = grammar_lm.Steerer(subject, grammar_run.workdir)
  idx = np.arange(6)
  plain = st.run(idx, st.empty(6))
  np.testing.assert_array_equal(plain, st.run(idx[::-1], st.empty(6))[::-1])
  masks = st.empty(6)
  masks[st.level_layers[1]][:] = True  # Raise every unit of the phrase layer's SAE.
  assert not np.array_equal(st.run(idx, masks), plain)


def test_plans_use_the_learned_parents_and_the_flat_match(grammar_run, subject):
  config = grammar_run.config
  st = grammar_lm.Steerer(subject, grammar_run.workdir)
  unit = int(st.phrase_match[2])
  st.edges = [(4, unit), (9, unit), (5, unit + 1)]
  parts = st.plan("parts", 2)
  assert np.flatnonzero(parts[st.level_layers[0]][0]).tolist() == [4, 9]
  assert sum(m.sum() for m in parts) == 2
  phrase = st.plan("phrase", 2)
  assert np.flatnonzero(phrase[st.level_layers[1]][0]).tolist() == [unit]
  flat = st.plan("flat", 2)
  assert flat[config.steer.flat_layer][0, st.flat_match[2]]


def test_score_counts_target_and_other_phrases():
  a = lambda x: [None, np.array(x, bool)]
  before = {"a": a([[0, 1, 0], [0, 0, 1]]), "grammatical": np.array([True, True])}
  after = {"a": a([[1, 1, 0], [0, 1, 0]]), "grammatical": np.array([True, False])}
  s = grammar_lm.score_edit(before, after, np.array([0, 0]))
  np.testing.assert_array_equal(s["success"], [True, False])
  np.testing.assert_array_equal(s["coherence"], [True, False])
  np.testing.assert_allclose(s["preservation"], [1.0, 0.0])
