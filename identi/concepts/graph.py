"""Concept-graph extraction: which lower-level units compose each higher-level unit.

Under the hierarchical selection model (docs/hsm.md) a whole of level
l+1 emerges iff ALL its parts (its parents at level l) are present. Two consequences identify the
parent set from presence bits alone:

- **Necessity.** Every parent of a whole is present whenever the whole is:
  P(part i present | whole j present) ~ 1.
- **Sufficiency.** A minimal parent set is also sufficient: whenever all its members are present
  the whole is present, so the precision P(j present | all of S present) ~ 1.

Parts that merely co-occur with a whole through selection (e.g. the parts of a sibling whole under
the same level-3 concept, which selection makes appear together with it) are not necessary: the
leak eps lets the sibling be absent while the whole is present, so their necessity stays below 1.
Where strong selection still lifts it past the threshold, they add nothing to the sufficiency of
the true parts, so the cover below leaves them out.

Algorithm (:func:`learn_edges`), per upper unit j:

1. Necessity scores P(i | j) for every lower unit i, from one matmul ``lower^T @ upper`` over
   sample chunks (:func:`edge_scores`); units present in fewer than ``min_support`` samples get
   no parents.
2. Candidates: the ``max_parents`` lower units with the highest score, kept if the score is
   >= ``necessity``.
3. Greedy minimal conjunctive cover: start from S = {} (whose AND is always on) and repeatedly add
   the candidate that most increases the precision P(j | all of S), until the precision reaches
   ``precision`` or no candidate increases it. A candidate added early can become redundant once
   later ones join, so a backward pass then drops, one at a time, the member whose removal keeps
   the precision highest, as long as the precision stays >= min(``precision``, precision of S);
   then no member of S can be dropped. When even the full cover stays below ``precision`` (noisy
   data, or a whole that is not a conjunction of units of the level below), the best S found is
   still returned: its edges are necessary by construction, only their sufficiency is weaker
   than asked.

The precision of every subset of the candidates comes from one pass over the samples: each
sample's candidate pattern is a ``max_parents``-bit code, histogrammed with and without j present,
and a superset-sum (zeta) transform turns the histograms into the counts of "all of S present"
for all 2^max_parents subsets S at once. Upper units are processed in fixed-size chunks under
``jax.vmap`` and ``jax.jit`` (the last chunk padded), keeping the gathered (chunk, max_parents,
n_samples) candidate bits under ~256 MB.

Threshold wholes (``rule='threshold'``). Where a whole emerges from at least tau of its parts with
tau < |Pa| (``hsm.md``'s tau rule), each part's necessity is only P(part | whole) < 1 (about 0.7
for 2 of 3 parts at pi = 0.3) and any tau parts already suffice, so the conjunctive cover would
stop after tau of them. The threshold rule instead scores, for every prefix S of the candidates
(sorted by necessity, each >= ``necessity``) and every tau in 1..|S|, the rule "j present iff at
least tau of S are present" by its F1 against j, and keeps the best S (ties: the smaller S). Set
``necessity`` below P(part | whole) for it (e.g. 0.5).

Taxonomies (``rule='isa'``). In an IS-A hierarchy (WordNet: a dog is a mammal) a category is
present when ANY of its members is, so a member's necessity P(member | category) is only about
1 / (members) and the covers above find nothing. There the identifying direction is the other one:
a member implies its category, P(category | member) ~ 1, while an unrelated unit's P(j | i) is
j's base rate. The 'isa' rule keeps every edge whose implication (or, with ``score='contrast'``,
P(j | i) - P(j | not i)) reaches ``precision``.

Contrast ranking (``score='contrast'``). Units present in nearly every sample (a unit for a
token every sequence has, a background unit) have necessity ~1 for every whole and can crowd the
true parts out of the ``max_parents`` candidates. ``score='contrast'`` ranks and thresholds the
candidates by the probabilistic contrast P(i | j) - P(i | not j) instead: such units score ~0,
while a part whose whole needs it scores P(part | whole) minus its rate elsewhere. ``necessity``
is then the smallest contrast of an edge.

Strong selection (small eps) makes partial patterns rare, so a single part can almost imply its
whole (P(j | one part) close to 1); raise ``precision`` (e.g. to 0.99) for such data, or the cover
may stop before it holds every part.
"""
import functools
import numbers
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from identi.checks import check_count
from identi.errors import ConfigError, DataError
from identi.metrics import correlation_matrix

_MEMORY_BYTES = 256 * 2**20
_MAX_CANDIDATES = 16


def _check_fraction(value, name: str) -> float:
  if (not isinstance(value, numbers.Real) or isinstance(value, bool)
      or not 0.0 <= float(value) <= 1.0):
    raise ConfigError(f"{name}={value!r} is invalid: pass a probability in [0, 1]")
  return float(value)


def _check_presence(x, name: str) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim != 2 or 0 in x.shape:
    raise DataError(f"{name} has shape {x.shape}: pass a non-empty 2-D (samples, units) presence "
                    "matrix")
  if x.dtype != np.bool_:
    raise DataError(f"{name} has dtype {x.dtype}, not bool: threshold codes into presence bits "
                    "first, e.g. with identi.concepts.presence(codes)")
  return x


def _check_pair(lower, upper) -> tuple[np.ndarray, np.ndarray]:
  lower = _check_presence(lower, "lower")
  upper = _check_presence(upper, "upper")
  if lower.shape[0] != upper.shape[0]:
    raise DataError(f"level views of mismatched sample counts: lower has {lower.shape[0]} samples, "
                    f"upper has {upper.shape[0]}; pass presence of both levels on the same samples")
  return lower, upper


def _check_codes(codes) -> np.ndarray:
  codes = np.asarray(codes)
  if codes.ndim != 2 or 0 in codes.shape:
    raise DataError(f"codes have shape {codes.shape}: pass a non-empty 2-D (samples, units) array")
  if not np.issubdtype(codes.dtype, np.number) or not np.all(np.isfinite(codes)):
    raise DataError("codes must be finite real numbers: remove or replace NaN/Inf samples first")
  return codes.astype(np.float64)


def presence_thresholds(codes, rel_threshold: float = 0.1) -> np.ndarray:
  """Per-unit presence thresholds: rel_threshold * the unit's 99th percentile of positive codes.

  Units never positive get +inf (never present). Apply them to other samples of the same units
  with ``(codes > 0) & (codes > thresholds)``.
  """
  codes = _check_codes(codes)
  if (not isinstance(rel_threshold, numbers.Real) or isinstance(rel_threshold, bool)
      or not np.isfinite(rel_threshold) or rel_threshold < 0):
    raise ConfigError(f"rel_threshold={rel_threshold!r} is invalid: pass a finite fraction >= 0, "
                      "e.g. 0.1")
  positive = codes > 0
  active = positive.any(axis=0)
  thresholds = np.full(codes.shape[1], np.inf)
  if active.any():
    masked = np.where(positive[:, active], codes[:, active], np.nan)
    thresholds[active] = rel_threshold * np.nanpercentile(masked, 99, axis=0)
  return thresholds


def presence(codes, rel_threshold: float = 0.1) -> np.ndarray:
  """Presence bits: code > rel_threshold * the unit's 99th percentile of its positive codes.

  A relative threshold per unit ignores the small activations that an SAE spreads over inactive
  units while adapting to each unit's scale. Units never positive are never present.

  Args:
    codes: real (n, units) codes, e.g. SAE latents or true concepts z.
    rel_threshold: fraction of the unit's typical (99th percentile) positive code, >= 0.

  Returns:
    bool (n, units) presence.
  """
  thresholds = presence_thresholds(codes, rel_threshold)
  codes = np.asarray(codes, np.float64)
  return (codes > 0) & (codes > thresholds)


def split_thresholds(codes) -> np.ndarray:
  """Per-unit presence thresholds that split each unit's positive codes into two classes.

  For units whose code is graded rather than on/off: a shared-ancestor unit of
  `identi.infer.ancestors` codes the weighted sum of its children's codes, so it is positive
  wherever any child is, and the whole it stands for is the upper class of its code, not its
  firing. The threshold is Otsu's: of the cuts between distinct sorted positive codes, the one
  that maximises the between-class variance ``w0 w1 (m0 - m1)^2``. Units with fewer than two
  distinct positive codes get 0 (present wherever positive); units never positive get +inf.
  Apply them as `presence_thresholds`' are: ``(codes > 0) & (codes > thresholds)``.
  """
  codes = _check_codes(codes)
  thresholds = np.full(codes.shape[1], np.inf)
  for u in range(codes.shape[1]):
    s = np.sort(codes[codes[:, u] > 0, u])
    if s.size == 0:
      continue
    thresholds[u] = 0.0
    if s.size < 2 or s[0] == s[-1]:
      continue
    n = s.size
    below = np.arange(1, n)  # Cut after the first i codes, i = 1..n-1.
    cum = np.cumsum(s)[:-1]
    m0 = cum / below
    m1 = (s.sum() - cum) / (n - below)
    between = (below / n) * (1 - below / n) * (m0 - m1) ** 2
    between[s[:-1] == s[1:]] = -1.0  # Only cuts between distinct codes.
    thresholds[u] = s[int(np.argmax(between))]
  return thresholds


def split_presence(codes) -> np.ndarray:
  """Presence bits by `split_thresholds`: the upper class of each unit's positive codes."""
  thresholds = split_thresholds(codes)
  codes = np.asarray(codes, np.float64)
  return (codes > 0) & (codes > thresholds)


@jax.jit
def _accumulate(counts, lower, upper):
  """Adds one chunk's co-occurrence counts ``lower^T @ upper`` (exact in float32 for chunks of at
  most 2^24 samples) and the upper units' counts to the int32 totals."""
  joint = jax.lax.dot_general(lower.astype(jnp.float32), upper.astype(jnp.float32),
                              (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32)
  return (counts[0] + joint.astype(jnp.int32),
          counts[1] + jnp.sum(upper, axis=0, dtype=jnp.int32))


def _cooccurrence(lower: np.ndarray, upper: np.ndarray, chunk: int) -> tuple[jax.Array, jax.Array]:
  """int32 counts: (n_low, n_high) of both present and (n_high,) of each upper unit present."""
  n = lower.shape[0]
  size = min(chunk, n)
  counts = (jnp.zeros((lower.shape[1], upper.shape[1]), jnp.int32),
            jnp.zeros((upper.shape[1],), jnp.int32))
  for start in range(0, n, size):
    lo, up = lower[start:start + size], upper[start:start + size]
    if lo.shape[0] < size:
      pad = ((0, size - lo.shape[0]), (0, 0))
      lo, up = np.pad(lo, pad), np.pad(up, pad)
    counts = _accumulate(counts, lo, up)
  return counts


def _necessity(joint: jax.Array, support: jax.Array) -> jax.Array:
  return jnp.where(support > 0, joint / jnp.maximum(support, 1), 0.0).astype(jnp.float32)


def _contrast(joint: jax.Array, support: jax.Array, count: jax.Array, n: int) -> jax.Array:
  """P(i | j) - P(i | not j) from the joint counts, each unit's count and the sample count."""
  rest = (count[:, None] - joint) / jnp.maximum(n - support, 1)
  return jnp.where(support > 0, _necessity(joint, support) - rest, 0.0).astype(jnp.float32)


SCORES = ("necessity", "contrast")


def edge_scores(lower, upper, *, chunk: int = 8192) -> np.ndarray:
  """Necessity scores P(lower unit i present | upper unit j present) of every candidate edge i -> j.

  Args:
    lower: bool (n, n_low) presence of the lower level.
    upper: bool (n, n_high) presence of the level above, on the same samples.
    chunk: samples per matmul chunk (one compile per shape; the last chunk is zero-padded).

  Returns:
    float32 (n_low, n_high) scores, 0 in the columns of upper units that never fire.
  """
  lower, upper = _check_pair(lower, upper)
  chunk = check_count(chunk, "chunk", 1, 1 << 24)
  joint, support = _cooccurrence(lower, upper, chunk)
  return np.asarray(_necessity(joint, support))


def _superset_sums(hist: jax.Array, width: int) -> jax.Array:
  """(2^width,) counts of exact bit patterns -> counts of patterns containing each pattern."""
  table = hist.reshape((2,) * width)
  for axis in range(width):
    table = jnp.flip(jnp.cumsum(jnp.flip(table, axis), axis), axis)
  return table.reshape(-1)


def _cover(bits: jax.Array, up: jax.Array, ok: jax.Array, target: jax.Array) -> jax.Array:
  """Greedy minimal conjunctive cover of one upper unit: bool (k,) chosen candidates.

  Args:
    bits: bool (k, n) presence of the candidates.
    up: bool (n,) presence of the upper unit.
    ok: bool (k,) candidates allowed (necessity high enough, enough support).
    target: the precision to reach.
  """
  width = bits.shape[0]
  slots = jnp.arange(width, dtype=jnp.int32)
  codes = jnp.sum(bits.astype(jnp.int32) << slots[:, None], axis=0)
  size = 1 << width
  total = _superset_sums(jnp.bincount(codes, length=size), width)
  hits = _superset_sums(jnp.bincount(codes, weights=up.astype(jnp.int32), length=size), width)
  prec = jnp.where(total > 0, hits / jnp.maximum(total, 1), 0.0)
  masks = 1 << slots

  def grow(_, state):
    chosen, done = state
    free = ok & ((chosen & masks) == 0)
    gains = jnp.where(free, prec[chosen | masks], -1.0)
    best = jnp.argmax(gains)
    take = ~done & (prec[chosen] < target) & (gains[best] > prec[chosen])
    return jnp.where(take, chosen | masks[best], chosen), done | ~take

  chosen, _ = jax.lax.fori_loop(0, width, grow, (jnp.int32(0), jnp.bool_(False)))
  keep_at = jnp.minimum(target, prec[chosen])

  def prune(_, chosen):
    member = (chosen & masks) != 0
    after = jnp.where(member, prec[chosen & ~masks], -1.0)
    best = jnp.argmax(after)
    drop = member[best] & (after[best] >= keep_at)
    return jnp.where(drop, chosen & ~masks[best], chosen)

  chosen = jax.lax.fori_loop(0, width, prune, chosen)
  return (chosen & masks) != 0


def _threshold(bits: jax.Array, up: jax.Array, ok: jax.Array, target: jax.Array) -> jax.Array:
  """Best threshold rule of one upper unit: bool (k,) chosen candidates (a prefix of them).

  Candidates come sorted by necessity. For every prefix S of the allowed candidates and every
  tau in 1..|S|, the rule "j present iff at least tau of S are present" is scored by its F1
  against j's presence; the best (S, tau) wins, ties going to the smaller S (then smaller tau).
  ``target`` is unused: the rule needs no precision target.
  """
  del target
  width, n = bits.shape
  b = (bits & ok[:, None]).astype(jnp.int32)
  cum = jnp.cumsum(b, axis=0)  # (k, n): present members of each prefix.
  prefix = jnp.arange(width, dtype=jnp.int32)[:, None]
  slots = (prefix * (width + 1) + cum) * 2 + up.astype(jnp.int32)[None, :]
  hist = jnp.bincount(slots.reshape(-1), length=width * (width + 1) * 2).reshape(
      width, width + 1, 2)
  at_least = jnp.flip(jnp.cumsum(jnp.flip(hist, 1), 1), 1)[:, 1:]  # (k, tau = 1..k, 2)
  tp, pp = at_least[..., 1], at_least.sum(-1)
  f1 = 2.0 * tp / jnp.maximum(pp + jnp.sum(up), 1)
  tau = jnp.arange(1, width + 1)[None, :]
  valid = ok[:, None] & (tau <= prefix + 1)
  best = jnp.argmax(jnp.where(valid, f1, -1.0).reshape(-1))
  size = best // width + 1
  return jnp.any(valid) & (jnp.arange(width) < size) & ok


_COVERS = {"and": _cover, "threshold": _threshold}
#: Edge rules: the covers above, and 'isa' (taxonomies; `_isa_edges`).
RULES = ("and", "threshold", "isa")


@functools.partial(jax.jit, static_argnames="rule")
def _cover_chunk(lower_t, upper_t, units, candidates, ok, target, rule="and"):
  """Parent sets of a chunk of upper units: bool (chunk, k)."""
  return jax.vmap(_COVERS[rule], in_axes=(0, 0, 0, None))(lower_t[candidates], upper_t[units], ok,
                                                          target)


def _unit_chunk(n: int, width: int, n_high: int, rule: str = "and") -> int:
  """Upper units per chunk: the gathered bits and the pattern tables stay under the budget."""
  per_unit = max(n * width * (16 if rule == "threshold" else 1), 3 * 4 << width)
  return max(1, min(n_high, _MEMORY_BYTES // per_unit))


def learn_edges(lower, upper, *, necessity: float = 0.9, precision: float = 0.9,
                max_parents: int = 8, min_support: int = 5, rule: str = "and",
                score: str = "necessity") -> tuple[np.ndarray, np.ndarray]:
  """Parent sets of every upper unit among the lower units (see the module docstring).

  Args:
    lower: bool (n, n_low) presence of the lower level.
    upper: bool (n, n_high) presence of the level above, on the same samples.
    necessity: smallest P(i | j) of an edge i -> j.
    precision: the cover stops once P(j | all parents) reaches it.
    max_parents: candidates per upper unit, hence the largest parent set (1..16).
    min_support: upper units present in fewer samples get no parents.
    rule: 'and' (the greedy minimal conjunctive cover: a whole needs all its parts),
      'threshold' (the best "at least tau of the top candidates" rule by F1, for worlds whose
      wholes emerge from tau of their parts; see the module docstring) or 'isa' (taxonomies,
      where an upper unit is present when ANY of its children is: i -> j when i implies j,
      scored by P(j | i), or P(j | i) - P(j | not i) with score='contrast', at least
      `precision`; lower units present in fewer than `min_support` samples get no edge;
      `necessity` and `max_parents` are not used).
    score: what ranks and thresholds the candidates: 'necessity' P(i | j) or 'contrast'
      P(i | j) - P(i | not j) (for levels with units present in almost every sample).

  Returns:
    (adj, scores): bool (n_low, n_high) edges lower -> upper, and float32 (n_low, n_high)
    scores of the chosen kind (every edge's score is >= necessity).
  """
  lower, upper = _check_pair(lower, upper)
  necessity = _check_fraction(necessity, "necessity")
  target = _check_fraction(precision, "precision")
  max_parents = check_count(max_parents, "max_parents", 1, _MAX_CANDIDATES)
  min_support = check_count(min_support, "min_support", 1)
  if rule not in RULES:
    raise ConfigError(f"rule={rule!r} is unknown: use one of {', '.join(RULES)} ('threshold' "
                      "for wholes that emerge from tau < |parents| of their parts)")
  if score not in SCORES:
    raise ConfigError(f"score={score!r} is unknown: use one of {', '.join(SCORES)} ('contrast' "
                      "where some units are present in almost every sample)")
  (n, n_low), n_high = lower.shape, upper.shape[1]
  joint, support = _cooccurrence(lower, upper, 8192)
  if rule == "isa":
    return _isa_edges(joint, support, lower.sum(0), n, target, min_support, score)
  if score == "contrast":
    scores = _contrast(joint, support, jnp.asarray(lower.sum(0), jnp.float32), n)
  else:
    scores = _necessity(joint, support)
  width = min(max_parents, n_low)
  top, candidates = jax.lax.top_k(scores.T, width)
  ok = np.asarray((top >= necessity) & (support >= min_support)[:, None])
  candidates = np.asarray(candidates)
  size = _unit_chunk(n, width, n_high, rule)
  padded = -(-n_high // size) * size
  units = np.arange(padded) % n_high
  candidates = np.pad(candidates, ((0, padded - n_high), (0, 0)))
  ok = np.pad(ok, ((0, padded - n_high), (0, 0)))
  lower_t, upper_t = jnp.asarray(lower.T), jnp.asarray(upper.T)
  chosen = np.concatenate([
      np.asarray(_cover_chunk(lower_t, upper_t, units[s:s + size], candidates[s:s + size],
                              ok[s:s + size], np.float32(target), rule=rule))
      for s in range(0, padded, size)])[:n_high]
  adj = np.zeros((n_low, n_high), bool)
  rows, slots = np.nonzero(chosen)
  adj[candidates[rows, slots], rows] = True
  return adj, np.asarray(scores)


def _isa_edges(joint, support, count, n: int, target: float, min_support: int,
               score: str) -> tuple[np.ndarray, np.ndarray]:
  """Edges i -> j of a taxonomy: lower unit i implies upper unit j (the 'isa' rule)."""
  joint = np.asarray(joint, np.float64)
  count = np.asarray(count, np.float64)[:, None]
  scores = np.where(count > 0, joint / np.maximum(count, 1), 0.0)  # P(j | i)
  if score == "contrast":
    rest = (np.asarray(support, np.float64)[None, :] - joint) / np.maximum(n - count, 1)
    scores = np.where(count > 0, scores - rest, 0.0)
  adj = (scores >= target) & (count >= min_support)
  return adj, scores.astype(np.float32)


def extract_graph(presences: Sequence[np.ndarray], **learn_kwargs
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
  """Edges between every pair of adjacent levels, oriented upward (level l -> level l+1).

  Args:
    presences: bool (n, n_l) presence per level, level 1 (most concrete) first, same samples.
    **learn_kwargs: passed to :func:`learn_edges`.

  Returns:
    One (adj bool (n_l, n_{l+1}), scores float32 (n_l, n_{l+1})) per adjacent level pair.
  """
  if isinstance(presences, np.ndarray) or len(presences) < 2:
    raise DataError("extract_graph needs presence matrices of at least 2 levels: pass a list "
                    "[level 1, level 2, ...] of bool (samples, units) arrays")
  levels = []
  for l, x in enumerate(presences, start=1):
    x = np.asarray(x)
    if x.ndim != 2 or 0 in x.shape or x.dtype != np.bool_:
      raise DataError(f"presence of level {l} has shape {x.shape} and dtype {x.dtype}: pass a "
                      "non-empty bool (samples, units) matrix, e.g. "
                      "identi.concepts.presence(codes)")
    if x.shape[0] != np.asarray(presences[0]).shape[0]:
      raise DataError(f"level views of mismatched sample counts: level {l} has {x.shape[0]} "
                      f"samples, level 1 has {np.asarray(presences[0]).shape[0]}; pass every "
                      "level's presence on the same samples")
    levels.append(x)
  return [learn_edges(lo, up, **learn_kwargs) for lo, up in zip(levels[:-1], levels[1:])]


def _cycle_node(adj: np.ndarray, left: np.ndarray) -> int:
  """A node on a cycle among the nodes that a topological sort could not order: each has a
  predecessor among them, so walking back through predecessors must revisit a node."""
  node, seen = int(np.flatnonzero(left)[0]), set()
  while node not in seen:
    seen.add(node)
    node = int(np.flatnonzero(adj[:, node] & left)[0])
  return node


def transitive_reduction(adj) -> np.ndarray:
  """The minimal DAG with the same reachability as a square bool (n, n) adjacency.

  An edge i -> j is kept iff no other path leads from i to j.

  Raises:
    DataError: the graph has a cycle (a self-loop included).
  """
  adj = np.asarray(adj)
  if adj.ndim != 2 or adj.shape[0] != adj.shape[1] or adj.shape[0] == 0 or adj.dtype != np.bool_:
    raise DataError(f"adjacency has shape {adj.shape} and dtype {adj.dtype}: pass a square bool "
                    "(n, n) matrix, e.g. levels_to_square(blocks)")
  n = adj.shape[0]
  indegree = adj.sum(axis=0)
  order, ready = [], list(np.flatnonzero(indegree == 0))
  while ready:
    node = ready.pop()
    order.append(node)
    children = np.flatnonzero(adj[node])
    indegree[children] -= 1
    ready.extend(children[indegree[children] == 0])
  if len(order) < n:
    left = np.ones(n, bool)
    left[order] = False
    raise DataError(f"the graph has a cycle through node {_cycle_node(adj, left)}: concept graphs "
                    "must be acyclic (edges point from a lower to a higher level); remove the "
                    "downward or same-level edges")
  reach = np.zeros_like(adj)
  reduced = np.zeros_like(adj)
  for node in reversed(order):
    children = np.flatnonzero(adj[node])
    beyond = reach[children].any(axis=0)
    reduced[node] = adj[node] & ~beyond
    reach[node] = adj[node] | beyond
  return reduced


def levels_to_square(blocks: Sequence[np.ndarray]) -> np.ndarray:
  """One square adjacency over all units (level 1 first) from per-level-pair blocks.

  Args:
    blocks: bool (n_l, n_{l+1}) blocks for l = 1..L-1, as returned by :func:`extract_graph`.

  Returns:
    bool (N, N) adjacency, N = n_1 + ... + n_L, with block l at rows of level l and columns of
    level l+1.
  """
  if isinstance(blocks, np.ndarray) or len(blocks) == 0:
    raise DataError("levels_to_square needs a list of per-level-pair blocks: pass [adj_12, "
                    "adj_23, ...] of bool (n_l, n_{l+1}) arrays")
  blocks = [np.asarray(b) for b in blocks]
  for l, b in enumerate(blocks, start=1):
    if b.ndim != 2 or b.dtype != np.bool_:
      raise DataError(f"block {l} (level {l} -> {l + 1}) has shape {b.shape} and dtype {b.dtype}: "
                      "pass a bool (n_l, n_{l+1}) matrix")
    if l > 1 and b.shape[0] != blocks[l - 2].shape[1]:
      raise DataError(f"block {l} has {b.shape[0]} rows but level {l} has "
                      f"{blocks[l - 2].shape[1]} units in block {l - 1}: pass blocks of adjacent "
                      "level pairs in order")
  sizes = [blocks[0].shape[0]] + [b.shape[1] for b in blocks]
  offsets = np.concatenate([[0], np.cumsum(sizes)])
  square = np.zeros((offsets[-1], offsets[-1]), bool)
  for l, b in enumerate(blocks):
    square[offsets[l]:offsets[l + 1], offsets[l + 1]:offsets[l + 2]] = b
  return square


def assign_levels(codes: list[np.ndarray], min_corr: float) -> list[np.ndarray]:
  """Level of every unit of every cumulative view: the most abstract view it appears in.

  A unit of view l appears in view m > l when some unit of view m has |Pearson correlation| >=
  `min_corr` with it on the same samples. Returns one int array (1-based levels) per view.
  """
  levels = []
  for l, c in enumerate(codes):
    level = np.full(c.shape[1], l + 1)
    for m in range(l + 1, len(codes)):
      corr = np.abs(correlation_matrix(c, codes[m]))
      level[corr.max(axis=1) >= min_corr] = m + 1
    levels.append(level)
  return levels
