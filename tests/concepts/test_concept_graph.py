"""Concept-graph extraction recovers the parts -> wholes graph of hierarchical selection worlds."""
import chex
import jax
import numpy as np
import pytest

from identi.concepts import (assign_levels, edge_scores, extract_graph, learn_edges,
                             levels_to_square, presence, split_presence, split_thresholds,
                             transitive_reduction)
from identi.errors import ConfigError, DataError
from identi.generators import HSMConfig, make_hsm, sample_hsm
from identi.metrics.graph import edge_auroc, edge_metrics

# The module's fixtures are expensive: one worker runs all its tests (make test's --dist loadgroup).
pytestmark = pytest.mark.xdist_group("concept_graph")


@pytest.fixture(scope="session")
def world():
  """3 levels (24 parts, 12 wholes, 4 scenes of 2 wholes), selection leak 0.3, 20k samples."""
  hsm = make_hsm(HSMConfig(level_sizes=(24, 12, 4), min_parents=2, max_parents=2, overlap=0.0,
                           pi=0.5, eps=0.3))
  return hsm, sample_hsm(jax.random.key(0), hsm, 20_000)["a"]


def test_recovers_true_graph_exactly(world):
  hsm, a = world
  result = extract_graph(a)
  assert len(result) == 2
  for (adj, scores), true in zip(result, hsm.adjacency):
    chex.assert_equal_shape([adj, scores, true])
    chex.assert_type(scores, np.float32)
    assert adj.dtype == np.bool_
    assert edge_metrics(true, adj)["f1"] == 1.0
    assert edge_auroc(true, scores) > 0.99
    assert np.all(scores[adj] >= 0.9)


def test_robust_to_flipped_bits(world):
  hsm, a = world
  rng = np.random.default_rng(0)
  noisy = [x ^ (rng.random(x.shape) < 0.01) for x in a]
  for l, ((adj, _), true) in enumerate(zip(extract_graph(noisy), hsm.adjacency), start=1):
    f1 = edge_metrics(true, adj)["f1"]
    assert f1 >= 0.9, f"levels {l} -> {l + 1}: F1 {f1:.3f} with 1% flipped bits"


def test_sibling_parts_are_not_parents():
  # Strong selection (eps 0.01) makes each scene's two wholes appear together, so the parts of a
  # whole's sibling pass the necessity threshold; the sufficiency cover must still reject them.
  hsm = make_hsm(HSMConfig(level_sizes=(8, 4, 2), min_parents=2, max_parents=2, overlap=0.0,
                           pi=0.3, eps=0.01))
  a = sample_hsm(jax.random.key(1), hsm, 20_000)["a"]
  parts_wholes, wholes_scenes = hsm.adjacency
  siblings = (parts_wholes @ (wholes_scenes @ wholes_scenes.T) > 0) & ~parts_wholes
  assert siblings.sum() == 8
  adj, scores = learn_edges(a[0], a[1], precision=0.99)
  assert np.all(scores[siblings] >= 0.9), "sibling parts should pass necessity in this world"
  assert not np.any(adj & siblings)
  assert edge_metrics(parts_wholes, adj)["f1"] == 1.0


def test_cover_is_minimal_and_respects_min_support():
  rng = np.random.default_rng(0)
  lower = rng.random((4000, 5)) < 0.4
  lower[:, 4] = lower[:, 0]
  upper = np.stack([lower[:, 0] & lower[:, 1], lower[:, 2] & lower[:, 3],
                    np.zeros(4000, bool)], axis=1)
  upper[:4, 2] = lower[:4] = True
  adj, scores = learn_edges(lower, upper, min_support=5)
  assert adj[:, 1].tolist() == [False, False, True, True, False]
  assert adj[1, 0] and adj[[0, 4], 0].sum() == 1, "the duplicate of part 0 is redundant"
  assert not adj[:, 2].any(), "a unit present in 4 < min_support samples gets no parents"
  np.testing.assert_allclose(scores[:, 2], 1.0)


def test_threshold_rule_recovers_tau_of_parents_wholes():
  # Wholes emerge from 2 of their 3 parts: each part's necessity is ~0.7, and any two parts
  # suffice, so the conjunctive cover misses edges; the threshold rule recovers all of them.
  hsm = make_hsm(HSMConfig(level_sizes=(18, 6, 2), min_parents=3, max_parents=3, overlap=0.0,
                           pi=0.3, tau=2, eps=0.01, magnitude="uniform"))
  a = sample_hsm(jax.random.key(0), hsm, 20_000)["a"]
  for lower, upper, true in zip(a[:-1], a[1:], hsm.adjacency):
    adj, scores = learn_edges(lower, upper, necessity=0.5, max_parents=6, rule="threshold")
    assert edge_metrics(true, adj)["f1"] == 1.0
    assert np.all(scores[true] < 0.9), "no part is necessary at 0.9 for a 2-of-3 whole"
    assert edge_metrics(true, learn_edges(lower, upper, necessity=0.5)[0])["recall"] < 1.0
  rng = np.random.default_rng(0)
  lower = rng.random((4000, 5)) < 0.4
  upper = (lower[:, :3].sum(1) >= 2)[:, None]
  adj, _ = learn_edges(lower, upper, necessity=0.3, rule="threshold")
  assert adj[:, 0].tolist() == [True, True, True, False, False]
  with pytest.raises(ConfigError, match="rule='or' is unknown"):
    learn_edges(lower, upper, rule="or")


def test_contrast_score_keeps_always_present_units_out_of_the_candidates():
  # Four background units present in almost every sample have necessity ~1 for the whole and
  # fill all max_parents = 4 candidate slots; ranked by contrast they score ~0 and the three
  # true parts (the whole = at least 2 of them) come first.
  rng = np.random.default_rng(0)
  parts = rng.random((6000, 3)) < 0.4
  background = rng.random((6000, 4)) < 0.98
  lower = np.concatenate([background, parts], axis=1)
  upper = (parts.sum(1) >= 2)[:, None]
  kwargs = dict(necessity=0.3, max_parents=4, rule="threshold")
  adj, _ = learn_edges(lower, upper, **kwargs)
  assert not adj[4:, 0].all(), "by necessity the background crowds the parts out"
  adj, scores = learn_edges(lower, upper, score="contrast", **kwargs)
  assert adj[:, 0].tolist() == [False] * 4 + [True] * 3
  # Contrast of a part: P(part | whole) - P(part | no whole) = 0.727 - 0.222 at p = 0.4.
  assert np.all(np.abs(scores[:4, 0]) < 0.05)
  np.testing.assert_allclose(scores[4:, 0], 0.505, atol=0.05)
  with pytest.raises(ConfigError, match="score='lift' is unknown"):
    learn_edges(lower, upper, score="lift")


def test_isa_rule_recovers_a_taxonomy_the_covers_miss():
  # 12 members, 3 categories of 4 (a category is present when ANY member is), plus a background
  # unit that is nearly always on and an upper unit that is always on.
  rng = np.random.default_rng(0)
  member = rng.integers(0, 12, 4000)
  lower = np.zeros((4000, 13), bool)
  lower[np.arange(4000), member] = True
  lower[:, 12] = rng.random(4000) < 0.97
  upper = np.zeros((4000, 4), bool)
  upper[np.arange(4000), member // 4] = True
  upper[:, 3] = True
  true = np.zeros((13, 4), bool)
  true[np.arange(12), np.arange(12) // 4] = True
  adj, _ = learn_edges(lower, upper, necessity=0.5, rule="and")
  assert not (adj & true).any()  # A member's necessity for its category is only 1/4.
  adj, scores = learn_edges(lower, upper, precision=0.6, rule="isa", score="contrast")
  np.testing.assert_array_equal(adj, true)  # The always-on unit's contrast is 0.
  # 1 - P(category | another member) = 1 - (1/3 - 1/12) / (11/12).
  np.testing.assert_allclose(scores[true], 1 - 3 / 11, atol=0.03)
  adj, _ = learn_edges(lower, upper, precision=0.9, rule="isa", score="necessity")
  assert adj[:12, 3].all() and not adj[12, :3].any()  # By implication alone, it is reached.
  adj, _ = learn_edges(lower[:40], upper[:40], precision=0.6, rule="isa", min_support=20,
                       score="contrast")
  assert not adj.any()  # Every member is seen fewer than 20 times.


def test_edge_scores_match_counts_over_padded_chunks():
  rng = np.random.default_rng(0)
  lower = rng.random((1003, 6)) < 0.3
  upper = rng.random((1003, 4)) < 0.2
  upper[:, 3] = False
  scores = edge_scores(lower, upper, chunk=128)
  chex.assert_shape(scores, (6, 4))
  chex.assert_type(scores, np.float32)
  expected = (lower.T.astype(int) @ upper.astype(int)) / np.maximum(upper.sum(0), 1)
  np.testing.assert_allclose(scores, expected, rtol=1e-6)
  np.testing.assert_array_equal(scores[:, 3], 0.0)


def test_presence_thresholds_relative_to_each_units_scale():
  codes = np.zeros((200, 3), np.float32)
  codes[:100, 0] = 10.0
  codes[100:110, 0] = 0.5
  codes[:50, 1] = 0.01
  codes[:, 2] = -1.0
  present = presence(codes)
  chex.assert_shape(present, (200, 3))
  assert present.dtype == np.bool_
  np.testing.assert_array_equal(present[:, 0], np.arange(200) < 100)
  np.testing.assert_array_equal(present[:, 1], np.arange(200) < 50)
  assert not present[:, 2].any(), "a unit never positive is never present"
  np.testing.assert_array_equal(presence(codes, rel_threshold=0.0)[:, 0], np.arange(200) < 110)


def test_split_presence_finds_the_wholes_of_graded_ancestor_codes():
  """A shared-ancestor unit codes the sum of its children's codes: positive wherever one child
  is, while its whole needs 2 of 3. The relative rule calls it present wherever it is positive;
  the two-class split recovers the whole."""
  rng = np.random.default_rng(0)
  child = (rng.random((4000, 6)) < 0.4) * rng.uniform(0.5, 1.5, (4000, 6))
  codes = np.stack([child[:, :3].sum(1), child[:, 3:].sum(1)], axis=1) / 3
  whole = np.stack([(child[:, :3] > 0).sum(1) >= 2, (child[:, 3:] > 0).sum(1) >= 2], axis=1)

  def f1(p, t):
    return 2 * np.sum(p & t) / (p.sum() + t.sum())

  split, relative = split_presence(codes), presence(codes)
  assert split.dtype == np.bool_ and split.shape == codes.shape
  for j in range(2):
    assert f1(split[:, j], whole[:, j]) > 0.85 > 0.65 > f1(relative[:, j], whole[:, j])
  np.testing.assert_array_equal(split, (codes > 0) & (codes > split_thresholds(codes)))


def test_split_thresholds_of_degenerate_units_and_bad_codes():
  codes = np.array([[0.0, 1.0, 1.0], [0.0, 1.0, 3.0], [0.0, 1.0, 2.9], [-1.0, 0.0, 1.1]])
  np.testing.assert_array_equal(split_thresholds(codes), [np.inf, 0.0, 1.1])
  with pytest.raises(DataError, match="finite"):
    split_thresholds(np.array([[np.nan, 1.0]]))
  with pytest.raises(DataError, match="2-D"):
    split_presence(np.ones(3))


def test_agrees_with_pc_between_levels():
  pc_module = pytest.importorskip("causallearn.search.ConstraintBased.PC")
  hsm = make_hsm(HSMConfig(level_sizes=(8, 4), min_parents=2, max_parents=2, overlap=0.0,
                           pi=0.3, eps=0.3))
  a = sample_hsm(jax.random.key(2), hsm, 5_000)["a"]
  true = hsm.adjacency[0]
  adj, _ = learn_edges(a[0], a[1])
  data = np.concatenate(a, axis=1).astype(np.float64)
  data += 1e-3 * np.random.default_rng(0).normal(size=data.shape)
  graph = pc_module.pc(data, 0.01, "fisherz", show_progress=False).G.graph
  skeleton = (graph != 0) | (graph.T != 0)
  pc_block = skeleton[:8, 8:]
  pc_f1 = edge_metrics(true, pc_block)["f1"]
  both = np.sum(true & adj & pc_block) / np.sum(true)
  assert both >= 0.9, f"PC and learn_edges share {both:.0%} of the true edges; PC F1 {pc_f1:.3f}"
  assert edge_metrics(true, adj)["f1"] == 1.0


def test_transitive_reduction_drops_shortcuts():
  adj = np.zeros((4, 4), bool)
  adj[0, 1] = adj[1, 2] = adj[2, 3] = adj[0, 2] = adj[0, 3] = True
  expected = np.zeros((4, 4), bool)
  expected[0, 1] = expected[1, 2] = expected[2, 3] = True
  np.testing.assert_array_equal(transitive_reduction(adj), expected)


def test_transitive_reduction_names_a_node_on_a_cycle():
  adj = np.zeros((5, 5), bool)
  adj[0, 1] = adj[1, 2] = adj[2, 3] = adj[3, 1] = adj[3, 4] = True
  with pytest.raises(DataError, match=r"cycle through node [123]:.*must be acyclic"):
    transitive_reduction(adj)
  with pytest.raises(DataError, match="cycle through node 0"):
    transitive_reduction(np.eye(1, dtype=bool))


def test_levels_to_square_places_blocks_and_keeps_metrics(world):
  hsm, _ = world
  square = levels_to_square(hsm.adjacency)
  chex.assert_shape(square, (40, 40))
  np.testing.assert_array_equal(square[:24, 24:36], hsm.adjacency[0])
  np.testing.assert_array_equal(square[24:36, 36:], hsm.adjacency[1])
  assert square.sum() == sum(b.sum() for b in hsm.adjacency)
  np.testing.assert_array_equal(transitive_reduction(square), square)
  assert edge_metrics(square, square)["shd"] == 0
  with pytest.raises(DataError, match="block 2 has 4 rows"):
    levels_to_square([hsm.adjacency[0], hsm.adjacency[1][:4]])


def test_bad_inputs_raise_data_errors(world):
  _, a = world
  with pytest.raises(DataError, match="mismatched sample counts: level 2 has 10 samples"):
    extract_graph([a[0], a[1][:10], a[2]])
  with pytest.raises(DataError, match="mismatched sample counts: lower has 20000.*upper has 5"):
    edge_scores(a[0], a[1][:5])
  with pytest.raises(DataError, match="level 2 .* dtype float32"):
    extract_graph([a[0], a[1].astype(np.float32)])
  with pytest.raises(DataError, match="at least 2 levels"):
    extract_graph([a[0]])
  with pytest.raises(DataError, match="finite"):
    presence(np.full((3, 2), np.nan))
  with pytest.raises(ConfigError, match="max_parents=0"):
    learn_edges(a[0], a[1], max_parents=0)
  with pytest.raises(ConfigError, match="necessity=1.5"):
    learn_edges(a[0], a[1], necessity=1.5)


def test_assign_levels_puts_shared_units_at_the_most_abstract_view():
  rng = np.random.default_rng(0)
  high = rng.exponential(size=(500, 2)) * (rng.random((500, 2)) < 0.3)
  low = rng.exponential(size=(500, 3)) * (rng.random((500, 3)) < 0.3)
  view1 = np.concatenate([low, high * 2.0], axis=1)  # Cumulative view 1 sees both levels.
  view2 = high[:, ::-1].copy()
  levels = assign_levels([view1, view2], 0.9)
  np.testing.assert_array_equal(levels[0], [1, 1, 1, 2, 2])
  np.testing.assert_array_equal(levels[1], [2, 2])
