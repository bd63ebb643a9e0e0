"""The `minilm_wordnet` subject: capture at the lemma's token, the layer x level table with its
floors, the graph against WordNet, ablation; and the halves that keep the evaluation honest."""

import os

import jax
import numpy as np
import pytest

from identi import data as data_lib
from identi.errors import ConfigError, DataError
from identi.experiments import capture as capture_lib
from identi.subjects import minilm_wordnet
from identi.subjects.base import Subject

# The session's WordNet pipeline runs on one xdist worker (make test: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("minilm_wordnet")


@pytest.fixture(scope="session")
def subject(wordnet_run):
  return minilm_wordnet.MiniLMWordNet(wordnet_run.config)


def test_the_subject_fulfils_the_protocol(subject):
  assert isinstance(subject, Subject) and subject.kind == "minilm_wordnet"
  assert subject.sites == ("embed",) + tuple(f"block_{i}" for i in range(6))
  world = subject.sample(jax.random.key(0), 6)
  read = subject.read(world["obs"])["a"]
  for level in range(3):  # The reader finds at least the lemma each sentence was made with.
    assert (read[level] >= world["a"][level]).all()
  acts = subject.capture(world["obs"][:2], ("block_0",))
  assert acts["block_0"].shape[::2] == (2, 384)
  with pytest.raises(NotImplementedError, match="encoder"):
    subject.generate(jax.random.key(0), 1)


def test_capture_rows_sit_at_the_lemma_token(subject, wordnet_run):
  labels = subject.labels(wordnet_run.workdir)
  token = np.array([subject.tokenizer.token_to_id(l) for l in subject.lexicon.lemmas])
  rows = np.arange(len(labels["lemma"]))
  np.testing.assert_array_equal(labels["ids"][rows, labels["position"]], token[labels["lemma"]])
  source = data_lib.open_source(os.path.join(capture_lib.capture_dir(wordnet_run.workdir),
                                             "block_0"))
  assert source.num_examples == len(rows) and source.dim == 384
  np.testing.assert_array_equal(source.latents(rows), subject.latents(labels["lemma"]))
  # The captured row is the model's hidden state at that token.
  acts = subject.capture([subject.sentences.text[labels["sentence"][0]]], ("block_0",))
  np.testing.assert_allclose(np.asarray(acts["block_0"])[0, labels["position"][0]],
                             source.get(np.array([0]))[0], atol=1e-4)


def test_report_rows_are_never_trained_on_nor_used_to_fit(subject, wordnet_run):
  labels = subject.labels(wordnet_run.workdir)
  rows = subject.row_sets(labels)
  report = rows["report"]
  assert not np.intersect1d(report, rows["train"]).size
  assert not np.intersect1d(report, rows["fit_lemma"]).size
  assert not np.intersect1d(report, rows["fit_sentence"]).size
  assert (~labels["fit_lemma"][report]).all() and (~labels["fit_sentence"][report]).all()
  assert len(report) + len(rows["train"]) == len(labels["lemma"])
  # Lemmas of the two halves never overlap.
  assert not set(labels["lemma"][rows["fit_lemma"]]) & set(labels["lemma"][report])


def test_summary_reports_every_layer_and_level_against_both_floors(wordnet_run):
  s = wordnet_run.summary
  assert set(s["mcc"]) == set(wordnet_run.config.capture.layers)
  for layer, levels in s["mcc"].items():
    assert set(levels) == {"lemma", "category", "top"}
    for v in levels.values():
      assert set(v) == {"sae", "random", "probe"} and all(0 <= x <= 1 for x in v.values())
    # The probe (supervised) names the lemma far better than shuffled codes.
    assert levels["lemma"]["probe"] > levels["lemma"]["random"] + 0.3
  # At the embedding, a lemma is its token: the SAE's units find lemmas well above the floor.
  embed = s["mcc"]["embed"]["lemma"]
  assert embed["sae"] > embed["random"] + 0.2
  for key in ("precision", "recall", "f1", "auroc"):
    assert key in s["graph"] and set(s["graph"]) >= {"sae", "random", "probe"}
  assert [r["level"] for r in s["patching"]["rows"]] == ["category", "top"]
  assert s["world"]["tops"] == 9 and s["capture"]["dropped"] == 0


def test_ablating_a_unit_changes_only_through_that_unit(subject, wordnet_run):
  labels = subject.labels(wordnet_run.workdir)
  saes, _, rows = subject.train_saes(wordnet_run.workdir)
  model, variables, x = saes[1]
  target = rows["report"][:4]
  codes = np.asarray(model.apply(variables, x[target], method="encode"))
  dead = int(np.flatnonzero(codes.sum(0) == 0)[0])
  base = labels["embedding"][target]
  same = subject.ablate(model, variables, labels, target, dead, "block_0")
  np.testing.assert_allclose(same, base, atol=1e-5)  # An inactive unit changes nothing.
  live = int(np.argmax(codes[0]))
  moved = subject.ablate(model, variables, labels, target[:1], live, "block_0")
  assert np.abs(moved - base[:1]).max() > 1e-4


def test_config_mistakes_are_named(wordnet_run):
  config = wordnet_run.config.copy_and_resolve_references()
  config.capture.layers = ("block_9",)
  with pytest.raises(ConfigError, match="capture.layers"):
    minilm_wordnet.validate_config(config)
  config = wordnet_run.config.copy_and_resolve_references()
  config.world.lemmas_per_category = 1
  with pytest.raises(ConfigError, match="lemmas_per_category"):
    minilm_wordnet.MiniLMWordNet(config)


def test_a_capture_of_another_world_is_refused(wordnet_run, tmp_path):
  import shutil  # pylint: disable=import-outside-toplevel
  workdir = tmp_path / "w"
  shutil.copytree(wordnet_run.workdir, workdir)
  config = wordnet_run.config.copy_and_resolve_references()
  config.world.lemmas_per_category = 6
  with pytest.raises(DataError, match="another 'world' section"):
    minilm_wordnet.MiniLMWordNet(config).labels(str(workdir))
