"""Tests for identi.subjects.scenes (the HSM image world)."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from identi.errors import ConfigError, DataError
from identi.subjects import (KINDS, ScenesConfig, coherence_rate, detect_concepts, detect_parts,
                             make_scenes, render, sample_scenes, to_ascii)

_N = 256  # one sample count, so the HSM sampler compiles once per world

# The module's fixtures are expensive: one worker runs all its tests (make test's --dist loadgroup).
pytestmark = pytest.mark.xdist_group("scenes_world")


@pytest.fixture(scope="session", params=["fixed", "jitter"])
def world(request):
  scenes = make_scenes(ScenesConfig(placement=request.param))
  return scenes, sample_scenes(jax.random.key(0), scenes, _N)


def _hsm_coherent(scenes, a) -> np.ndarray:
  """Samples whose HSM presence bits hold no fragment (1..tau-1 parents present) at any level."""
  coherent = np.ones(a[0].shape[0], bool)
  for adj, tau, low in zip(scenes.hsm.adjacency, scenes.hsm.tau, a):
    counts = low.astype(np.int64) @ adj.astype(np.int64)
    coherent &= ~np.any((counts >= 1) & (counts < tau), axis=1)
  return coherent


def test_default_world_structure():
  scenes = make_scenes()
  n1, n2, n3 = scenes.config.level_sizes
  chex.assert_shape(scenes.templates, (n1, 16, 16))
  chex.assert_shape(scenes.part_object, (n1,))
  chex.assert_shape(scenes.object_scene, (n2,))
  assert scenes.templates.dtype == np.float32
  assert scenes.templates.min() >= 0.0 and scenes.templates.max() <= 1.0
  support = scenes.templates > 0
  assert support.sum(axis=0).max() == 1, "part supports overlap"
  assert support.sum(axis=(1, 2)).min() >= 4
  for adj, fan_in in zip(scenes.hsm.adjacency, (3, 3)):
    np.testing.assert_array_equal(adj.sum(axis=0), fan_in)
    np.testing.assert_array_equal(adj.sum(axis=1), 1)
  np.testing.assert_array_equal(np.bincount(scenes.part_object), np.full(n2, 3))
  np.testing.assert_array_equal(np.bincount(scenes.object_scene), np.full(n3, 3))
  assert set(scenes.kinds) == set(KINDS)
  for j in range(n2):
    kinds = [scenes.kinds[i] for i in np.flatnonzero(scenes.part_object == j)]
    assert len(set(kinds)) == 3, f"object {j} repeats a kind: {kinds}"
  assert scenes.hsm.config.tau == 2 and scenes.hsm.config.overlap == 0.0
  assert scenes.hsm.config.magnitude == "uniform"


def test_jitter_keeps_supports_disjoint_and_in_regions():
  scenes = make_scenes(ScenesConfig(placement="jitter"))
  assert len(scenes.shifts) == 9 and tuple(scenes.shifts[0]) == (0, 0)
  masks = np.zeros((len(scenes.regions), 16, 16), bool)
  for j, (top, left, bottom, right) in enumerate(scenes.regions):
    masks[j, top:bottom, left:right] = True
  assert masks.sum(axis=0).max() == 1, "regions overlap"
  for s in range(len(scenes.shifts)):
    support = scenes.bank[s] > 0
    assert support.sum(axis=(1, 2)).tolist() == (scenes.templates > 0).sum(axis=(1, 2)).tolist()
    assert np.all(~support | masks[scenes.part_object]), "a shifted part left its region"
    assert support.sum(axis=0).max() == 1


def test_images_and_ground_truth(world):
  scenes, out = world
  n1, n2, n3 = scenes.config.level_sizes
  chex.assert_shape(out["images"], (_N, 16, 16, 1))
  chex.assert_type(out["images"], jnp.float32)
  assert out["images"].min() >= -1.0 and out["images"].max() <= 1.0
  chex.assert_shape(out["offsets"], (_N, n2, 2))
  assert out["offsets"].dtype == np.int32
  if scenes.config.placement == "fixed":
    assert not out["offsets"].any()
  else:
    assert out["offsets"].min() == -1 and out["offsets"].max() == 1
  chex.assert_shape([out["a"][0], out["a"][1], out["a"][2]], [(_N, n1), (_N, n2), (_N, n3)])
  ink = ((out["images"] + 1.0) * 0.75).sum(axis=(1, 2, 3))
  np.testing.assert_allclose(ink, out["z"][0] @ scenes.templates.sum(axis=(1, 2)), rtol=1e-5)


def test_detectors_recover_clean_renders(world):
  scenes, out = world
  found = detect_concepts(scenes, out["images"])
  for level in range(3):
    np.testing.assert_array_equal(found["a"][level], out["a"][level])
  np.testing.assert_allclose(found["z"][0], out["z"][0], atol=1e-5)
  occupied = (out["a"][0].astype(int) @ scenes.hsm.adjacency[0].astype(int)) > 0
  np.testing.assert_array_equal(found["offsets"][occupied], out["offsets"][occupied])
  adj = scenes.hsm.adjacency[0].astype(np.float32)
  mean_parent = (out["z"][0] @ adj) / np.maximum(out["a"][0] @ adj, 1)
  np.testing.assert_allclose(found["z"][1], np.where(out["a"][1], mean_parent, 0), atol=1e-5)
  np.testing.assert_array_equal(found["coherent"], _hsm_coherent(scenes, out["a"]))
  assert coherence_rate(scenes, out["images"]) == pytest.approx(
      _hsm_coherent(scenes, out["a"]).mean())


def test_detectors_survive_pixel_noise(world):
  scenes, out = world
  noise = 0.1 * jax.random.normal(jax.random.key(1), out["images"].shape)
  found = detect_concepts(scenes, out["images"] + np.asarray(noise))
  for level in range(3):
    assert (found["a"][level] == out["a"][level]).mean() >= 0.98


def test_fragments_and_coherence_by_hand():
  scenes = make_scenes()
  z1 = np.zeros((3, 18), np.float32)
  parts = np.flatnonzero(scenes.part_object == 0)
  z1[0, parts[:1]] = 1.0
  z1[1, parts[:2]] = 0.6
  z1[2, parts] = [0.5, 1.0, 1.5]
  found = detect_concepts(scenes, render(scenes, z1))
  np.testing.assert_array_equal(found["a"][1][:, 0], [False, True, True])
  np.testing.assert_array_equal(found["fragments"][0][:, 0], [True, False, False])
  np.testing.assert_allclose(found["z"][1][:, 0], [0.0, 0.6, 1.0], atol=1e-5)
  np.testing.assert_array_equal(found["fragments"][1].any(axis=1), [False, True, True])
  np.testing.assert_array_equal(found["coherent"], [False, False, False])
  assert coherence_rate(scenes, render(scenes, np.zeros((2, 18)))) == 1.0


def test_sampling_is_deterministic():
  scenes = make_scenes(ScenesConfig(placement="jitter"))
  first = sample_scenes(jax.random.key(3), scenes, _N)
  again = sample_scenes(jax.random.key(3), scenes, _N)
  other = sample_scenes(jax.random.key(4), scenes, _N)
  np.testing.assert_array_equal(first["images"], again["images"])
  np.testing.assert_array_equal(first["offsets"], again["offsets"])
  assert not np.array_equal(first["images"], other["images"])


def test_render_is_jittable():
  scenes = make_scenes(ScenesConfig(placement="jitter"))
  out = sample_scenes(jax.random.key(5), scenes, _N)
  jitted = jax.jit(functools.partial(render, scenes))(out["z"][0], out["offsets"])
  np.testing.assert_array_equal(np.asarray(jitted), out["images"])


def test_other_level_sizes_fit_a_grid():
  scenes = make_scenes(ScenesConfig(image_size=32, level_sizes=(32, 16, 8), parents=2, tau=2,
                                    placement="jitter", jitter=1))
  assert (scenes.templates > 0).sum(axis=0).max() == 1
  out = sample_scenes(jax.random.key(6), scenes, _N)
  found = detect_concepts(scenes, out["images"])
  for level in range(3):
    np.testing.assert_array_equal(found["a"][level], out["a"][level])


@pytest.mark.parametrize("field, value, fix", [
    ("level_sizes", (18, 5, 2), "level_sizes[0] must be 15"),
    ("level_sizes", (27, 9, 3, 1), "fewer levels"),
    ("image_size", 8, "raise image_size"),
    ("parents", 5, "integer in [2, 4]"),
    ("tau", 4, "integer in [1, parents=3]"),
    ("placement", "random", "use one of fixed, jitter"),
    ("magnitude", "lognormal", "use 'uniform'"),
    ("jitter", 4, "raise image_size"),
    ("pi", 1.0, "pass a firing probability"),
])
def test_bad_config_names_the_fix(field, value, fix):
  with pytest.raises(ConfigError, match="ScenesConfig") as info:
    make_scenes(ScenesConfig(**{field: value}))
  assert fix in str(info.value)


def test_jitter_placement_needs_a_shift():
  with pytest.raises(ConfigError, match="set jitter >= 1 or placement='fixed'"):
    ScenesConfig(placement="jitter", jitter=0).validate()


def test_bad_images_name_the_fix():
  scenes = make_scenes()
  with pytest.raises(DataError, match=r"pass \(n, 16, 16, 1\)"):
    detect_parts(scenes, np.zeros((2, 16, 15, 1)))
  bad = np.zeros((2, 16, 16, 1), np.float32)
  bad[0, 3, 3] = np.nan
  with pytest.raises(DataError, match="pass finite pixels"):
    detect_concepts(scenes, bad)
  with pytest.raises(DataError, match=r"pass \(num_images, 18\)"):
    render(scenes, np.zeros((2, 17)))
  with pytest.raises(DataError, match="placement='fixed' allows only 0"):
    render(scenes, np.zeros((1, 18)), np.ones((1, 6, 2), np.int32))
  with pytest.raises(ConfigError, match="make_scenes"):
    detect_parts(object(), bad)


def test_to_ascii_draws_every_pixel():
  scenes = make_scenes()
  text = to_ascii(np.asarray(render(scenes, np.ones((1, 18))))[0])
  rows = text.split("\n")
  assert len(rows) == 16 and all(len(r) == 32 for r in rows)
  assert set(text) - {"\n"} == {" ", "*"}
