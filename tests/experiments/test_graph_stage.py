"""The graph stage's sign-aware linking of units that code a concept's absence."""

import numpy as np

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
