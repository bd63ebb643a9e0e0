"""Tests for identi/concepts/experiment.py: the concept-graph and steering experiment."""

import numpy as np
import pytest

from identi.concepts import assign_levels, run_concept_graph, run_steering
from identi.concepts.experiment import (build_world, concept_variant, default_concept_config,
                                        hcm_twin, hsm_config)
from identi.errors import ConfigError
from identi.generators import make_hcm, make_hsm

# One xdist worker runs this module (make test: --dist loadgroup): its fixture is expensive.
pytestmark = pytest.mark.xdist_group("concepts_experiment")


def _smoke():
  return concept_variant(default_concept_config(), "smoke")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("concepts"))
  config = _smoke()
  return run_concept_graph(config, workdir), run_steering(config, workdir)


def test_graph_result_is_scored_against_the_true_graph(results):
  graph, _ = results
  assert [r["level"] for r in graph["levels"]] == [1, 2, 3]
  for pair in graph["pairs"]:
    assert 0.0 <= pair["precision"] <= 1.0 and 0.0 <= pair["f1"] <= 1.0
    assert pair["true_edges"] > 0
  # The smoke world's level-3 wholes are found (its SAE has 4 latents for 2 concepts).
  assert graph["levels"][2]["mcc"] > 0.8


def test_emergence_separates_selection_from_causation(results):
  _, steering = results
  e = steering["emergence"]
  assert e["wholes_hsm"] == 6 and e["wholes_hcm"] > 0
  assert e["hsm_fire_rate"] > e["hcm_fire_rate"] + 0.3
  for level in steering["levels"]:
    assert -1.0 <= level["fidelity"] <= 1.0 and 0.0 <= level["specificity"] <= 1.0


def test_views_share_one_draw_and_the_hcm_twin_shares_the_graph():
  config = _smoke()
  world = build_world(config)
  assert [x.shape for x in world.xs] == [(4096, 24), (4096, 12), (4096, 8)]
  hsm = make_hsm(hsm_config(config))
  hcm = make_hcm(hcm_twin(hsm.config))
  for a, b in zip(hsm.adjacency, hcm.adjacency):
    np.testing.assert_array_equal(a, b)
  z2 = np.asarray(world.samples["z"][1])
  np.testing.assert_allclose(world.xs[1], z2 @ world.mixings[1].T, rtol=1e-4, atol=1e-5)


def test_assign_levels_puts_shared_units_at_the_most_abstract_view():
  rng = np.random.default_rng(0)
  high = rng.exponential(size=(500, 2)) * (rng.random((500, 2)) < 0.3)
  low = rng.exponential(size=(500, 3)) * (rng.random((500, 3)) < 0.3)
  view1 = np.concatenate([low, high * 2.0], axis=1)  # Cumulative view 1 sees both levels.
  view2 = high[:, ::-1].copy()
  levels = assign_levels([view1, view2], 0.9)
  np.testing.assert_array_equal(levels[0], [1, 1, 1, 2, 2])
  np.testing.assert_array_equal(levels[1], [2, 2])


def test_bad_configs_name_the_fix():
  config = _smoke()
  config.view.dims = (24, 12)
  with pytest.raises(ConfigError, match="view.dims' has 2 entries for 3 levels"):
    build_world(config)
  config = _smoke()
  config.graph.codes = "dense"
  with pytest.raises(ConfigError, match="'encoder' or 'minimal'"):
    build_world(config)
  config = _smoke()
  config.world.level_sizes = (12,)
  with pytest.raises(ConfigError, match="at least 2 levels"):
    build_world(config)
