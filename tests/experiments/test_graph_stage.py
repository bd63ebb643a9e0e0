"""The graph stage's sign-aware linking of units that code a concept's absence."""

import ml_collections
import numpy as np
import pytest

from identi.errors import ConfigError
from identi.experiments import graph as graph_lib


def test_sign_aware_linking_negates_absence_units_and_finds_their_parts():
  rng = np.random.default_rng(0)
  lower = rng.random((4000, 6)) < 0.4
  whole_a = lower[:, [0, 1, 2]].sum(axis=1) >= 2  # A present-coding unit.
  whole_b = lower[:, [3, 4, 5]].sum(axis=1) >= 2  # Coded by its absence below.
  upper = np.stack([whole_a, ~whole_b], axis=1)
  g = graph_lib.graph_schema()
  plain = graph_lib.learn_graph([lower, upper], g)[0][0]
  assert not plain[:, 1].any()  # Unsigned rules find no parts of the absence unit.
  present, negated = graph_lib.orient_units([lower, upper], g)
  assert negated[0].tolist() == [False] * 6 and negated[1].tolist() == [False, True]
  np.testing.assert_array_equal(present[1][:, 1], whole_b)
  adj = graph_lib.learn_graph(present, g)[0][0]
  assert adj[:3, 0].any() and not adj[3:, 0].any()
  assert adj[3:, 1].any() and not adj[:3, 1].any()  # Negated, it links to its own parts.


def test_a_unit_that_is_never_present_is_not_negated():
  """Negated, a silent unit would be present everywhere, and a lower unit present everywhere
  (a grammar's BOS) would pass as its parent (P(i | not j) has no samples)."""
  rng = np.random.default_rng(1)
  lower = rng.random((4000, 6)) < 0.4
  lower[:, 5] = True
  whole = lower[:, [0, 1, 2]].sum(axis=1) >= 2
  upper = np.stack([whole, np.zeros(4000, bool)], axis=1)
  present, negated = graph_lib.orient_units([lower, upper], graph_lib.graph_schema())
  assert negated[1].tolist() == [False, False]
  assert not present[1][:, 1].any()


def test_shared_ancestor_units_link_to_their_parts_by_their_split_presence(tmp_path):
  """Upper units that are shared ancestors code the sum of their children's codes plus a little
  of other atoms' (positive almost everywhere). With graph.ancestor_presence='split' they link to
  their parts; treated as every other unit, their presence is nearly constant and the threshold
  rule finds fewer of the edges."""
  rng = np.random.default_rng(0)
  n = 4000
  whole = rng.random((n, 2)) < 0.45
  # Selection: a present whole shows 2 or 3 of its parts; an absent one none.
  on = np.repeat(whole, 3, axis=1) & (rng.random((n, 6)) < 0.75)
  for w in range(2):
    short = whole[:, w] & (on[:, 3 * w:3 * w + 3].sum(1) < 2)
    on[short, 3 * w:3 * w + 2] = True
  parts = on * rng.uniform(0.5, 1.5, (n, 6))
  own = np.stack([parts[:, :3].sum(1), parts[:, 3:].sum(1)], axis=1)
  wholes = (own + 0.3 * own[:, ::-1] + rng.uniform(0.05, 0.2, (n, 2))) / 3
  codes = np.concatenate([parts, wholes], axis=1).astype(np.float32)
  z = np.concatenate([on, whole], axis=1).astype(np.float32)
  adjacency = [np.kron(np.eye(2, dtype=bool), np.ones((3, 1), bool))]
  # Parts read at site 0, wholes at site 1 (its parts' units and two ancestors).
  sites = graph_lib.SiteCodes("site", ["below", "above"], [codes[:, :6], codes], [z, z],
                              ancestors=[np.zeros(0, int), np.array([6, 7])])
  config = ml_collections.ConfigDict({"graph": graph_lib.graph_schema()})
  pair = {}
  for mode in graph_lib.ANCESTOR_PRESENCE:
    config.graph.ancestor_presence = mode
    result = graph_lib.site_graph(config, sites, [0, 1], [6, 2], adjacency, str(tmp_path))[0]
    pair[mode] = result["pairs"][0]
    assert result["ancestor_units"] == [[], [6, 7]]
    assert result["matches"][1]["matching"] == [6, 7]
    assert result["ancestor_presence"] == mode
  assert pair["split"]["precision"] == 1.0 and pair["split"]["auroc"] == 1.0, pair
  assert pair["split"]["f1"] >= 0.8 > pair["relative"]["f1"] + 0.2, pair
  config.graph.ancestor_presence = "splitt"
  with pytest.raises(ConfigError, match="ancestor_presence"):
    graph_lib.validate_graph_section(config.graph)
