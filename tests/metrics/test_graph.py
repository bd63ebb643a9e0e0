"""Tests for identi.metrics.graph, against hand-computed values."""
import math

import numpy as np
import pytest

from identi.errors import DataError
from identi.metrics.graph import edge_auroc, edge_metrics


def _adj(n, edges):
  a = np.zeros((n, n), bool)
  for i, j in edges:
    a[i, j] = True
  return a


def test_edge_metrics_hand_computed_with_a_reversed_edge():
  # True: 0->1, 1->2, 2->3. Learned: 0->1 (correct), 2->1 (reversed 1->2), 0->3 (extra).
  # TP 1 of 3 learned and 3 true: precision = recall = f1 = 1/3.
  # SHD: pair {1,2} reversed (1) + pair {2,3} missing (1) + pair {0,3} extra (1) = 3.
  true = _adj(4, [(0, 1), (1, 2), (2, 3)])
  learned = _adj(4, [(0, 1), (2, 1), (0, 3)])
  m = edge_metrics(true, learned)
  assert m == pytest.approx({"precision": 1 / 3, "recall": 1 / 3, "f1": 1 / 3, "shd": 3})
  assert isinstance(m["shd"], int)


def test_reversal_counts_one_not_two_and_self_loops_count_once():
  true = _adj(3, [(0, 1)])
  assert edge_metrics(true, _adj(3, [(1, 0)]))["shd"] == 1
  # Both directions learned for a single true edge: one deletion.
  assert edge_metrics(true, _adj(3, [(0, 1), (1, 0)]))["shd"] == 1
  # An extra self-loop on node 2 plus the reversal.
  assert edge_metrics(true, _adj(3, [(1, 0), (2, 2)]))["shd"] == 2
  assert edge_metrics(true, true) == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "shd": 0}


def test_block_adjacency_counts_every_mismatch():
  # 2 parents -> 3 children. True: p0->c0, p0->c1, p1->c2. Learned: p0->c0, p1->c1, p1->c2, p0->c2.
  true = np.array([[1, 1, 0], [0, 0, 1]], bool)
  learned = np.array([[1, 0, 1], [0, 1, 1]], bool)
  # TP 2, learned 4, true 3: precision 1/2, recall 2/3, f1 = 2 * (1/3) / (7/6) = 4/7; SHD 3.
  assert edge_metrics(true, learned) == pytest.approx(
      {"precision": 0.5, "recall": 2 / 3, "f1": 4 / 7, "shd": 3})
  # A square block matrix: the transposed-looking mismatch is two edits, not a reversal.
  sq_true = np.array([[0, 1], [0, 0]], bool)
  sq_learned = np.array([[0, 0], [1, 0]], bool)
  assert edge_metrics(sq_true, sq_learned, block=True)["shd"] == 2
  assert edge_metrics(sq_true, sq_learned)["shd"] == 1


def test_empty_graph_conventions():
  empty = np.zeros((3, 3), bool)
  true = _adj(3, [(0, 1)])
  assert edge_metrics(true, empty) == {"precision": 1.0, "recall": 0.0, "f1": 0.0, "shd": 1}
  assert edge_metrics(empty, empty) == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "shd": 0}


def test_edge_auroc_hand_computed_with_ties():
  # Off-diagonal candidates of a 3-node graph: 6. True edges 0->1 and 1->2.
  true = _adj(3, [(0, 1), (1, 2)])
  scores = np.array([[9.0, 0.8, 0.3],
                     [0.3, 9.0, 0.5],
                     [0.1, 0.5, 9.0]])
  # Positives 0.8, 0.5; negatives 0.3, 0.3, 0.1, 0.5 (diagonal 9.0 ignored).
  # Pairs won: 0.8 beats all 4; 0.5 beats 3 and ties 1 -> (4 + 3 + 0.5) / 8 = 0.9375.
  assert edge_auroc(true, scores) == pytest.approx(0.9375)
  assert edge_auroc(true, -scores) == pytest.approx(1 - 0.9375)
  assert edge_auroc(true, np.ones((3, 3))) == pytest.approx(0.5)


def test_edge_auroc_block_and_undefined():
  true = np.array([[1, 0], [0, 1]], bool)
  # As a block all 4 entries are candidates: positives 0.9, 0.2; negatives 0.4, 0.1.
  # 0.9 beats both, 0.2 beats 0.1 only -> 3 / 4.
  scores = np.array([[0.9, 0.4], [0.1, 0.2]])
  assert edge_auroc(true, scores, block=True) == pytest.approx(0.75)
  # As one graph the diagonal is excluded and no true edge is left.
  assert math.isnan(edge_auroc(true, scores))


def test_bad_input_raises_errors_naming_the_fix():
  with pytest.raises(DataError, match="same"):
    edge_metrics(np.zeros((2, 2), bool), np.zeros((3, 3), bool))
  with pytest.raises(DataError, match="not a 0/1 matrix"):
    edge_metrics(np.full((2, 2), 0.5), np.zeros((2, 2), bool))
  with pytest.raises(DataError, match="must be 2-D"):
    edge_metrics(np.zeros(4, bool), np.zeros(4, bool))
  with pytest.raises(DataError, match="NaN/Inf"):
    edge_auroc(np.eye(2, dtype=bool), np.array([[np.nan, 0.0], [0.0, 1.0]]))
