"""Steering the transformer subject's phrases during generation (smoke config)."""

import json
import os

import numpy as np
import pytest

from identi.subjects import lm_steering
from identi.subjects.grammar import parse

# One xdist worker runs the modules sharing lm_graph (make test: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("grammar_pipeline")


@pytest.fixture(scope="module")
def steered(lm_graph):
  config, workdir, _, _ = lm_graph
  return config, workdir, lm_steering.run_lm_steering(config, workdir)


def test_every_mode_is_scored(steered):
  config, workdir, result = steered
  rows = {r["mode"]: r for r in result["rows"]}
  assert set(rows) == set(lm_steering.MODES)
  for r in rows.values():
    assert r["samples"] >= 6
    for k in ("success", "preservation", "coherence"):
      assert 0.0 <= r[k] <= 1.0
  assert rows["phrase"]["units_per_edit"] == rows["flat"]["units_per_edit"] == 1.0
  with open(os.path.join(workdir, lm_steering.STEERING_FILE)) as f:
    assert json.load(f)["rows"] == result["rows"]
  assert os.path.getsize(result["figure"]) > 100


def test_no_edit_reproduces_the_control_and_an_edit_changes_it(steered):
  config, workdir, _ = steered
  st = lm_steering.LmSteerer(config, workdir)
  idx = np.arange(6)
  plain = st.run(idx, st.empty(6))
  np.testing.assert_array_equal(plain, st.run(idx[::-1], st.empty(6))[::-1])
  masks = st.empty(6)
  masks[st.level_layers[1]][:] = True  # Raise every unit of the phrase layer's SAE.
  assert not np.array_equal(st.run(idx, masks), plain)


def test_plans_use_the_learned_parents_and_the_flat_match(steered):
  config, workdir, _ = steered
  st = lm_steering.LmSteerer(config, workdir)
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
  s = lm_steering.score(before, after, np.array([0, 0]))
  np.testing.assert_array_equal(s["success"], [True, False])
  np.testing.assert_array_equal(s["coherence"], [True, False])
  np.testing.assert_allclose(s["preservation"], [1.0, 0.0])
