"""The `hsm` subject: per-level views of one world, the concept graph, steering and emergence."""

import jax
import numpy as np
import pytest

from helpers import smoke_config
from identi.errors import ConfigError
from identi.experiments import capture as capture_lib
from identi.experiments.identify import hsm_config
from identi.generators import make_hcm, make_hsm
from identi.subjects import hsm_views
from identi.subjects.base import Subject

# The session's hsm pipeline runs on one xdist worker (make test: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("hsm")


def test_graph_result_is_scored_against_the_true_graph(hsm_run):
  graph = hsm_run.graph
  assert [r["level"] for r in graph["levels"]] == [1, 2, 3]
  assert all(pair["true_edges"] > 0 for pair in graph["pairs"])
  # The smoke world's level-3 wholes are found (its SAE has 4 latents for 2 concepts).
  assert graph["levels"][2]["mcc"] > 0.8
  # Some true part -> whole edge is found among the matched units.
  assert max(pair["recall"] for pair in graph["pairs"]) > 0.0


def test_emergence_separates_selection_from_causation(hsm_run):
  e = hsm_run.steering["emergence"]
  assert e["wholes_hsm"] == 6 and e["wholes_hcm"] > 0
  assert e["hsm_fire_rate"] > e["hcm_fire_rate"] + 0.3
  # Steering a matched unit moves x along the concept's do() change more than not at all.
  assert min(level["fidelity"] for level in hsm_run.steering["levels"]) > 0.0


def test_views_share_one_draw_and_the_hcm_twin_shares_the_graph():
  config = smoke_config("concept_graph_hsm")
  world = hsm_views.build_world(config)
  assert [x.shape for x in world.xs] == [(4096, 24), (4096, 12), (4096, 8)]
  hsm = make_hsm(hsm_config(config))
  hcm = make_hcm(hsm_views.hcm_twin(hsm.config))
  for a, b in zip(hsm.adjacency, hcm.adjacency):
    np.testing.assert_array_equal(a, b)
  z2 = np.asarray(world.samples["z"][1])
  np.testing.assert_allclose(world.xs[1], z2 @ world.mixings[1].T, rtol=1e-4, atol=1e-5)


def test_the_subject_fulfils_the_protocol_and_reads_its_views_exactly(tmp_path):
  subject = hsm_views.HSMViews(smoke_config("concept_graph_hsm"))
  assert isinstance(subject, Subject) and subject.kind == "hsm"
  assert subject.sites == ("view_1", "view_2", "view_3")
  world = subject.sample(jax.random.key(3), 64)
  read = subject.read(world["obs"])
  for z_true, z_read in zip(world["z"], read["z"]):
    np.testing.assert_allclose(z_read, np.asarray(z_true), atol=1e-4)
  summary = subject.run_capture(str(tmp_path))
  assert summary["samples"] == 4096 and summary["sites"] == list(subject.sites)
  levels = capture_lib.levels_of(capture_lib.read_labels(str(tmp_path)))
  np.testing.assert_array_equal(levels[1], np.asarray(subject.world.samples["a"][1]))


def test_bad_configs_name_the_fix():
  config = smoke_config("concept_graph_hsm")
  config.view.dims = (24, 12)
  with pytest.raises(ConfigError, match="view.dims' has 2 entries for 3 levels"):
    hsm_views.build_world(config)
  config = smoke_config("concept_graph_hsm")
  config.graph.codes = "dense"
  with pytest.raises(ConfigError, match="'encoder' or 'minimal'"):
    hsm_views.build_world(config)
  config = smoke_config("concept_graph_hsm")
  config.world.level_sizes = (12,)
  with pytest.raises(ConfigError, match="at least 2 levels"):
    hsm_views.build_world(config)
