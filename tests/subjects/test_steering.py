"""Steering the diffusion subject during sampling (smoke config)."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import smoke_config
from identi import hooks, sae
from identi.subjects import experiment, steering

# One xdist worker runs this module (make test: --dist loadgroup): its fixture is expensive.
pytestmark = pytest.mark.xdist_group("scenes_steering")


@pytest.fixture(scope="module")
def steered(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("steer"))
  config = smoke_config("scenes_concepts")
  experiment.run_subject_graph(config, workdir)
  return config, workdir, steering.run_subject_steering(config, workdir)


def test_initial_noise_depends_on_the_sample_index_only():
  a = steering.initial_noise(3, np.array([0, 5, 7]), (4, 4, 1))
  b = steering.initial_noise(3, np.array([7]), (4, 4, 1))
  np.testing.assert_array_equal(np.asarray(a[2]), np.asarray(b[0]))
  assert not np.array_equal(np.asarray(a[0]), np.asarray(a[1]))


def test_every_edit_and_mode_is_scored(steered):
  config, workdir, result = steered
  rows = {(r["edit"], r["mode"]): r for r in result["rows"]}
  assert set(rows) == {(e, m) for e in steering.EDITS for m in steering.MODES}
  for r in rows.values():
    assert r["samples"] >= 1
    for k in ("success", "preservation", "coherence"):
      assert 0.0 <= r[k] <= 1.0
  with open(os.path.join(workdir, steering.STEERING_FILE)) as f:
    assert json.load(f)["rows"] == result["rows"]
  assert os.path.getsize(result["figure"]) > 100


def test_no_edit_reproduces_the_unedited_run_and_an_edit_changes_it(steered):
  config, workdir, _ = steered
  st = steering._Steerer(config, workdir)
  idx = np.arange(4)
  plain = st.run(idx, *st.empty())
  np.testing.assert_array_equal(plain, st.run(idx, *st.empty()))
  masks, values = st.empty()
  s = st.level_ts[0]
  masks[s][:] = True  # Raise every unit of the low-noise SAE.
  values[s][:] = st.value[s] + 5.0
  assert np.abs(st.run(idx, masks, values) - plain).max() > 1e-3
  assert np.abs(st.run(idx, masks, values, mode="flat") - plain).max() == 0.0  # SAE s unused.


def test_step_saes_tile_the_window_with_the_nearest_timestep():
  # 10 steps at t = 1.0, 0.9, ..., 0.1; timesteps 0.8 / 0.5 / 0.2 / 0.05; window t <= 0.6.
  got = steering.step_saes((0.8, 0.5, 0.2, 0.05), 10, 0.6)
  np.testing.assert_array_equal(got, [-1, -1, -1, -1, 1, 1, 1, 2, 2, 3])
  np.testing.assert_array_equal(steering.step_saes((0.8, 0.5), 10, 0.6, fixed=0),
                                [-1] * 4 + [0] * 6)


def test_edit_codes_raises_with_positive_and_sets_with_negative_values():
  codes = np.array([[0.0, 2.0, 1.0, 4.0]], np.float32)
  mask = np.array([True, True, True, False])
  value = np.array([1.0, 1.0, -3.0, 9.0], np.float32)
  np.testing.assert_array_equal(steering.edit_codes(codes, mask, value), [[1.0, 2.0, -3.0, 4.0]])


def test_hierarchical_object_edits_reach_the_learned_parts(steered):
  config, workdir, _ = steered
  st = steering._Steerer(config, workdir)
  s1, s2 = st.level_ts[:2]
  part3 = int(st.match[s1][0][3])
  st.edges = [(part3, int(st.match[s2][1][0])), (99, 5)]
  masks, values = st.plan("remove_object", "hierarchical", 0)
  used = sorted(set(st.step_sae["hierarchical"][st.step_sae["hierarchical"] >= 0]))
  assert [s for s, m in enumerate(masks) if m.any()] == used
  assert masks[s1][part3] and masks[s1][int(st.match[s1][1][0])]
  for s in used:  # Part 3 (the learned parent) is removed through every SAE of the window.
    assert masks[s][int(st.match[s][0][3])] and masks[s][int(st.match[s][1][0])]
    assert (values[s][masks[s]] <= 0).all()
  masks, values = st.plan("inject_part", "flat", 2)
  f = config.steer.flat_timestep
  assert sum(int(m.sum()) for m in masks) == 1 and masks[f][int(st.match[f][0][2])]
  u = int(st.match[f][0][2])
  assert values[f][u] == pytest.approx(config.steer.inject_strength * st.value[f][u])


def test_score_counts_success_and_preservation():
  scenes = steering.scenes_lib.make_scenes()
  n1, n2 = scenes.config.level_sizes[:2]
  before = {"a": [np.zeros((2, n1), bool), np.zeros((2, n2), bool)],
            "coherent": np.ones(2, bool)}
  after = {"a": [a.copy() for a in before["a"]], "coherent": np.array([True, False])}
  after["a"][0][0, 4] = True  # Target part appears in sample 0.
  after["a"][0][1, 7] = True  # Another part appears in sample 1.
  s = steering._score(scenes, "inject_part", 4, before, after)
  np.testing.assert_array_equal(s["success"], [True, False])
  assert s["preservation"][0] == 1.0
  assert s["preservation"][1] == pytest.approx(1 - 1 / (n1 - 1 + n2))



def test_transplant_changes_a_run_only_inside_its_window_and_only_from_another_run():
  model, params, _ = steering.load_subject(experiment.SHIPPED_SUBJECT)
  x_a = steering.initial_noise(0, np.arange(2), (16, 16, 1))
  x_b = steering.initial_noise(0, np.arange(2, 4), (16, 16, 1))
  plain = np.asarray(steering.diffusion.ddim_sample(
      None, lambda x, t, i: model.apply({"params": params}, x, t), x_a.shape, 5, x_init=x_a))
  kw = dict(model=model, block="mid", num_steps=5)
  np.testing.assert_allclose(steering.transplant_sample(x_a, x_b, params, 2.0, 3.0, **kw), plain,
                             atol=1e-3)  # No step in the window (4 vs 2 rows: float drift).
  np.testing.assert_allclose(steering.transplant_sample(x_a, x_a, params, 0.0, 1.0, **kw), plain,
                             atol=1e-3)  # The donor is the run itself.
  moved = np.asarray(steering.transplant_sample(x_a, x_b, params, 0.0, 1.0, **kw))
  assert np.abs(moved - plain).max() > 0.1


@pytest.mark.parametrize("reduce", ["flatten", "pool"])
def test_sampling_steers_an_sae_on_either_reduction_of_the_block(reduce):
  model, params, _ = steering.load_subject(experiment.SHIPPED_SUBJECT)
  x = steering.initial_noise(0, np.arange(2), (16, 16, 1))
  _, acts = hooks.capture(model.apply, {"params": params}, x, jnp.ones(2), paths=("mid",))
  rows = hooks.reduce_spatial(acts["mid"], reduce)
  sae_model = sae.make_sae("topk", rows.shape[1], 16, k=4)
  variables = sae.init_sae(sae_model, jax.random.key(0), rows)
  kw = dict(model=model, saes=(sae_model,), block="mid", reduce=reduce, num_steps=4)
  step_sae = jnp.array([-1, -1, 0, 0])
  off = [jnp.zeros(16, bool)], [jnp.zeros(16)]
  plain = np.asarray(steering._sample(x, params, [variables], *off, step_sae, **kw))
  unsteered = np.asarray(steering._sample(x, params, [variables], *off, -jnp.ones(4, int), **kw))
  np.testing.assert_allclose(plain, unsteered, atol=1e-4)  # A no-op edit keeps the error term.
  on = [jnp.ones(16, bool)], [jnp.full(16, 50.0)]
  assert np.abs(np.asarray(steering._sample(x, params, [variables], *on, step_sae, **kw))
                - plain).max() > 1e-2
