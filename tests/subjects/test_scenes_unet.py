"""The `scenes` subject: capture, the timestep x level table and graph, steering during sampling."""

import json
import os
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import smoke_config
from identi import data as data_lib
from identi import hooks, sae
from identi.errors import ConfigError, DataError
from identi.experiments import capture as capture_lib
from identi.experiments import graph as graph_lib
from identi.experiments.steer import STEERING_FILE
from identi.subjects import scenes as scenes_lib
from identi.subjects import scenes_unet
from identi.subjects.base import Subject

# The session's scenes pipeline runs on one xdist worker (make test: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("scenes")


@pytest.fixture(scope="session")
def subject(scenes_run):
  return scenes_unet.ScenesUNet(scenes_run.config)


def test_the_subject_fulfils_the_protocol(subject):
  assert isinstance(subject, Subject) and subject.kind == "scenes"
  assert subject.level_sizes == (18, 6, 2) and len(subject.adjacency) == 2
  assert "mid" in subject.sites and "up_1" in subject.sites
  world = subject.sample(jax.random.key(0), 3)
  read = subject.read(world["obs"])
  assert world["obs"].shape == (3, 16, 16, 1)
  np.testing.assert_array_equal(read["a"][0], world["a"][0])  # Detectors read the rendering.


def test_step_indices_pick_the_nearest_ddim_step():
  assert scenes_unet.step_indices((1.0, 0.5, 0.2), 10) == [0, 5, 8]
  assert scenes_unet.step_indices((0.79,), 50) == [10]


def test_capture_writes_shards_labelled_by_the_detectors(scenes_run, subject):
  config, workdir = scenes_run.config, scenes_run.workdir
  c = config.capture
  summary = subject.run_capture(workdir)
  assert summary["samples"] == c.num_samples and summary["steps"] == [2, 5, 8, 9]
  labels = capture_lib.read_labels(workdir)
  levels = capture_lib.levels_of(labels)
  detected = scenes_lib.detect_concepts(subject.scenes, labels["images"])
  for a_saved, a_now in zip(levels, detected["a"]):
    np.testing.assert_array_equal(a_saved, a_now)
  for s in range(len(c.timesteps)):
    source = data_lib.open_source(os.path.join(capture_lib.capture_dir(workdir), f"t{s}"))
    assert source.num_examples == c.num_samples and source.dim == summary["dim"]
    z = source.latents(np.arange(4))
    assert z.shape == (4, sum(subject.level_sizes))
    np.testing.assert_array_equal(z[:, :18] > 0, levels[0][:4])
  # Rerunning reuses the capture (same summary, files untouched).
  mtime = os.path.getmtime(capture_lib.labels_path(workdir))
  assert subject.run_capture(workdir) == summary
  assert os.path.getmtime(capture_lib.labels_path(workdir)) == mtime


def test_capture_is_deterministic(scenes_run, tmp_path):
  config = scenes_run.config.copy_and_resolve_references()
  config.capture.num_samples = 160  # The run's first batch of 128, then a shorter one.
  config.data.num_eval = 40
  scenes_unet.ScenesUNet(config).run_capture(str(tmp_path))
  ours = data_lib.open_source(os.path.join(capture_lib.capture_dir(str(tmp_path)), "t1"))
  theirs = data_lib.open_source(os.path.join(capture_lib.capture_dir(scenes_run.workdir), "t1"))
  rows = np.arange(128)  # The first batch has the same key in both runs.
  np.testing.assert_array_equal(ours.get(rows), theirs.get(rows))


def test_graph_table_and_outputs(scenes_run):
  config, graph = scenes_run.config, scenes_run.graph
  assert [r["timestep"] for r in graph["table"]] == list(config.capture.timesteps)
  assert [p["levels"] for p in graph["pairs"]] == [[1, 2], [2, 3]]
  assert graph["pairs"][0]["true_edges"] == 18 and graph["pairs"][1]["true_edges"] == 6
  assert graph["level_timesteps"] == [0.05, 0.2, 0.5]
  # The low-noise SAE reads the parts better than chance: matched units beat shuffled codes.
  assert graph["table"][-1]["level_1"] > 0.3
  for stem in ("timestep_mcc", "concept_graph", "samples", "concept_nodes"):
    assert os.path.getsize(os.path.join(scenes_run.workdir, f"{stem}.png")) > 100


def test_bad_configs_name_the_key(tmp_path):
  for key, value, needle in (("capture__reduce", "position", "capture.reduce"),
                             ("capture__timesteps", (0.5, 1.5), "capture.timesteps"),
                             ("graph__level_timesteps", (0, 1, 5), "graph.level_timesteps"),
                             ("data__num_eval", 10_000, "data.num_eval"),
                             ("steer__t_max", 0.0, "steer.t_max"),
                             ("steer__remove_strength", -1.0, "steer.remove_strength"),
                             ("steer__targets", -1, "steer.targets"),
                             ("subject__kind", "scenez", "subject.kind")):
    with pytest.raises(ConfigError, match=needle):
      capture_lib.run(smoke_config("scenes_concepts", **{key: value}), str(tmp_path))


def test_missing_capture_and_missing_checkpoint_are_clear(tmp_path):
  with pytest.raises(DataError, match="identi.bin.capture"):
    capture_lib.read_labels(str(tmp_path))
  config = smoke_config("scenes_concepts", subject__checkpoint=str(tmp_path / "none.bin"))
  with pytest.raises(Exception, match="none.bin"):
    capture_lib.run(config, str(tmp_path / "w"))


def test_edited_targets_are_the_first_of_a_level_or_all():
  assert scenes_unet.edited_targets(18, 0) == 18
  assert scenes_unet.edited_targets(18, 2) == 2
  assert scenes_unet.edited_targets(2, 5) == 2


def test_initial_noise_depends_on_the_sample_index_only():
  a = scenes_unet.initial_noise(3, np.array([0, 5, 7]), (4, 4, 1))
  b = scenes_unet.initial_noise(3, np.array([7]), (4, 4, 1))
  np.testing.assert_array_equal(np.asarray(a[2]), np.asarray(b[0]))
  assert not np.array_equal(np.asarray(a[0]), np.asarray(a[1]))


def test_every_edit_and_mode_is_scored(scenes_run):
  rows = {(r["edit"], r["mode"]): r for r in scenes_run.steering["rows"]}
  assert set(rows) == {(e, m) for e in scenes_unet.EDITS for m in scenes_unet.MODES}
  assert all(r["samples"] >= 1 for r in rows.values())
  # The smoke config edits 2 concepts of each level, each on up to 8 / 2 samples.
  assert all(r["samples"] <= 2 * 4 for r in rows.values())
  # Edits do something: injected parts appear more often than they were present before.
  assert rows[("inject_part", "hierarchical")]["success"] > 0.0
  with open(os.path.join(scenes_run.workdir, STEERING_FILE)) as f:
    assert json.load(f)["rows"] == scenes_run.steering["rows"]
  assert os.path.getsize(os.path.join(scenes_run.workdir, "steering_grid.png")) > 100


def test_no_edit_reproduces_the_unedited_run_and_an_edit_changes_it(scenes_run, subject):
  st = scenes_unet.Steerer(subject, scenes_run.workdir)
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
  got = scenes_unet.step_saes((0.8, 0.5, 0.2, 0.05), 10, 0.6)
  np.testing.assert_array_equal(got, [-1, -1, -1, -1, 1, 1, 1, 2, 2, 3])
  np.testing.assert_array_equal(scenes_unet.step_saes((0.8, 0.5), 10, 0.6, fixed=0),
                                [-1] * 4 + [0] * 6)


def test_edit_codes_raises_with_positive_and_sets_with_negative_values():
  codes = np.array([[0.0, 2.0, 1.0, 4.0]], np.float32)
  mask = np.array([True, True, True, False])
  value = np.array([1.0, 1.0, -3.0, 9.0], np.float32)
  np.testing.assert_array_equal(scenes_unet.edit_codes(codes, mask, value),
                                [[1.0, 2.0, -3.0, 4.0]])


def test_hierarchical_object_edits_reach_the_learned_parts(scenes_run, subject):
  config = scenes_run.config
  st = scenes_unet.Steerer(subject, scenes_run.workdir)
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
  scenes = scenes_lib.make_scenes()
  n1, n2 = scenes.config.level_sizes[:2]
  before = {"a": [np.zeros((2, n1), bool), np.zeros((2, n2), bool)],
            "coherent": np.ones(2, bool)}
  after = {"a": [a.copy() for a in before["a"]], "coherent": np.array([True, False])}
  after["a"][0][0, 4] = True  # Target part appears in sample 0.
  after["a"][0][1, 7] = True  # Another part appears in sample 1.
  s = scenes_unet.score_edit(scenes, "inject_part", 4, before, after)
  np.testing.assert_array_equal(s["success"], [True, False])
  assert s["preservation"][0] == 1.0
  assert s["preservation"][1] == pytest.approx(1 - 1 / (n1 - 1 + n2))


def test_transplant_changes_a_run_only_inside_its_window_and_only_from_another_run(subject):
  model, params = subject.model, subject.params
  x_a = scenes_unet.initial_noise(0, np.arange(2), (16, 16, 1))
  x_b = scenes_unet.initial_noise(0, np.arange(2, 4), (16, 16, 1))
  plain = np.asarray(scenes_unet.diffusion.ddim_sample(
      None, lambda x, t, i: model.apply({"params": params}, x, t), x_a.shape, 5, x_init=x_a))
  kw = dict(model=model, block="mid", num_steps=5)
  np.testing.assert_allclose(scenes_unet.transplant_sample(x_a, x_b, params, 2.0, 3.0, **kw),
                             plain, atol=1e-3)  # No step in the window (4 vs 2 rows: drift).
  np.testing.assert_allclose(scenes_unet.transplant_sample(x_a, x_a, params, 0.0, 1.0, **kw),
                             plain, atol=1e-3)  # The donor is the run itself.
  moved = np.asarray(scenes_unet.transplant_sample(x_a, x_b, params, 0.0, 1.0, **kw))
  assert np.abs(moved - plain).max() > 0.1


@pytest.mark.parametrize("reduce", ["flatten", "pool"])
def test_sampling_steers_an_sae_on_either_reduction_of_the_block(subject, reduce):
  model, params = subject.model, subject.params
  x = scenes_unet.initial_noise(0, np.arange(2), (16, 16, 1))
  _, acts = hooks.capture(model.apply, {"params": params}, x, jnp.ones(2), paths=("mid",))
  rows = hooks.reduce_spatial(acts["mid"], reduce)
  sae_model = sae.make_sae("topk", rows.shape[1], 16, k=4)
  variables = sae.init_sae(sae_model, jax.random.key(0), rows)
  kw = dict(model=model, saes=(sae_model,), block="mid", reduce=reduce, num_steps=4)
  step_sae = jnp.array([-1, -1, 0, 0])
  off = [jnp.zeros(16, bool)], [jnp.zeros(16)]
  sample = scenes_unet.steered_sample
  plain = np.asarray(sample(x, params, [variables], *off, step_sae, **kw))
  unsteered = np.asarray(sample(x, params, [variables], *off, -jnp.ones(4, int), **kw))
  np.testing.assert_allclose(plain, unsteered, atol=1e-4)  # A no-op edit keeps the error term.
  on = [jnp.ones(16, bool)], [jnp.full(16, 50.0)]
  edited = np.asarray(sample(x, params, [variables], *on, step_sae, **kw))
  assert np.abs(edited - plain).max() > 1e-2
  if reduce == "flatten":  # Region 1: the edit only at the units' peak position.
    peak = np.asarray(sample(x, params, [variables], *on, step_sae, region=1.0, **kw))
    assert np.abs(peak - edited).max() > 1e-2 and np.abs(peak - plain).max() > 1e-3
  else:
    with pytest.raises(ConfigError, match="an edit region needs the flattened block map"):
      sample(x, params, [variables], *on, step_sae, region=0.3, **kw)


def test_edit_region_keeps_the_positions_where_the_edited_units_write():
  w = np.zeros((3, 2, 2, 2), np.float32)  # 3 units over a 2 x 2 map of 2 channels.
  w[0, 0, 0] = [3.0, 0.0]   # Unit 0: energy 9 at (0, 0), 1 at (1, 1).
  w[0, 1, 1] = [1.0, 0.0]
  w[1, 0, 1] = [0.0, 2.0]   # Unit 1: energy 4 at (0, 1).
  w = jnp.asarray(w.reshape(3, -1))
  got = lambda mask, f: np.asarray(scenes_unet.edit_region(w, jnp.asarray(mask), (2, 2, 2), f)
                                   ).reshape(2, 2, 2)[..., 0]
  np.testing.assert_array_equal(got([True, False, False], 0.3), [[1, 0], [0, 0]])
  np.testing.assert_array_equal(got([True, False, False], 0.1), [[1, 0], [0, 1]])
  np.testing.assert_array_equal(got([True, True, False], 0.4), [[1, 1], [0, 0]])
  np.testing.assert_array_equal(got([False, False, False], 0.3), np.ones((2, 2)))


def test_unit_owners_give_a_unit_matched_at_two_levels_to_its_stronger_concept():
  level = lambda matching, corr: types.SimpleNamespace(matching=np.asarray(matching),
                                                       corr_fit=np.asarray(corr))
  parts = level([0, 2], [[0.9, 0.1, 0.0], [0.0, 0.2, 0.4]])
  objects = level([2, -1], [[0.0, 0.0, 0.7], [0.3, 0.3, 0.3]])
  assert scenes_unet.unit_owners([parts, objects]) == {0: (0, 0), 2: (1, 0)}


def test_load_graph_says_how_to_make_it(tmp_path):
  with pytest.raises(DataError, match="identi.bin.concept_graph"):
    graph_lib.load_graph(str(tmp_path))
