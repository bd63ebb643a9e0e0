"""The `prompted_scenes` subject: prompted capture, the sign-aware graph, concept removal."""

import os
import types

import jax
import numpy as np
import pytest

from helpers import smoke_config
from identi.errors import ConfigError
from identi.experiments import capture as capture_lib
from identi.subjects import prompted_scenes, scenes as scenes_lib
from identi.subjects.base import Subject
from identi.subjects.prompts import Vocabulary

# The session's prompted pipeline runs on one xdist worker (make test: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("prompted")


@pytest.fixture(scope="session")
def subject(prompted_run):
  return prompted_scenes.PromptedScenesUNet(prompted_run.config)


def test_the_subject_fulfils_the_protocol_with_prompts(subject):
  assert isinstance(subject, Subject) and subject.kind == "prompted_scenes"
  assert {"mid", "up_1", "prompt", "up_1/cross"} <= set(subject.sites)
  prompts, world = subject.world_prompts(0, 2)
  x = np.asarray(world["images"])
  acts = subject.capture((x, np.full((2,), 0.5), prompts), ("up_1",))
  assert acts["up_1"].shape == (2, 8, 8, 64)
  eps = subject.patch((x, np.full((2,), 0.5), prompts), {"up_1": lambda h: h * 0.0})
  assert eps.shape == x.shape and np.all(np.isfinite(eps))
  assert subject.generate(jax.random.key(0), 2).shape == (2, 16, 16, 1)


def test_capture_prompts_each_trajectory_with_a_world_prompt(prompted_run, subject):
  labels = capture_lib.read_labels(prompted_run.workdir)
  c = prompted_run.config.capture
  np.testing.assert_array_equal(labels["prompts"], subject.world_prompts(c.seed,
                                                                         c.num_samples)[0])
  named = subject.vocab.named(labels["prompts"], 1)
  assert named.any()  # The smoke run's prompts name objects.


def test_graph_is_sign_aware(prompted_run):
  assert len(prompted_run.graph["negated"]) == 3
  assert prompted_run.graph["negated"][0] == []  # The lowest level is never negated.


def test_every_target_condition_and_method_is_scored(prompted_run):
  result = prompted_run.unlearning
  keys = {(r["level"], r["condition"], r["method"]) for r in result["rows"]}
  assert keys == {(level, condition, method) for level in ("object", "scene")
                  for condition in prompted_scenes.CONDITIONS
                  for method in prompted_scenes.METHODS}
  for row in result["rows"]:
    if row["samples"]:
      for k in ("removal", "preservation", "unchanged", "coherence"):
        assert 0.0 <= row[k] <= 1.0, (row, k)
    if row["method"] == "none" and row["samples"]:
      # Scored over the samples whose unedited image shows the target: no edit removes nothing.
      assert row["removal"] == 0.0 and row["unchanged"] == 1.0
  # The smoke config edits the first steer.targets = 2 concepts of each level (of 6 objects and
  # 2 scenes): every condition and method of each.
  edited = {(r["level"], r["target"]) for r in result["targets"]}
  assert edited == {("object", 0), ("object", 1), ("scene", 0), ("scene", 1)}
  assert len(result["targets"]) == len(edited) * 2 * 4
  for stem in ("unlearning_grid", "unlearning_tradeoff"):
    assert os.path.exists(os.path.join(prompted_run.workdir, f"{stem}.png"))


def test_score_removal_excludes_the_target_its_parts_and_its_scene():
  scenes = scenes_lib.make_scenes()
  vocab = Vocabulary((18, 6, 2))
  obj = 0
  parts = np.flatnonzero(scenes.part_object == obj)
  scene = int(scenes.object_scene[obj])
  other = int(np.flatnonzero(scenes.object_scene == scene)[1])
  before = {"a": [np.ones((2, 18), bool), np.ones((2, 6), bool), np.ones((2, 2), bool)],
            "coherent": np.ones(2, bool)}
  after = {"a": [a.copy() for a in before["a"]], "coherent": np.asarray([True, False])}
  after["a"][1][:, obj] = False
  after["a"][0][:, parts] = False
  after["a"][2][:, scene] = False  # The scene may go with its object.
  after["a"][1][1, other] = False  # Sample 1 also loses another prompted object.
  prompts = np.zeros((2, 16), np.int32)
  prompts[:, :3] = [vocab.concept(1, obj), vocab.concept(1, other), vocab.concept(2, scene)]
  s = prompted_scenes.score_removal(scenes, vocab, 1, obj, prompts, before, after)
  assert s["removal"].tolist() == [True, True]
  assert s["preservation"].tolist() == [True, False]
  assert s["unchanged"][0] == 1.0 and s["unchanged"][1] < 1.0
  assert s["coherent"].tolist() == [True, False]


def _fake_steerer(sign, owner=None):
  """Two SAEs over (2 parts, 1 object): SAE 1 holds the object level, SAE 0 the parts. Every
  matched unit counts as its concept unless `owner` says otherwise."""
  owners = [{0: (0, 0), 1: (0, 1), 2: (1, 0)}, {3: (0, 0), 4: (0, 1), 0: (1, 0)}]
  for s, unit, concept in owner or ():
    owners[s][unit] = concept
  return types.SimpleNamespace(
      owner=owners,
      config=types.SimpleNamespace(steer=types.SimpleNamespace(remove_strength=3.0)),
      step_sae={"flat": np.asarray([1, 1, -1]), "hierarchical": np.asarray([0, 1, -1])},
      match=[[np.asarray([0, 1]), np.asarray([2])], [np.asarray([3, 4]), np.asarray([0])]],
      sign=[[np.ones(2), np.ones(1)], [np.ones(2), np.asarray([sign])]],
      value=[np.full(5, 2.0, np.float32), np.full(5, 2.0, np.float32)],
      level_ts=[0, 1],
      empty=lambda: ([np.zeros(5, bool), np.zeros(5, bool)],
                     [np.zeros(5, np.float32), np.zeros(5, np.float32)]))


def test_removal_plans_reach_the_learned_parts_and_respect_the_unit_sign():
  edges = [{"level_pair": [1, 2], "from": 0, "to": 0, "score": 1.0},
           {"level_pair": [1, 2], "from": 1, "to": 0, "score": 1.0}]
  flat_masks, flat_values = prompted_scenes.removal_plan(_fake_steerer(1.0), edges, 1, 0, "flat")
  assert flat_masks[1].tolist() == [True, False, False, False, False] and not flat_masks[0].any()
  assert flat_values[1][0] == -6.0
  masks, values = prompted_scenes.removal_plan(_fake_steerer(1.0), edges, 1, 0, "hierarchical")
  assert np.flatnonzero(masks[0]).tolist() == [0, 1, 2]  # Parts 0, 1 and the object's unit 2.
  assert np.flatnonzero(masks[1]).tolist() == [0, 3, 4]
  _, negated = prompted_scenes.removal_plan(_fake_steerer(-1.0), edges, 1, 0, "flat")
  assert negated[1][0] == 6.0  # An absence unit is raised, not silenced.


def test_the_hierarchical_plan_spares_units_that_count_as_another_concept():
  edges = [{"level_pair": [1, 2], "from": 0, "to": 0, "score": 1.0},
           {"level_pair": [1, 2], "from": 1, "to": 0, "score": 1.0}]
  # SAE 1's unit 4 is matched to part 1 but correlates more with another object (1, 1).
  st = _fake_steerer(1.0, owner=[(1, 4, (1, 1))])
  masks, _ = prompted_scenes.removal_plan(st, edges, 1, 0, "hierarchical")
  assert np.flatnonzero(masks[1]).tolist() == [0, 3]
  assert np.flatnonzero(masks[0]).tolist() == [0, 1, 2]
  flat, _ = prompted_scenes.removal_plan(_fake_steerer(1.0, owner=[(1, 0, (1, 1))]), edges, 1, 0,
                                         "flat")
  assert flat[1].tolist() == [True, False, False, False, False]  # Flat: the best unit, always.


def test_bad_configs_and_an_unconditional_subject_are_refused():
  config = smoke_config("prompted_unlearning", unlearn__samples=0)
  with pytest.raises(ConfigError, match="'unlearn.samples' is 0"):
    prompted_scenes.validate_config(config)
  config = smoke_config("prompted_unlearning", unlearn__region=1.5)
  with pytest.raises(ConfigError, match="'unlearn.region' is 1.5"):
    prompted_scenes.validate_config(config)
  config = smoke_config("prompted_unlearning", capture__reduce="pool")
  with pytest.raises(ConfigError, match="an edit region needs 'flatten'"):
    prompted_scenes.validate_config(config)
  config = smoke_config("prompted_unlearning", prompt__guidance=-1.0)
  with pytest.raises(ConfigError, match="'prompt.guidance' is -1.0"):
    prompted_scenes.validate_config(config)
  from identi.subjects.scenes_unet import SHIPPED_SUBJECT  # pylint: disable=g-import-not-at-top
  config = smoke_config("prompted_unlearning", subject__checkpoint=SHIPPED_SUBJECT)
  with pytest.raises(ConfigError, match="unconditional U-Net"):
    prompted_scenes.PromptedScenesUNet(config)
