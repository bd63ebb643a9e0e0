"""Recovery of directed graphs: edge precision, recall, F1, structural Hamming distance, AUROC.

Graphs are bool adjacency matrices, ``adj[i, j]`` True for an edge i -> j, either

- square (n, n): a directed graph on one node set (e.g. concepts after matching learned units to
  them). The diagonal holds self-loops, which are compared like any other edge but are never
  candidates for AUROC; or
- block (n_from, n_to): the edges from one level's nodes to the next level's nodes. No edge can be
  reversed, so every mismatched entry counts once. Pass ``block=True`` for a square block matrix;
  a non-square matrix is always a block.

SHD (structural Hamming distance) is the number of edge insertions, deletions and reversals that
turn the learned graph into the true one: for a square graph, each unordered pair {i, j} whose pair
of entries (i -> j, j -> i) differs counts 1, so a REVERSED edge counts 1, not 2; each mismatched
self-loop counts 1.
"""
import numpy as np

from identi.errors import DataError


def _as_adjacency(adj, name: str) -> np.ndarray:
  adj = np.asarray(adj)
  if adj.ndim != 2 or 0 in adj.shape:
    raise DataError(f"{name} has shape {adj.shape}; an adjacency matrix must be 2-D and non-empty: "
                    "pass (n, n) for one graph or (n_from, n_to) for a block between two levels")
  if adj.dtype != np.bool_:
    if not np.issubdtype(adj.dtype, np.number) or not np.all(np.isin(adj, (0, 1))):
      raise DataError(f"{name} is not a 0/1 matrix (dtype {adj.dtype}); pass bool adjacency, e.g. "
                      "scores > threshold")
    adj = adj.astype(bool)
  return adj


def _is_block(shape: tuple[int, ...], block: bool | None) -> bool:
  return bool(block) or shape[0] != shape[1]


def _ratio(num: int, den: int) -> float:
  """num / den, or 1.0 when den = 0 (no claims made, so none is wrong; nothing to find)."""
  return num / den if den else 1.0


def edge_metrics(true_adj, learned_adj, *, block: bool | None = None) -> dict[str, float]:
  """Precision, recall, F1 and SHD of a learned directed graph against the true one.

  Args:
    true_adj: bool (n, n) or (n_from, n_to) true adjacency, True for an edge i -> j.
    learned_adj: bool matrix of the same shape.
    block: treat a square matrix as a block between two levels (no reversals); None means a square
      matrix is one graph.

  Returns:
    dict with 'precision' (correct / learned edges; 1.0 when none is learned), 'recall' (correct
    / true edges; 1.0 when there is none), 'f1' (their harmonic mean; 0.0 when both are 0) and
    'shd' (see the module docstring; an int).
  """
  true_adj = _as_adjacency(true_adj, "true_adj")
  learned_adj = _as_adjacency(learned_adj, "learned_adj")
  if true_adj.shape != learned_adj.shape:
    raise DataError(f"true_adj has shape {true_adj.shape} but learned_adj has "
                    f"{learned_adj.shape}: pass adjacency matrices over the same (matched) nodes")
  tp = int(np.sum(true_adj & learned_adj))
  precision = _ratio(tp, int(np.sum(learned_adj)))
  recall = _ratio(tp, int(np.sum(true_adj)))
  f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
  if _is_block(true_adj.shape, block):
    shd = int(np.sum(true_adj != learned_adj))
  else:
    diff = true_adj != learned_adj
    pair_differs = np.triu(diff | diff.T, k=1)
    shd = int(np.sum(pair_differs)) + int(np.sum(np.diagonal(diff)))
  return {"precision": float(precision), "recall": float(recall), "f1": float(f1), "shd": shd}


def edge_auroc(true_adj, scores, *, block: bool | None = None) -> float:
  """Area under the ROC curve of edge scores against the true edges (rank-based, ties averaged).

  AUROC = P(score of a true edge > score of a non-edge) + 0.5 P(tie), computed from average ranks
  (the Mann-Whitney U statistic). Candidates are all entries, except the diagonal of a square
  single-graph matrix.

  Args:
    true_adj: bool (n, n) or (n_from, n_to) true adjacency.
    scores: real matrix of the same shape; higher means more confident in the edge.
    block: as in ``edge_metrics``.

  Returns:
    The AUROC in [0, 1], or NaN when the candidates hold no true edge or no non-edge.
  """
  true_adj = _as_adjacency(true_adj, "true_adj")
  scores = np.asarray(scores)
  if scores.shape != true_adj.shape:
    raise DataError(f"scores have shape {scores.shape} but true_adj has {true_adj.shape}: pass one "
                    "score per candidate edge")
  if not np.issubdtype(scores.dtype, np.number) or not np.all(np.isfinite(scores)):
    raise DataError("scores must be finite real numbers: replace NaN/Inf scores (e.g. by the "
                    "lowest score) before computing the AUROC")
  if _is_block(true_adj.shape, block):
    candidates = np.ones(true_adj.shape, bool)
  else:
    candidates = ~np.eye(true_adj.shape[0], dtype=bool)
  labels = true_adj[candidates]
  import scipy.stats  # pylint: disable=g-import-not-at-top  (slow; Spearman/AUROC only)
  ranks = scipy.stats.rankdata(scores[candidates].astype(np.float64))
  n_pos = int(np.sum(labels))
  n_neg = labels.size - n_pos
  if n_pos == 0 or n_neg == 0:
    return float("nan")
  u = np.sum(ranks[labels]) - n_pos * (n_pos + 1) / 2.0
  return float(u / (n_pos * n_neg))
