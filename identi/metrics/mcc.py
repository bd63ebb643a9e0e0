"""Mean correlation coefficient (MCC): how well learned units identify ground-truth concepts.

Definition used by identi:

1. Split the samples in order: the first ``fit_fraction`` of them is the fit half, the rest the
   score half.
2. On each half, compute the absolute correlation matrix between true concepts (columns of
   ``z_true``) and learned units (columns of ``codes``): |Pearson|, or |Spearman| (Pearson of
   ranks, ties averaged).
3. Match concepts to units one-to-one maximising the summed fit-half |corr| (Hungarian algorithm;
   at scale an exact sparse equivalent, see below).
4. Score each concept by the score-half |corr| with its matched unit (0 when there are fewer units
   than concepts and it is left unmatched), and average over TRUE concepts.

Fitting the matching and scoring it on disjoint samples keeps chance correlations from inflating
the score when there are many units. Constant columns (dead units, never-active concepts) have
correlation 0, never NaN.

Streamed correlation. ``mcc`` holds all samples in memory; ``streamed_mcc`` takes two streams of
batches (fit, score) instead, and ``streamed_correlation`` computes one correlation matrix from a
stream. Both fold batches into a ``CorrelationState`` (``correlation_init``, the jitted
``correlation_update``, ``correlation_finalize``): per batch one float32 matmul of batch-centred
columns at HIGHEST precision, merged with Chan et al.'s parallel formula, so memory is the
``(k_a, k_b)`` co-moment whatever the number of samples, batches may be sharded over a data mesh,
and a large offset does not cancel in float32 as raw sums of products would. Pearson only. At
16,384 x 16,384 the state is 1 GiB and a batch of 4,096 samples merges in ~21 s on 2 CPU cores
(0.54 of the measured fp32 matmul rate); ``benchmarks/mcc_scale.py`` measures it all.

Matching at scale (``max_weight_assignment``), measured on a realistic 16,384 x 16,384 |corr|
matrix (noise |N(0, 1/sqrt(32768))|, one entry in [0.5, 0.99] per concept) on 2 shared AMD EPYC
cores: the dense Hungarian algorithm (``scipy.optimize.linear_sum_assignment``) takes 25-28 s and
+3.9 GiB of peak memory over the 1 GiB float32 input (it works on float64 copies); 5-7 s and
+1.0 GiB at 8,192; ~1 s at 4,096. Not minutes, but it grows ~n^2.4 in time and as float64 n^2 in
memory, so from 4,096 x 4,096 weights on 'auto' first tries an exact sparse path
(``_certified_assignment``): LAPJVsp on a candidate graph of each row's 16 largest weights (then
also each column's), whose assignment is CERTIFIED optimal for the dense problem by LP duality,
checked against every entry in a few streamed passes; the dense Hungarian decides when the
certificate fails. On the matrix above the sparse path takes 3-6 s and +0.2 GiB (7 s and +1.1 GiB
with dead units, which are set aside in a copy) and gives the same assignment (optimal to 1e-9 per
entry; exact ties, e.g. between dead units, may be broken differently). The certificate holds with
more units than concepts (the usual SAE case) or fewer, also when half the concepts are
unrecovered; it fails on square problems where some concepts have no unit of their own (e.g.
10 %): their leftover units must still be assigned, over noise entries missing from the candidate
graph. Then the sparse attempt adds to the dense solve (50 s in all at 16,384, 10 % unrecovered).
"""
import functools
from typing import Iterable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
import scipy.sparse
import scipy.sparse.csgraph
import scipy.stats
from jax.sharding import NamedSharding, PartitionSpec

from identi.errors import ConfigError, DataError

_METHODS = ("pearson", "spearman")
_MIN_SAMPLES_PER_HALF = 4
_MATCHERS = ("auto", "dense", "sparse")
_SPARSE_MIN_ENTRIES = 4096 * 4096  # 'auto' tries the sparse matcher from this many weights.
_CANDIDATES = 16  # Largest weights kept per row and per column in the sparse candidate graph.
_DENSE_PASSES = 4  # Bellman-Ford passes over the dense matrix while certifying.
_POTENTIAL_SWEEPS = 100  # Bellman-Ford sweeps over the candidate edges.
_POTENTIAL_TOL = 1e-12
_CERTIFICATE_TOL = 1e-9  # Per-entry dual slack accepted as optimal (weights are float32).
_BLOCK_ROWS = 256  # Rows per block of the dense passes: bounded float64 temporaries.
_TOPK_BLOCK_ROWS = 1024  # Rows per block of the candidate search.


class MCCResult(NamedTuple):
  """Result of ``mcc`` and ``streamed_mcc``.

  Attributes:
    mcc: mean over true concepts of the score-half |corr| with the matched unit.
    per_concept: ``(n_true,)`` score-half |corr| of each concept (0 when unmatched).
    matching: ``(n_true,)`` int index of the learned unit matched to each concept, -1 if unmatched.
    corr_fit: ``(n_true, n_units)`` |corr| on the fit half, from which the matching was made.
  """
  mcc: float
  per_concept: np.ndarray
  matching: np.ndarray
  corr_fit: np.ndarray


def _as_matrix(a, name: str) -> np.ndarray:
  """Validates a 2-D numeric array with finite values."""
  a = np.asarray(a)
  if a.ndim != 2:
    raise DataError(
        f"{name} has {a.ndim} dimensions (shape {a.shape}); it must be 2-D (samples, columns): "
        "reshape it to (num_samples, -1)")
  if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
    raise DataError(f"{name} has dtype {a.dtype}; pass a numeric array, e.g. a.astype(np.float32)")
  if a.shape[1] == 0:
    raise DataError(f"{name} has shape {a.shape} with no columns: pass at least one column")
  if a.dtype != np.bool_:
    bad = ~np.isfinite(a)
    if bad.any():
      row = int(np.argmax(bad.any(axis=1)))
      raise DataError(
          f"{name} holds {int(bad.sum())} NaN/Inf values (first in row {row}): remove or fix those "
          "samples before computing correlations")
  return a


@jax.jit
def _standardised_corr(a: jax.Array, mean_a: jax.Array, const_a: jax.Array, b: jax.Array,
                       mean_b: jax.Array, const_b: jax.Array) -> jax.Array:
  """Correlation matrix as the matmul of centred, unit-norm columns (constant columns -> 0)."""

  def standardise(x, mean, const):
    c = x - mean
    norm = jnp.sqrt(jnp.sum(jnp.square(c), axis=0))
    ok = (~const) & (norm > 0)
    return jnp.where(ok, c / jnp.where(ok, norm, 1.0), 0.0)

  sa = standardise(a, mean_a, const_a)
  sb = standardise(b, mean_b, const_b)
  corr = jnp.matmul(sa.T, sb, precision=jax.lax.Precision.HIGHEST)
  return jnp.clip(corr, -1.0, 1.0)


def _prepare(x: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Float32 columns (ranked for Spearman), their float64 means and a constant-column mask."""
  if method == "spearman":
    x = scipy.stats.rankdata(x, axis=0)
  elif not np.issubdtype(x.dtype, np.floating):
    x = x.astype(np.float64)
  const = np.ptp(x, axis=0) == 0
  mean = np.mean(x, axis=0, dtype=np.float64).astype(np.float32)
  return np.asarray(x, np.float32), mean, const


def correlation_matrix(a, b, method: str = "pearson") -> np.ndarray:
  """Signed correlation between every column of ``a`` and every column of ``b``.

  Args:
    a: ``(n, k_a)`` samples by columns.
    b: ``(n, k_b)`` samples by columns.
    method: 'pearson', or 'spearman' (Pearson correlation of ranks, ties averaged).

  Returns:
    float32 ``(k_a, k_b)`` in [-1, 1]; entries involving a constant column are 0.
  """
  if method not in _METHODS:
    raise ConfigError(f"method={method!r} is unknown: use one of {', '.join(_METHODS)}")
  a = _as_matrix(a, "a")
  b = _as_matrix(b, "b")
  if a.shape[0] != b.shape[0]:
    raise DataError(
        f"a has {a.shape[0]} samples but b has {b.shape[0]}: pass the same samples, row by row")
  if a.shape[0] < 2:
    raise DataError(f"got {a.shape[0]} samples; a correlation needs at least 2: pass more samples")
  pa = _prepare(a, method)
  pb = _prepare(b, method)
  return np.asarray(_standardised_corr(*pa, *pb))


class CorrelationState(NamedTuple):
  """Running Pearson statistics of the columns of two paired streams, merged batch by batch.

  Batches are merged with Chan et al.'s parallel formula: every batch contributes the cross product
  of its deviations from its own means, and the merge adds the mean-difference term
  ``n_s * n_b / n * outer(delta_a, delta_b)``. No raw sum of products is ever formed, so a large
  common offset in a column does not cancel catastrophically in float32.

  Attributes:
    count: int32 number of samples seen.
    mean_a: float32 ``(k_a,)`` column means of a.
    mean_b: float32 ``(k_b,)`` column means of b.
    comoment: float32 ``(k_a, k_b)`` sum over samples of ``(a - mean_a)[:, None] * (b - mean_b)``.
    ssd_a: float32 ``(k_a,)`` sum of squared deviations of a from its mean.
    ssd_b: float32 ``(k_b,)`` sum of squared deviations of b from its mean.
    min_a, max_a, min_b, max_b: float32 column extremes. A column is constant iff its min equals its
      max, an exact test (a float32 ``ssd`` of a constant column need not be exactly 0).
  """
  count: jax.Array
  mean_a: jax.Array
  mean_b: jax.Array
  comoment: jax.Array
  ssd_a: jax.Array
  ssd_b: jax.Array
  min_a: jax.Array
  max_a: jax.Array
  min_b: jax.Array
  max_b: jax.Array


def correlation_init(k_a: int, k_b: int) -> CorrelationState:
  """Empty state for streams of ``k_a`` and ``k_b`` columns (every leaf its own buffer, so that
  the state can be donated)."""
  return CorrelationState(
      count=jnp.zeros((), jnp.int32),
      mean_a=jnp.zeros((k_a,), jnp.float32),
      mean_b=jnp.zeros((k_b,), jnp.float32),
      comoment=jnp.zeros((k_a, k_b), jnp.float32),
      ssd_a=jnp.zeros((k_a,), jnp.float32),
      ssd_b=jnp.zeros((k_b,), jnp.float32),
      min_a=jnp.full((k_a,), jnp.inf, jnp.float32),
      max_a=jnp.full((k_a,), -jnp.inf, jnp.float32),
      min_b=jnp.full((k_b,), jnp.inf, jnp.float32),
      max_b=jnp.full((k_b,), -jnp.inf, jnp.float32),
  )


def _centred(x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """Batch mean, deviations from a first-pass mean, their sum of squares and their mean.

  The deviations' own mean (the rounding error of the first-pass float32 mean) corrects the mean,
  the sum of squares and the cross products, as in the corrected two-pass algorithm.
  """
  n = x.shape[0]
  rough = jnp.mean(x, axis=0)
  dev = x - rough
  residual = jnp.mean(dev, axis=0)
  ssd = jnp.sum(jnp.square(dev), axis=0) - n * jnp.square(residual)
  return rough + residual, dev, jnp.maximum(ssd, 0.0), residual


def _merge(state: CorrelationState, a: jax.Array, b: jax.Array) -> CorrelationState:
  """Chan et al.'s merge of the statistics of one batch into ``state``."""
  n_b = a.shape[0]
  if n_b == 0:
    return state
  a = a.astype(jnp.float32)
  b = b.astype(jnp.float32)
  mean_ab, dev_a, ssd_ab, res_a = _centred(a)
  mean_bb, dev_b, ssd_bb, res_b = _centred(b)
  comoment_b = (jnp.matmul(dev_a.T, dev_b, precision=jax.lax.Precision.HIGHEST)
                - n_b * jnp.outer(res_a, res_b))
  n_s = state.count.astype(jnp.float32)
  n = n_s + n_b
  weight = n_s * (n_b / n)
  delta_a = mean_ab - state.mean_a
  delta_b = mean_bb - state.mean_b
  return CorrelationState(
      count=state.count + n_b,
      mean_a=state.mean_a + delta_a * (n_b / n),
      mean_b=state.mean_b + delta_b * (n_b / n),
      comoment=state.comoment + comoment_b + weight * jnp.outer(delta_a, delta_b),
      ssd_a=state.ssd_a + ssd_ab + weight * jnp.square(delta_a),
      ssd_b=state.ssd_b + ssd_bb + weight * jnp.square(delta_b),
      min_a=jnp.minimum(state.min_a, jnp.min(a, axis=0)),
      max_a=jnp.maximum(state.max_a, jnp.max(a, axis=0)),
      min_b=jnp.minimum(state.min_b, jnp.min(b, axis=0)),
      max_b=jnp.maximum(state.max_b, jnp.max(b, axis=0)),
  )


@jax.jit
def correlation_update(state: CorrelationState, a: jax.Array, b: jax.Array) -> CorrelationState:
  """Merges one batch of paired samples, ``a`` ``(n, k_a)`` and ``b`` ``(n, k_b)``, into ``state``.

  The batch may be sharded over devices along its first axis; jit then reduces across them.
  Inputs are not validated here (see ``streamed_correlation``).
  """
  return _merge(state, a, b)


def _checked_merge(state, a, b):
  """``_merge`` plus the number of non-finite values in a and in b."""
  return (_merge(state, a, b), jnp.sum(~jnp.isfinite(a)), jnp.sum(~jnp.isfinite(b)))


# The streamed path owns its state, so it donates it: the (k_a, k_b) co-moment is updated in place
# instead of being held twice.
_checked_update = jax.jit(_checked_merge, donate_argnums=0)


@jax.jit
def correlation_finalize(state: CorrelationState) -> jax.Array:
  """Signed Pearson correlation ``(k_a, k_b)`` in [-1, 1]; entries of constant columns are 0."""
  ok_a = (state.max_a > state.min_a) & (state.ssd_a > 0)
  ok_b = (state.max_b > state.min_b) & (state.ssd_b > 0)
  inv_a = jnp.where(ok_a, jax.lax.rsqrt(jnp.where(ok_a, state.ssd_a, 1.0)), 0.0)
  inv_b = jnp.where(ok_b, jax.lax.rsqrt(jnp.where(ok_b, state.ssd_b, 1.0)), 0.0)
  return jnp.clip(state.comoment * inv_a[:, None] * inv_b[None, :], -1.0, 1.0)


def _as_batch_matrix(x, name: str) -> jax.Array:
  """A 2-D numeric jax array (kept as is, sharding included, if it already is one)."""
  if not isinstance(x, jax.Array):
    x = np.asarray(x)
  if not (jnp.issubdtype(x.dtype, jnp.number) or x.dtype == jnp.bool_):
    raise DataError(f"{name} has dtype {x.dtype}; pass a numeric array, e.g. a.astype(np.float32)")
  if x.ndim != 2:
    raise DataError(
        f"{name} has {x.ndim} dimensions (shape {x.shape}); it must be 2-D (samples, columns): "
        "reshape it to (num_samples, -1)")
  if x.shape[1] == 0:
    raise DataError(f"{name} has shape {x.shape} with no columns: pass at least one column")
  return x if isinstance(x, jax.Array) else jnp.asarray(x)


def _stream_state(batches: Iterable, label: str, min_samples: int) -> CorrelationState:
  """Validates and merges every (a, b) batch; ``label`` ('', 'fit ', 'score ') names the stream."""
  state = widths = pending = None
  for i, pair in enumerate(batches):
    where = f"{label}batch {i}"
    try:
      a, b = pair
    except (TypeError, ValueError) as e:
      raise DataError(f"{where} is not an (a, b) pair ({e}): yield a tuple (a, b) per batch") from e
    a = _as_batch_matrix(a, f"a of {where}")
    b = _as_batch_matrix(b, f"b of {where}")
    if a.shape[0] != b.shape[0]:
      raise DataError(
          f"{where}: a has {a.shape[0]} samples but b has {b.shape[0]}: pass the same samples, "
          "row by row")
    if widths is None:
      widths = (a.shape[1], b.shape[1])
      state = correlation_init(*widths)
      if isinstance(getattr(a, "sharding", None), NamedSharding):
        state = jax.device_put(state, NamedSharding(a.sharding.mesh, PartitionSpec()))
    elif (a.shape[1], b.shape[1]) != widths:
      raise DataError(
          f"{where} has {a.shape[1]} and {b.shape[1]} columns (a, b) but the first batch had "
          f"{widths[0]} and {widths[1]}: every batch must hold the same columns")
    state, bad_a, bad_b = _checked_update(state, a, b)
    # Checked one batch late, so that the host does not stall the device on every batch.
    if pending is not None:
      _raise_if_not_finite(*pending)
    pending = (where, bad_a, bad_b)
  if state is None:
    raise DataError(f"the {label}stream yielded no batches: pass an iterable of (a, b) pairs")
  _raise_if_not_finite(*pending)
  count = int(state.count)
  if count < min_samples:
    raise DataError(
        f"the {label}stream held {count} samples; it needs at least {min_samples}: pass more "
        "samples")
  return state


def _raise_if_not_finite(where: str, bad_a: jax.Array, bad_b: jax.Array) -> None:
  for name, bad in (("a", int(bad_a)), ("b", int(bad_b))):
    if bad:
      raise DataError(
          f"{name} of {where} holds {bad} NaN/Inf values: remove or fix those samples before "
          "computing correlations")


def streamed_correlation(batches: Iterable) -> np.ndarray:
  """Pearson correlation between the columns of two paired streams, one batch at a time.

  Equals ``correlation_matrix(concat(a), concat(b))`` up to float32 rounding, with memory
  independent of the number of samples: the state holds one ``(k_a, k_b)`` float32 matrix. The
  rounding is ~1e-7 for one batch and grows with the offset-to-spread ratio of the columns over
  several (the merge subtracts float32 means): ~5e-6 at means 1000 standard deviations from 0.
  Pearson only (Spearman needs the ranks of all samples at once).

  Args:
    batches: iterable of ``(a, b)`` pairs, ``a`` ``(n_i, k_a)`` and ``b`` ``(n_i, k_b)`` with the
      same rows; numpy or jax arrays, the latter possibly sharded along the batch axis.

  Returns:
    float32 ``(k_a, k_b)`` numpy array in [-1, 1]; entries involving a constant column are 0.
  """
  state = _stream_state(batches, "", 2)
  return np.asarray(correlation_finalize(state))


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
  weights = _as_matrix(weights, "weights")
  if matcher == "auto":
    matcher = "sparse" if weights.size >= _SPARSE_MIN_ENTRIES and weights.min() >= 0 else "dense"
  if matcher == "sparse":
    assignment = _sparse_assignment(weights)
    if assignment is not None:
      return Assignment(*assignment, "sparse")
    matcher = "sparse->dense"
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


def mcc(z_true, codes, *, method: str = "pearson", fit_fraction: float = 0.5) -> MCCResult:
  """Mean correlation coefficient between true concepts and learned units (see module docstring).

  Args:
    z_true: ``(n, n_true)`` ground-truth concept values.
    codes: ``(n, n_units)`` learned unit activations on the same samples; ``n_units`` may be larger
      or smaller than ``n_true``.
    method: 'pearson' or 'spearman'.
    fit_fraction: fraction of the samples (taken first, in order) used to fit the matching.

  Returns:
    An ``MCCResult``.
  """
  if method not in _METHODS:
    raise ConfigError(f"method={method!r} is unknown: use one of {', '.join(_METHODS)}")
  if not 0.0 < fit_fraction < 1.0:
    raise ConfigError(
        f"fit_fraction={fit_fraction} is outside (0, 1): pass e.g. 0.5 to fit the matching on half "
        "the samples and score it on the other half")
  z_true = _as_matrix(z_true, "z_true")
  codes = _as_matrix(codes, "codes")
  n = z_true.shape[0]
  if codes.shape[0] != n:
    raise DataError(
        f"z_true has {n} samples but codes has {codes.shape[0]}: pass the codes of exactly the "
        "samples in z_true, row by row")
  n_fit = int(round(n * fit_fraction))
  if min(n_fit, n - n_fit) < _MIN_SAMPLES_PER_HALF:
    raise DataError(
        f"{n} samples with fit_fraction={fit_fraction} leave {n_fit} to fit and {n - n_fit} to "
        f"score; each half needs at least {_MIN_SAMPLES_PER_HALF}: pass more samples")

  corr_fit = np.abs(correlation_matrix(z_true[:n_fit], codes[:n_fit], method))
  corr_score = np.abs(correlation_matrix(z_true[n_fit:], codes[n_fit:], method))
  return _match_and_score(corr_fit, corr_score)


def _match_and_score(corr_fit: np.ndarray, corr_score: np.ndarray) -> MCCResult:
  """Matches concepts (rows) to units (columns) on corr_fit, scores the pairs on corr_score."""
  rows, cols, _ = max_weight_assignment(corr_fit)
  n_true = corr_fit.shape[0]
  matching = np.full((n_true,), -1, np.int64)
  matching[rows] = cols
  per_concept = np.zeros((n_true,), np.float64)
  per_concept[rows] = corr_score[rows, cols]
  return MCCResult(
      mcc=float(per_concept.mean()),
      per_concept=per_concept,
      matching=matching,
      corr_fit=corr_fit,
  )


def streamed_mcc(fit_batches: Iterable, score_batches: Iterable) -> MCCResult:
  """MCC (Pearson) of two streams of ``(z_true, codes)`` batches, neither held whole in memory.

  The matching is fitted on the fit stream's |corr| and scored on the score stream's, averaged
  over true concepts, as ``mcc`` does with its two halves.

  Args:
    fit_batches: iterable of ``(z_true, codes)`` pairs, ``(n_i, n_true)`` and ``(n_i, n_units)``.
    score_batches: the same for disjoint samples.

  Returns:
    An ``MCCResult``.
  """
  corr = []
  for batches, label in ((fit_batches, "fit "), (score_batches, "score ")):
    state = _stream_state(batches, label, _MIN_SAMPLES_PER_HALF)
    corr.append(np.abs(np.asarray(correlation_finalize(state))))
    del state
  if corr[0].shape != corr[1].shape:
    raise DataError(
        f"the fit stream has {corr[0].shape[0]} concepts and {corr[0].shape[1]} units but the "
        f"score stream has {corr[1].shape[0]} and {corr[1].shape[1]}: pass the same columns in "
        "both")
  return _match_and_score(*corr)
