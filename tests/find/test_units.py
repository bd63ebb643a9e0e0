"""Unit boxes of identi's own SAEs (`identi.find.units`) and the unit agents
(`identi.find.unit_agents`), on the `hsm` smoke world; the grammar and scenes worlds' conditional
generation is checked against their own parser and detectors."""

from __future__ import annotations

import numpy as np
import pytest

from identi.errors import ConfigError, DataError
from identi.find import Description, QueryBudgetError, Task
from identi.find import units as units_lib
from identi.find.unit_agents import describe_unit, fit_concept

# The module's fixtures are expensive: one worker runs all its tests (make test's --dist loadgroup).
pytestmark = pytest.mark.xdist_group("units")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
  config = units_lib.units_smoke_config()
  workdir = str(tmp_path_factory.mktemp("units"))
  tasks = units_lib.unit_tasks(config, workdir)
  return config, workdir, tasks


def best_task(tasks):
  """The unit of highest MCC whose concept is a positive one."""
  return max((t for t in tasks if t.info["concept"] != "none" and t.info["sign"] > 0),
             key=lambda t: t.info["mcc"])


def test_every_unit_is_a_task_with_truth(smoke):
  config, _, tasks = smoke
  # The hsm smoke world has 12 + 6 + 2 concepts; the level-2 view's SAE has 2 units per level-2
  # concept.
  assert len(tasks) == 12
  assert [t.info["unit"] for t in tasks] == list(range(12))
  for t in tasks:
    assert t.category == "unit/hsm" and t.info["site"] == "view_2"
    assert t.info["subject"] == "hsm"
    assert (t.info["concept"] == "none") == (t.info["mcc"] < config.mcc_threshold)
    assert len(t.info["heldout_sets"]) == config.heldout
  assert best_task(tasks).info["mcc"] >= 0.8


def test_presenting_the_concept_makes_its_unit_fire_more(smoke):
  _, _, tasks = smoke
  task = best_task(tasks)
  box = task.box_factory(16)
  world = box.world
  concept = task.info["concept"]
  with_ = box.query([world.minimal(concept)] * 4)
  without = box.query([world.without(world.minimal(concept), concept)] * 4)
  assert min(with_) > max(without)


def test_impossible_sets_answer_zero_and_count(smoke):
  _, _, tasks = smoke
  box = tasks[0].box_factory(4)
  world = box.world
  whole = "whole_0"
  assert not world.possible({whole})  # a whole without its parts
  assert not world.possible(set(world.parts(whole)))  # its parts without it
  assert world.possible(world.minimal(whole))
  assert box.query([frozenset({whole})]) == [0.0]
  assert box.queries_used == 1


def test_boxes_are_deterministic_per_seed_and_index(smoke):
  _, _, tasks = smoke
  task = best_task(tasks)
  a, b = task.box_factory(8), task.box_factory(8)
  concept_set = a.world.minimal(task.info["concept"])
  first = a.query([concept_set] * 3)
  assert b.query([concept_set] * 3) == first
  assert len(set(first)) > 1  # each query index draws its own intensities


def test_budget_is_enforced(smoke):
  _, _, tasks = smoke
  box = tasks[1].box_factory(3)
  box.query([frozenset()] * 3)
  with pytest.raises(QueryBudgetError):
    box.query([frozenset()])
  box = tasks[1].box_factory(25)
  describe_unit(box, seed=0, interactive=True)
  assert box.queries_used == 25


def test_unknown_concepts_raise(smoke):
  _, _, tasks = smoke
  box = tasks[0].box_factory(5)
  with pytest.raises(ValueError, match="unknown concepts"):
    box.query([frozenset({"part_99"})])
  with pytest.raises(ConfigError, match="not a concept of the hsm world"):
    box.world.minimal("scene_0")


def test_scientist_names_the_matched_concept(smoke):
  config, _, tasks = smoke
  task = best_task(tasks)
  box = task.box_factory(config.query_budget)
  description, transcript = describe_unit(box, seed=0, interactive=True)
  score = units_lib.score_unit(task, description)
  assert score["concept_correct"], (description.text, task.info["concept"])
  assert score["f1"] > 0.5
  types = [e["type"] for e in transcript.events]
  assert {"hypothesis", "experiment", "update"} <= set(types) and types[-1] == "description"
  again, _ = describe_unit(task.box_factory(config.query_budget), seed=0, interactive=True)
  assert again == description


def test_baseline_spends_the_same_budget_and_is_deterministic(smoke):
  config, _, tasks = smoke
  task = best_task(tasks)
  box = task.box_factory(config.query_budget)
  description, transcript = describe_unit(box, seed=3, interactive=False)
  assert box.queries_used == config.query_budget
  assert [e["type"] for e in transcript.events][:2] == ["hypothesis", "experiment"]
  assert describe_unit(task.box_factory(config.query_budget), 3, False)[0] == description


def test_score_unit_truth_gets_f1_one():
  sets = [frozenset(), frozenset({"part_0"}), frozenset({"part_1"}),
          frozenset({"part_0", "part_1", "whole_0"})] * 8
  acts = np.array([1.5 if "part_0" in s else 0.0 for s in sets])
  truth = units_lib.concept_description("part_0")
  task = Task(box_factory=lambda b: None, category="unit/hsm", truth=truth,
              info={"concept": "part_0", "sign": 1, "mcc": 1.0, "high": True,
                    "heldout_sets": sets, "heldout_activations": acts,
                    "vocabulary": ("part_0", "part_1", "whole_0")})
  right = units_lib.score_unit(task, truth)
  assert right["concept_correct"] and right["f1"] == 1.0
  wrong = units_lib.score_unit(task, units_lib.concept_description("whole_0"))
  assert not wrong["concept_correct"] and wrong["f1"] < 1.0
  negated = units_lib.score_unit(task, units_lib.concept_description("part_0", sign=-1))
  assert not negated["concept_correct"] and negated["f1"] == 0.0
  broken = units_lib.score_unit(task, Description("f = 3", "concept: part_0"))
  assert broken["concept_correct"] and broken["f1"] == 0.0
  with pytest.raises(DataError, match="unit_tasks"):
    units_lib.score_unit(Task(lambda b: None, "unit/hsm", truth), truth)


def test_fit_prefers_the_whole_over_its_parts():
  sets = [frozenset(), frozenset({"p_0"}), frozenset({"p_1"}),
          frozenset({"p_0", "p_1", "w_0"}), frozenset({"p_2"})]
  fit = fit_concept(sets, np.array([0.0, 0.0, 0.0, 2.0, 0.0]), ["p_0", "p_1", "p_2", "w_0"])
  assert fit["concepts"] == ("w_0",) and fit["sign"] == 1
  assert fit_concept(sets, np.zeros(5), ["p_0", "w_0"])["concepts"] == ()


def test_config_errors(smoke):
  config, workdir, _ = smoke
  bad = units_lib.units_smoke_config()
  bad.subjects = ("hsm", "vision")
  with pytest.raises(ConfigError, match="units.subjects"):
    units_lib.unit_tasks(bad, workdir)
  bad = units_lib.units_smoke_config()
  bad.hsm.overrides = {"train": {"num_stepz": 3}}
  with pytest.raises(ConfigError, match="num_stepz"):
    units_lib.unit_tasks(bad, workdir)
  other = units_lib.units_smoke_config()
  other.hsm.overrides.train.num_steps = 301
  with pytest.raises(ConfigError, match="another subject config"):
    units_lib.unit_tasks(other, workdir)
  disabled = units_lib.units_smoke_config()
  disabled.enabled = False
  assert units_lib.unit_tasks(disabled, workdir) == []


def test_grammar_sentences_show_exactly_the_presented_concepts():
  from identi.subjects.grammar import make_grammar, parse, serialise
  grammar = make_grammar()
  world = units_lib.UnitWorld("grammar", grammar.hsm)
  sets = [world.minimal(c) for c in world.names] + [frozenset()]
  a1 = world.bits(sets)[0]
  order = np.tile(np.arange(grammar.config.level_sizes[1])[::-1], (len(sets), 1))
  parsed = parse(grammar, serialise(grammar, a1, order)["tokens"])
  assert world.sets_of(parsed["a"]) == [world.closure(s) for s in sets] == sets


def test_scene_images_show_exactly_the_presented_concepts():
  from identi.subjects.scenes import detect_concepts, make_scenes, render
  scenes = make_scenes()
  world = units_lib.UnitWorld("scenes", scenes.hsm)
  sets = [world.minimal(c) for c in world.names] + [frozenset()]
  a1 = world.bits(sets)[0]
  z1 = a1 * np.random.default_rng(0).uniform(0.5, 1.5, a1.shape)
  detected = detect_concepts(scenes, np.asarray(render(scenes, z1)))
  assert world.sets_of(detected["a"]) == sets


def test_grammar_engine_answers_the_largest_code_over_the_sentence():
  import jax
  from identi import hooks
  from identi.sae import init_sae, make_sae
  from identi.subjects.base import load_subject_for
  from identi.subjects.grammar import serialise
  from identi.subjects.grammar_lm import kept_positions
  config = units_lib.units_smoke_config()
  config.grammar.variant = "smoke"
  config.grammar.overrides = {}
  lm = load_subject_for(units_lib.subject_config(config, "grammar"))
  world = units_lib.UnitWorld("grammar", lm.grammar.hsm)
  tokens = serialise(lm.grammar, world.bits(world.natural_sets(64, 0))[0],
                     np.tile(np.arange(6), (64, 1)))["tokens"]
  acts = np.asarray(lm.capture(tokens, ("block_0",))["block_0"])
  sae = make_sae("topk", acts.shape[-1], 8, k=8)
  variables = init_sae(sae, jax.random.key(0), acts.reshape(-1, acts.shape[-1]))
  engine = units_lib.GrammarEngine(lm, "block_0", "grammar", world, "block_0", sae, variables,
                                   0, 4)
  sets = [world.minimal("phrase_1"), frozenset({"word_0"}), frozenset(), world.minimal("phrase_1"),
          frozenset({"phrase_1"})]
  out = engine.respond(sets, 0)
  assert out.shape == (5, 8) and np.all(out[4] == 0)  # a phrase without its words: impossible
  assert not np.array_equal(out[0], out[2])
  np.testing.assert_array_equal(engine.respond(sets[:1], 0), out[:1])  # cached by (set, index)
  # By hand, for the sentence of query 3 (its own group order from the box's seed and index).
  rng = np.random.default_rng([0, 0, 3])
  rng.random(lm.grammar.config.level_sizes[0])  # (its uniform intensities, drawn first)
  order = rng.permutation(lm.grammar.config.level_sizes[1])[None]
  sentence = serialise(lm.grammar, world.bits([sets[3]])[0], order)["tokens"]
  h = np.asarray(hooks.capture(lm.model.apply, {"params": lm.params}, sentence,
                               paths=("block_0",))[1]["block_0"])[kept_positions(sentence)]
  codes = np.asarray(sae.apply(variables, h, method="encode"))
  np.testing.assert_allclose(out[3], codes.max(axis=0), rtol=1e-5, atol=1e-6)
