"""One-to-one matching of concepts to units maximising the summed weight (|corr|).

``max_weight_assignment`` runs the dense Hungarian algorithm (``scipy.optimize.
linear_sum_assignment``, float64 copies, time ~n^2.4) or, from 4,096 x 4,096 weights on 'auto',
first an exact sparse path (``_certified_assignment``): LAPJVsp on a candidate graph of each row's
16 largest weights (then also each column's), whose assignment is CERTIFIED optimal for the dense
problem by LP duality, checked against every entry in a few streamed passes; the dense Hungarian
decides when the certificate fails. The result is the same assignment (optimal to 1e-9 per entry;
exact ties, e.g. between dead units, may be broken differently). The certificate holds with more
units than concepts (the usual SAE case) or fewer, also when half the concepts are unrecovered; it
fails on square problems where some concepts have no unit of their own: their leftover units
must still be assigned, over noise entries missing from the candidate graph, and the sparse
attempt then adds to the dense solve. Speed and memory: docs/performance.md.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

from identi.errors import ConfigError
from identi.metrics.correlation import as_matrix


_MATCHERS = ("auto", "dense", "sparse")


_SPARSE_MIN_ENTRIES = 4096 * 4096  # 'auto' tries the sparse matcher from this many weights.


_CANDIDATES = 16  # Largest weights kept per row and per column in the sparse candidate graph.


_DENSE_PASSES = 4  # Bellman-Ford passes over the dense matrix while certifying.


_POTENTIAL_SWEEPS = 100  # Bellman-Ford sweeps over the candidate edges.


_POTENTIAL_TOL = 1e-12


_CERTIFICATE_TOL = 1e-9  # Per-entry dual slack accepted as optimal (weights are float32).


_BLOCK_ROWS = 256  # Rows per block of the dense passes: bounded float64 temporaries.


_TOPK_BLOCK_ROWS = 1024  # Rows per block of the candidate search.


class Assignment(NamedTuple):
  """Result of ``max_weight_assignment``.

  Attributes:
    rows: int ``(m,)`` sorted row indices, ``m = min(n_rows, n_cols)``.
    cols: int ``(m,)`` the column assigned to each of ``rows``.
    matcher: 'dense' (Hungarian), 'sparse' (certified candidate graph) or 'sparse->dense' (the
      candidate graph was tried but not certified optimal, so the dense Hungarian decided).
  """
  rows: np.ndarray
  cols: np.ndarray
  matcher: str


def max_weight_assignment(weights, matcher: str = "auto") -> Assignment:
  """A one-to-one assignment of rows to columns maximising the summed weight (see the module
  docstring, 'Matching at scale').

  Args:
    weights: ``(n_rows, n_cols)`` finite weights, e.g. |corr|. Every row is assigned when
      ``n_rows <= n_cols``, every column otherwise.
    matcher: 'dense' (``scipy.optimize.linear_sum_assignment``), 'sparse' (candidate graph with an
      optimality certificate, dense fallback) or 'auto' (sparse for non-negative weights with at
      least 4096 * 4096 entries, dense otherwise).

  Returns:
    An ``Assignment``; both matchers give an optimal assignment.
  """
  if matcher not in _MATCHERS:
    raise ConfigError(f"matcher={matcher!r} is unknown: use one of {', '.join(_MATCHERS)}")
  weights = as_matrix(weights, "weights")
  if matcher == "auto":
    matcher = "sparse" if weights.size >= _SPARSE_MIN_ENTRIES and weights.min() >= 0 else "dense"
  if matcher == "sparse":
    assignment = _sparse_assignment(weights)
    if assignment is not None:
      return Assignment(*assignment, "sparse")
    matcher = "sparse->dense"
  import scipy.optimize  # pylint: disable=g-import-not-at-top  (0.3 s at import: on first use)
  rows, cols = scipy.optimize.linear_sum_assignment(weights, maximize=True)
  return Assignment(rows, cols, matcher)


def _sparse_assignment(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
  """(rows, cols) of a certified optimal assignment, or None when it could not be certified.

  Rows and columns of non-negative weights that are entirely zero are set aside first: they add 0
  to any assignment, and in a square problem they would force poor edges onto the candidate graph.
  The rest is solved by ``_certified_assignment``, and the set-aside ones fill the leftover places.
  """
  n_r, n_c = weights.shape
  if weights.min() < 0:
    live_r, live_c = np.arange(n_r), np.arange(n_c)
  else:
    live_r = np.flatnonzero(weights.max(axis=1) > 0)
    live_c = np.flatnonzero(weights.max(axis=0) > 0)
  rows = cols = np.zeros((0,), np.int64)
  if live_r.size and live_c.size:
    everything = live_r.size == n_r and live_c.size == n_c
    sub = np.ascontiguousarray(weights) if everything else weights[np.ix_(live_r, live_c)]
    assignment = _certified_assignment(sub)
    if assignment is None:
      return None
    rows, cols = live_r[assignment[0]], live_c[assignment[1]]
  k = min(n_r, n_c) - rows.size
  rows = np.concatenate([rows, np.setdiff1d(np.arange(n_r), rows)[:k]])
  cols = np.concatenate([cols, np.setdiff1d(np.arange(n_c), cols)[:k]])
  order = np.argsort(rows)
  return rows[order], cols[order]


def _certified_assignment(w: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
  """(rows, cols) of an optimal assignment of ``w`` from a sparse candidate graph, or None.

  The candidate graph keeps each row's ``_CANDIDATES`` largest weights (then, if that fails, each
  column's too) and is solved exactly with LAPJVsp
  (``scipy.sparse.csgraph.min_weight_full_bipartite_matching``). Its assignment is then certified
  optimal for the dense problem by LP duality. Call the smaller side, which is assigned completely,
  'full' and the other 'optional': potentials ``p >= 0`` on the optional side, 0 where unassigned,
  and ``q_f = w(f, M(f)) - p(M(f))`` on the full side, with ``q_f + p_o >= w(f, o) - tol`` for
  EVERY pair, make the assignment's weight a dual bound on every assignment's weight. ``p`` starts
  as the smallest potentials that satisfy the candidate edges (Bellman-Ford on the graph) and is
  raised by up to ``_DENSE_PASSES`` Bellman-Ford passes over the dense matrix (row blocks in both
  orientations, nothing transposed). None when the candidate graph has no full matching or the
  potentials do not settle (it lacked an edge of every optimum).
  """
  for columns in (False, True):
    assignment = _certify(w, *_candidate_edges(w, columns))
    if assignment is not None:
      return assignment
  return None


def _certify(w: np.ndarray, rows: np.ndarray,
             cols: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
  """The optimal assignment on candidate edges (rows, cols) if certified optimal for ``w``."""
  n_r, n_c = w.shape
  gain = w[rows, cols].astype(np.float64)
  # LAPJVsp minimises and needs non-zero weights: costs top + 1 - w are >= 1.
  graph = scipy.sparse.csr_matrix((gain.max() + 1.0 - gain, (rows, cols)), shape=(n_r, n_c))
  try:
    match_r, match_c = scipy.sparse.csgraph.min_weight_full_bipartite_matching(graph)
  except ValueError:
    return None
  rows_full = n_r <= n_c
  n_full, n_opt = (n_r, n_c) if rows_full else (n_c, n_r)
  partner = np.empty((n_full,), np.int64)
  partner[match_r if rows_full else match_c] = match_c if rows_full else match_r
  matched = w[match_r, match_c].astype(np.float64)[np.argsort(match_r if rows_full else match_c)]
  full, opt = (rows, cols) if rows_full else (cols, rows)
  p = _sparse_potentials(partner[full], opt, gain - matched[full], n_opt)
  if p is None:
    return None
  unassigned = np.ones((n_opt,), bool)
  unassigned[partner] = False
  for _ in range(_DENSE_PASSES):
    q = matched - p[partner]
    needed = np.zeros((n_opt,), np.float64)
    for start in range(0, n_r, _BLOCK_ROWS):
      stop = min(start + _BLOCK_ROWS, n_r)
      if rows_full:
        np.maximum(needed, (w[start:stop] - q[start:stop, None]).max(axis=0), out=needed)
      else:
        needed[start:stop] = np.maximum((w[start:stop] - q[None, :]).max(axis=1), 0.0)
    if np.all(needed <= p + _CERTIFICATE_TOL) and np.all(p[unassigned] <= _CERTIFICATE_TOL):
      return match_r, match_c
    p = np.maximum(p, needed)
  return None


def _candidate_edges(w: np.ndarray, columns: bool) -> tuple[np.ndarray, np.ndarray]:
  """Sorted unique (row, col) edges: each row's ``_CANDIDATES`` largest weights, and each
  column's too when ``columns``.

  One pass over row blocks with XLA's top-k (numpy's argpartition is several times slower),
  carrying every column's best rows so far. The column half costs ~5x the row half on CPU (top-k
  over many short rows), hence it is optional.
  """
  n_r, n_c = w.shape
  m_r, m_c = min(_CANDIDATES, n_c), min(_CANDIDATES, n_r) if columns else 0
  block_rows = min(_TOPK_BLOCK_ROWS, n_r)
  best = (jnp.full((n_c, m_c), -jnp.inf, jnp.float32), jnp.zeros((n_c, m_c), jnp.int32))
  row_top = []
  for start in range(0, n_r, block_rows):
    block = w[start:start + block_rows]
    if block.shape[0] < block_rows:  # Pad with -inf rows: one compiled shape, never a candidate.
      block = np.concatenate([block, np.full((block_rows - block.shape[0], n_c), -np.inf,
                                             block.dtype)])
    top, best = _block_top_k(jnp.asarray(block, jnp.float32), best, start, m_r)
    row_top.append(np.asarray(top))
  row_top = np.concatenate(row_top)[:n_r]
  rows = np.concatenate([np.repeat(np.arange(n_r), m_r), np.asarray(best[1]).ravel()])
  cols = np.concatenate([row_top.ravel(), np.repeat(np.arange(n_c), m_c)])
  edges = np.unique(rows.astype(np.int64) * n_c + cols)
  return edges // n_c, edges % n_c


@functools.partial(jax.jit, static_argnums=3)
def _block_top_k(block: jax.Array, best: tuple[jax.Array, jax.Array], start: jax.Array,
                 m_r: int) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
  """Top ``m_r`` columns of each row of ``block``, and ``best`` (every column's top rows, none
  when it has width 0) updated with the block's rows, which start at row ``start``."""
  top = jax.lax.top_k(block, m_r)[1]
  m_c = best[0].shape[1]
  if m_c == 0:
    return top, best
  values, rows = jax.lax.top_k(block.T, m_c)
  values = jnp.concatenate([best[0], values], axis=1)
  rows = jnp.concatenate([best[1], rows + start], axis=1)
  values, pos = jax.lax.top_k(values, m_c)
  return top, (values, jnp.take_along_axis(rows, pos, axis=1))


def _sparse_potentials(src: np.ndarray, dst: np.ndarray, slack: np.ndarray,
                       n: int) -> np.ndarray | None:
  """Smallest ``p >= 0`` with ``p[dst] >= p[src] + slack`` on every edge, or None.

  Bellman-Ford by whole-edge-list sweeps; an optimal assignment leaves no positive cycle, so this
  settles within the longest path (None after ``_POTENTIAL_SWEEPS``).
  """
  p = np.zeros((n,), np.float64)
  for _ in range(_POTENTIAL_SWEEPS):
    new = p.copy()
    np.maximum.at(new, dst, p[src] + slack)
    if np.all(new <= p + _POTENTIAL_TOL):
      return p
    p = new
  return None
