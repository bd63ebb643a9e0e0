"""Prompts of the scenes world: what they name, their variation, adherence scoring."""

import jax
import numpy as np
import pytest

from identi.errors import ConfigError, DataError
from identi.subjects import scenes as scenes_lib
from identi.subjects.prompts import FILLERS, PromptConfig, Vocabulary, adherence, make_prompts

VOCAB = Vocabulary((18, 6, 2))

# The module's fixtures are expensive: one worker runs all its tests (make test's --dist loadgroup).
pytestmark = pytest.mark.xdist_group("prompts")


@pytest.fixture(scope="module")
def world():
  scenes = scenes_lib.make_scenes()
  return scenes_lib.sample_scenes(jax.random.key(0), scenes, 2000)


def test_vocabulary_orders_scenes_objects_parts_after_the_fillers():
  words = VOCAB.words()
  assert VOCAB.size == len(words) == 1 + len(FILLERS) + 26
  assert words[VOCAB.concept(2, 1)] == "scene_1" and words[VOCAB.concept(1, 0)] == "object_0"
  assert words[VOCAB.concept(0, 17)] == "part_17"
  assert VOCAB.decode([VOCAB.concept(1, 3), 0, 0]) == "object_3"


def test_prompts_name_only_present_concepts_and_every_present_object_when_full(world):
  config = PromptConfig(underspecified=0.0, part_rate=0.5, scene_rate=0.5)
  prompts = make_prompts(np.random.default_rng(0), world["a"], VOCAB, config)
  has_object = world["a"][1].any(axis=1)
  for level in range(3):
    named = VOCAB.named(prompts, level)
    assert not np.any(named & ~world["a"][level])  # Prompts are true of their image.
  named_objects = VOCAB.named(prompts, 1)
  np.testing.assert_array_equal(named_objects[has_object], world["a"][1][has_object])
  assert not prompts[~has_object].any()  # No object: the empty prompt.
  assert VOCAB.named(prompts, 0).any() and VOCAB.named(prompts, 2).any()


def test_underspecified_prompts_name_only_scenes_and_dropout_empties_prompts(world):
  a = world["a"]
  both = a[2].any(axis=1) & a[1].any(axis=1)
  only = make_prompts(np.random.default_rng(0), a, VOCAB, PromptConfig(underspecified=1.0))
  assert not VOCAB.named(only, 1)[both].any()
  np.testing.assert_array_equal(VOCAB.named(only, 2)[both], a[2][both])
  dropped = make_prompts(np.random.default_rng(0), a, VOCAB, PromptConfig(dropout=0.5),
                         dropout=True)
  empty = ~dropped.any(axis=1)
  share = empty[a[1].any(axis=1)].mean()
  assert 0.4 < share < 0.6  # About half of the prompts with objects are dropped.
  kept = make_prompts(np.random.default_rng(0), a, VOCAB, PromptConfig(dropout=0.5))
  assert not (~kept.any(axis=1))[a[1].any(axis=1)].any()  # No dropout unless asked.


def test_prompts_vary_in_order_and_fillers_and_are_deterministic(world):
  config = PromptConfig()
  p1 = make_prompts(np.random.default_rng(3), world["a"], VOCAB, config)
  p2 = make_prompts(np.random.default_rng(3), world["a"], VOCAB, config)
  np.testing.assert_array_equal(p1, p2)
  assert p1.shape == (2000, config.max_len) and p1.dtype == np.int32
  fillers = (p1 >= 1) & (p1 <= len(FILLERS))
  assert 0.1 < fillers.any(axis=1).mean() < 0.9
  objects = [tuple(t for t in row if VOCAB.offsets[1] <= t < VOCAB.offsets[0]) for row in p1]
  assert any(list(o) != sorted(o) for o in objects)  # Concepts come in random order.


def test_bad_presence_and_bad_configs_are_refused():
  with pytest.raises(DataError, match="level sizes"):
    make_prompts(np.random.default_rng(0), [np.zeros((3, 18), bool)], VOCAB, PromptConfig())
  with pytest.raises(ConfigError, match="prompt.dropout"):
    PromptConfig(dropout=1.5).validate()
  with pytest.raises(ConfigError, match="prompt.max_len"):
    PromptConfig(max_len=2).validate()


def test_adherence_counts_named_concepts_that_the_image_lacks():
  o = lambda i: VOCAB.concept(1, i)
  prompts = np.zeros((4, 16), np.int32)
  prompts[0, :2] = [o(0), o(1)]  # Both present: adheres, exact.
  prompts[1, :2] = [o(0), o(2)]  # object 2 missing.
  prompts[2, :1] = [VOCAB.concept(2, 0)]  # Only a scene, present.
  detected = [np.zeros((4, 18), bool), np.zeros((4, 6), bool), np.zeros((4, 2), bool)]
  detected[1][0, [0, 1]] = True
  detected[1][1, [0, 3]] = True
  detected[2][2, 0] = True
  out = adherence(VOCAB, prompts, detected)
  assert out["objects"] == 0.5 and out["exact_objects"] == 0.5
  assert out["scenes"] == 1.0 and out["all"] == pytest.approx(2 / 3) and out["empty"] == 0.25
  assert np.isnan(out["parts"])
