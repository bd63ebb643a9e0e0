"""Steering the diffusion subject during sampling (smoke config)."""

import json
import os

import numpy as np
import pytest

from conftest import smoke_config
from identi.subjects import experiment, steering


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
  raise_, ablate = st.empty()
  raise_[st.level_ts[0]][:] = True  # Raise every unit of the low-noise SAE.
  st.value = [v + 5.0 for v in st.value]
  assert np.abs(st.run(idx, raise_, ablate) - plain).max() > 1e-3


def test_hierarchical_object_edits_reach_the_learned_parts(steered):
  config, workdir, _ = steered
  st = steering._Steerer(config, workdir)
  st.edges = [(3, int(st.match[st.level_ts[1]][1][0])), (5, 99)]
  raise_, ablate = st.plan("remove_object", "hierarchical", 0)
  assert not any(m.any() for m in raise_)
  assert ablate[st.level_ts[0]][3] and ablate[st.level_ts[0]].sum() == 1
  assert ablate[st.level_ts[1]].sum() == 1
  raise_, ablate = st.plan("remove_object", "flat", 0)
  assert sum(int(m.sum()) for m in ablate) == 1 and ablate[config.steer.flat_timestep].any()


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
  assert s["preservation"][0] == 1.0 and s["preservation"][1] == pytest.approx(1 - 1 / (n1 - 1 + n2))

