"""The graph of a hierarchical selection model and `make_hsm` (choices: `identi.generators.hsm`).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse

from identi.errors import ConfigError
from identi.generators.hsm import HSM, MAX_EXACT_COMPONENT, METHODS, HSMConfig

def _build_level_pair(rng: np.random.Generator, n_low: int, n_high: int, min_p: int, max_p: int,
                      overlap: float, pair: int, owner: str) -> np.ndarray:
  """Bool ``(n_low, n_high)``: parent sets of the ``n_high`` wholes (see the module docstring)."""
  sizes = rng.integers(min_p, max_p + 1, size=n_high)
  fresh = list(rng.permutation(n_low))
  used: list[int] = []
  seen: set[frozenset] = set()
  adjacency = np.zeros((n_low, n_high), bool)
  for j in range(n_high):
    for _ in range(100):
      taken, chosen = 0, []
      for _ in range(sizes[j]):
        pool = [i for i in used if i not in chosen]
        has_fresh = taken < len(fresh)
        if pool and (not has_fresh or rng.random() < overlap):
          chosen.append(pool[rng.integers(len(pool))])
        elif has_fresh:
          chosen.append(int(fresh[taken]))
          taken += 1
        else:
          rest = [i for i in range(n_low) if i not in chosen]
          chosen.append(rest[rng.integers(len(rest))])
      if frozenset(chosen) not in seen:
        break
    else:
      raise ConfigError(
          f"{owner}: level {pair + 2} has {n_high} concepts but cannot give each a distinct set "
          f"of parents among the {n_low} of level {pair + 1}: lower level_sizes[{pair + 1}] or "
          "raise max_parents")
    seen.add(frozenset(chosen))
    del fresh[:taken]
    for i in chosen:
      if i not in used:
        used.append(i)
    adjacency[chosen, j] = True
  return adjacency


def build_graph(sizes: tuple[int, ...], min_p: int, max_p: int, overlap: float,
                 weight_range: tuple[float, float], graph_seed: int, owner: str
                 ) -> tuple[list[np.ndarray], list[np.ndarray]]:
  """Adjacency and positive weights ``U(weight_range)`` per level pair, from ``graph_seed``."""
  adjacency, weights = [], []
  for l in range(len(sizes) - 1):
    rng = np.random.default_rng([graph_seed, l])
    adj = _build_level_pair(rng, sizes[l], sizes[l + 1], min_p, max_p, float(overlap), l, owner)
    adjacency.append(adj)
    weights.append(np.where(adj, rng.uniform(*weight_range, size=adj.shape), 0.0))
  return adjacency, weights


def _supports(adjacency: list[np.ndarray], n1: int) -> list[np.ndarray]:
  """Per level, bool ``(n_1, n_l)`` level-1 ancestor sets, as sparse products (the graph has
  a few edges per whole; the dense product is cubic in the level sizes)."""
  support = [np.eye(n1, dtype=bool)]
  reach = scipy.sparse.identity(n1, dtype=np.int64, format="csr")
  for adj in adjacency:
    reach = reach @ scipy.sparse.csr_matrix(adj, dtype=np.int64)
    support.append(reach.toarray() > 0)
  return support


def _components(support: list[np.ndarray], n1: int) -> list[np.ndarray]:
  """Connected components of the level-1 hypergraph whose edges are the supports."""
  parent = list(range(n1))

  def find(i):
    while parent[i] != i:
      parent[i] = parent[parent[i]]
      i = parent[i]
    return i

  for s in support[1:]:
    for j in range(s.shape[1]):
      members = np.flatnonzero(s[:, j])
      for i in members[1:]:
        parent[find(int(i))] = find(int(members[0]))
  groups: dict[int, list[int]] = {}
  for i in range(n1):
    groups.setdefault(find(i), []).append(i)
  return [np.asarray(g, np.int32) for g in sorted(groups.values(), key=lambda g: g[0])]


def component_levels(hsm_parts: dict, comp: np.ndarray) -> tuple[list, np.ndarray]:
  """Enumerates a component's ``2^|C|`` level-1 patterns and propagates them upward.

  Returns ``levels``, a list over levels of ``(indices, bits)`` with bits bool ``(2^|C|,
  len(indices))`` (the concepts whose support lies in the component), and the float64 log
  selection weight of every pattern.
  """
  c = len(comp)
  codes = np.arange(1 << c)
  bits = ((codes[:, None] >> np.arange(c)) & 1).astype(bool)
  levels = [(comp, bits)]
  log_sel = np.zeros(1 << c)
  log_eps = math.log(hsm_parts["eps"])
  for l, (adj, tau) in enumerate(zip(hsm_parts["adjacency"], hsm_parts["tau"])):
    idx, b = levels[-1]
    above = np.flatnonzero(hsm_parts["support"][l + 1][comp].any(axis=0))
    counts = b.astype(np.int64) @ adj[np.ix_(idx, above)].astype(np.int64)
    coherent = (counts == 0) | (counts >= tau[above])
    log_sel += log_eps * (~coherent).sum(axis=1)
    levels.append((above, counts >= tau[above]))
  return levels, log_sel


def _pattern_log_probs(pi: np.ndarray, comp: np.ndarray, bits: np.ndarray,
                       log_sel: np.ndarray) -> np.ndarray:
  """Normalised float64 log probabilities: prior times selection weights."""
  p = pi[comp]
  log_w = np.where(bits, np.log(p), np.log1p(-p)).sum(axis=1) + log_sel
  return log_w - np.logaddexp.reduce(log_w)


def make_hsm(config: HSMConfig, method: str = "exact") -> HSM:
  """Builds the structure of an HSM world from its config.

  Args:
    config: the world.
    method: 'exact' refuses components over 16 level-1 concepts (whose exact tables would not
      fit); 'mcmc' accepts them (only ``sample_hsm(..., method='mcmc')`` can sample those).

  Returns:
    The HSM (graph, weights, thresholds, components and exact pattern tables).
  """
  if not isinstance(config, HSMConfig):
    raise ConfigError(
        f"config of type {type(config).__name__} is not an HSMConfig: build one with "
        "HSMConfig(...) or default_world()")
  config.validate()
  if method not in METHODS:
    raise ConfigError(f"method={method!r} is unknown: use one of {', '.join(METHODS)}")
  sizes = config.level_sizes
  adjacency, raw_weights = build_graph(
      sizes, config.min_parents, config.max_parents, config.overlap, config.weight_range,
      config.graph_seed, "HSMConfig")
  weights = [(w / w.sum(axis=0, keepdims=True)).astype(np.float32) for w in raw_weights]
  tau = [np.full(a.shape[1], config.tau, np.int32) if config.tau is not None
         else a.sum(axis=0).astype(np.int32) for a in adjacency]
  rng = np.random.default_rng([config.graph_seed, len(sizes)])
  ranks = rng.permutation(sizes[0]) + 1
  pi = float(config.pi) * ranks.astype(np.float64) ** -float(config.zipf_exponent)
  support = _supports(adjacency, sizes[0])
  components = _components(support, sizes[0])
  biggest = max(len(c) for c in components)
  if biggest > MAX_EXACT_COMPONENT and method == "exact":
    raise ConfigError(
        f"HSMConfig gives a selection component of {biggest} level-1 concepts, over the exact "
        f"sampler's limit of {MAX_EXACT_COMPONENT}: use fewer parents (max_parents), less "
        "overlap, fewer levels, or method='mcmc'")
  parts = {"adjacency": adjacency, "tau": tau, "support": support, "eps": float(config.eps)}
  log_probs = []
  for comp in components:
    if len(comp) > MAX_EXACT_COMPONENT:
      log_probs.append(None)
      continue
    levels, log_sel = component_levels(parts, comp)
    log_probs.append(_pattern_log_probs(pi, comp, levels[0][1], log_sel))
  return HSM(config=config, pi=pi, adjacency=tuple(adjacency), weights=tuple(weights),
             tau=tuple(tau), support=tuple(support), components=tuple(components),
             log_probs=tuple(log_probs))
