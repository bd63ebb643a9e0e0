"""The concept-graph and steering experiment on hierarchical selection data (issue 4).

One HSM world is drawn once and observed through one linear view per level (pure: ``x_l = A_l
z[l]``; cumulative: ``x_l = A_l [z[l]; ...; z[L]]``). One SAE is trained per view with
`identi.train`; all scoring uses the held-out split.

- `run_concept_graph(config, workdir)`: MCC of each view's units against that level's concepts;
  unit levels (pure views: the view's level; cumulative views: `assign_levels`); the graph between
  adjacent levels from the units' presence (`identi.concepts.extract_graph`, run on ALL units,
  unsupervised); then, after MCC matching, precision / recall / F1 / SHD against the true graph
  (edges between matched units, mapped to their concepts; edges touching unmatched units are
  counted separately) and AUROC of the edge scores. Writes ``graph.json`` and
  ``concept_graph.{png,pdf}``.
- `run_steering(config, workdir)`: for every concept of every level and held-out samples where it
  is absent, sets its matched unit to the unit's median active code (`identi.steer.steer`, the
  reconstruction error added back) and compares the change of x with the change that numpyro's
  ``do()`` on the concept (its median active intensity) makes on the same samples and noise:
  fidelity = cosine of the two changes, specificity = fraction of the steered change's energy
  along the concept's true dictionary direction. Emergence: do() on the missing part of an
  almost-complete level-2 whole, in the HSM and in the HCM with the same graph, observed through
  the level-2 view and read by the level-2 SAE: does the whole's unit fire? Writes
  ``steering.json`` and ``steering.{png,pdf}``.

Choices: a unit is present when its code exceeds ``graph.rel_threshold`` times its 99th percentile
of positive codes (`identi.concepts.presence`); codes are the SAE encoder's (``graph.codes =
'encoder'``) or minimal codes over its decoder (``'minimal'``, the default); HCM trials condition
on "whole absent, every part but one present" by rejection from ``emergence.hcm_pool`` samples.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import jax
import ml_collections
import numpy as np

from identi import data as data_lib
from identi import generators, infer, io, steer
from identi.concepts.graph import extract_graph, presence, presence_thresholds
from identi.errors import ConfigError, DataError
from identi.figures import save_figure
from identi.generators import views
from identi.metrics import correlation_matrix, edge_auroc, edge_metrics, mcc
from identi.train import config as config_lib
from identi.train import load_trained, train_and_evaluate
from identi.verify import hsm_config

GRAPH_FILE = "graph.json"
STEERING_FILE = "steering.json"


def default_concept_config() -> ml_collections.ConfigDict:
  """The schema of concept-graph configs, with defaults (the default 3-level world)."""
  c = ml_collections.ConfigDict()
  c.world = ml_collections.ConfigDict({
      "level_sizes": (48, 24, 6), "min_parents": 2, "max_parents": 2, "overlap": 0.0,
      "pi": 0.3, "zipf_exponent": 0.0, "tau": 0, "eps": 0.3, "magnitude": "lognormal",
      "weight_range": (0.5, 1.5), "graph_seed": 0})
  c.view = ml_collections.ConfigDict({"dims": (96, 48, 16), "cumulative": False, "sigma": 0.0,
                                      "num_samples": 1 << 16, "seed": 0})
  c.data = ml_collections.ConfigDict({"num_eval": 8192, "split_seed": 0})
  schema = config_lib.default_config()
  for section in ("sae", "train", "checkpoint", "eval"):
    c[section] = schema[section]
  c.train.num_steps = 3000
  c.sae_width = 2  # d_sae = sae_width * (concepts observed by the view).
  c.k_factor = 1.5  # k = ceil(k_factor * mean active concepts of the view), for k-sparse SAEs.
  c.graph = ml_collections.ConfigDict({"codes": "minimal", "rel_threshold": 0.1,
                                       "necessity": 0.9, "precision": 0.99, "max_parents": 8,
                                       "min_support": 5, "same_unit_corr": 0.9})
  c.steer = ml_collections.ConfigDict({"samples_per_concept": 64, "seed": 1})
  c.emergence = ml_collections.ConfigDict({"trials_per_whole": 64, "hcm_pool": 1 << 16,
                                           "seed": 2})
  return c


def concept_variant(config: ml_collections.ConfigDict,
                    arg: str | None) -> ml_collections.ConfigDict:
  """Applies a `:variant`: '' (full) or 'smoke' (toy world and training, for tests)."""
  if not config_lib.check_variant(arg):
    return config
  config_lib.shrink_training(config)
  config.world.level_sizes = (12, 6, 2)
  config.world.pi = 0.4
  config.view.dims = (24, 12, 8)
  config.view.num_samples = 4096
  config.data.num_eval = 1024
  config.steer.samples_per_concept = 8
  config.emergence.trials_per_whole = 8
  config.emergence.hcm_pool = 8192
  return config


def validate_concept_config(config: ml_collections.ConfigDict) -> None:
  config_lib.check_keys(config, default_concept_config())
  sizes, dims = tuple(config.world.level_sizes), tuple(config.view.dims)
  if len(sizes) < 2:
    raise ConfigError(f"config key 'world.level_sizes' is {sizes}; a concept graph needs at least "
                      "2 levels")
  if len(dims) != len(sizes):
    raise ConfigError(f"config key 'view.dims' has {len(dims)} entries for {len(sizes)} levels; "
                      "give one observation dimension per level")
  if config.graph.codes not in ("encoder", "minimal"):
    raise ConfigError(f"config key 'graph.codes' is {config.graph.codes!r}; use 'encoder' or "
                      "'minimal'")
  for name in ("sae_width", "k_factor"):
    if not config[name] > 0:
      raise ConfigError(f"config key '{name}' is {config[name]!r}; it must be > 0")


def hcm_twin(world: generators.HSMConfig) -> generators.HCMConfig:
  """The hierarchical causal model on the same graph (same sizes, parent sets and graph seed)."""
  return generators.HCMConfig(
      level_sizes=world.level_sizes, min_parts=world.min_parents, max_parts=world.max_parents,
      overlap=world.overlap, magnitude=world.magnitude, graph_seed=world.graph_seed)


@dataclasses.dataclass
class World:
  """One draw of the world and its per-level views; `eval_rows` index the held-out split."""
  hsm: Any
  samples: dict
  xs: list
  mixings: list
  eval_rows: np.ndarray
  sources: list


def build_world(config: ml_collections.ConfigDict) -> World:
  validate_concept_config(config)
  world = hsm_config(config)
  hsm = generators.make_hsm(world)
  v = config.view
  samples = generators.sample_hsm(jax.random.key(v.seed), hsm, v.num_samples)
  xs, mixings, sources = [], [], []
  eval_rows = None
  for l in range(len(world.level_sizes)):
    key = jax.random.fold_in(jax.random.key(v.seed), 1000 + l)
    x, a = views.level_view(key, samples["z"], l + 1, int(v.dims[l]), v.sigma, v.cumulative)
    source = data_lib.ArraySource(x, np.asarray(samples["z"][l]))
    _, eval_src = data_lib.train_eval_split(source, config.data.num_eval, config.data.split_seed)
    eval_rows = np.asarray(eval_src.indices)
    xs.append(x)
    mixings.append(a)
    sources.append(source)
  return World(hsm, samples, xs, mixings, eval_rows, sources)


def training_config(config: ml_collections.ConfigDict, world: World,
                    level: int) -> ml_collections.ConfigDict:
  """The `identi.train` config of the SAE of view `level` (1-based)."""
  tc = config_lib.default_config()
  for section in ("sae", "train", "checkpoint", "eval"):
    tc[section] = ml_collections.ConfigDict(config[section].to_dict())
  tc.data.num_eval = config.data.num_eval
  tc.data.split_seed = config.data.split_seed
  observed = world.samples["a"][level - 1:] if config.view.cumulative else \
      [world.samples["a"][level - 1]]
  n = sum(a.shape[1] for a in observed)
  active = float(sum(np.mean(np.sum(a, axis=1)) for a in observed))
  tc.sae.d_sae = int(round(config.sae_width * n))
  tc.sae.k = max(1, math.ceil(config.k_factor * active))
  config_lib.validate_config(tc)
  return tc


def train_levels(config, world: World, workdir: str) -> list[tuple[Any, Any]]:
  """Trains (or resumes) one SAE per view under workdir/sae_l<level>; returns (model, variables)."""
  out = []
  for l, source in enumerate(world.sources):
    wd = os.path.join(workdir, f"sae_l{l + 1}")
    train_and_evaluate(training_config(config, world, l + 1), wd, source=source)
    _, model, variables = load_trained(wd)
    out.append((model, jax.tree.map(np.asarray, variables)))
  return out


def level_codes(config, world: World, saes) -> list[np.ndarray]:
  """Held-out codes of every view's SAE (encoder or minimal codes, per `graph.codes`)."""
  codes = []
  for (model, variables), x in zip(saes, world.xs):
    x_eval = x[world.eval_rows]
    if config.graph.codes == "minimal":
      k = getattr(model, "k", None)
      kwargs = {"max_atoms": max(2, min(2 * k, model.d_in))} if k else {}
      codes.append(infer.minimal_codes(model, variables, x_eval, **kwargs))
    else:
      codes.append(np.asarray(model.apply(variables, x_eval, method="encode")))
  return codes


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


def _true_levels(world: World) -> list[np.ndarray]:
  return [np.asarray(z)[world.eval_rows] for z in world.samples["z"]]


def _level_units(config, codes) -> tuple[list, list]:
  """Per level: the units that belong to it (indices into its view's units) and their codes."""
  if not config.view.cumulative:
    return [np.arange(c.shape[1]) for c in codes], codes
  levels = assign_levels(codes, config.graph.same_unit_corr)
  units = [np.flatnonzero(levels[l] == l + 1) for l in range(len(codes))]
  for l, u in enumerate(units):
    if u.size == 0:
      raise DataError(f"no unit of view {l + 1} is specific to level {l + 1}: train wider SAEs "
                      "(sae_width) or lower graph.same_unit_corr")
  return units, [c[:, u] for c, u in zip(codes, units)]


def _matched_block(adj: np.ndarray, scores: np.ndarray, match_lo: np.ndarray,
                   match_hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
  """Learned edges and scores mapped onto concept pairs; count of edges off the matching."""
  learned = adj[np.ix_(match_lo, match_hi)]
  concept_scores = scores[np.ix_(match_lo, match_hi)]
  off = int(adj.sum() - learned.sum())
  return learned, concept_scores, off


def run_concept_graph(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains the per-level SAEs (or resumes), extracts and scores the concept graph."""
  world = build_world(config)
  saes = train_levels(config, world, workdir)
  codes = level_codes(config, world, saes)
  true_z = _true_levels(world)
  units, unit_codes = _level_units(config, codes)
  matches = [mcc(z, c) for z, c in zip(true_z, unit_codes)]
  g = config.graph
  present = [presence(c, g.rel_threshold) for c in unit_codes]
  blocks = extract_graph(present, necessity=g.necessity, precision=g.precision,
                         max_parents=g.max_parents, min_support=g.min_support)
  pairs = []
  for l, (adj, scores) in enumerate(blocks):
    learned, concept_scores, off = _matched_block(adj, scores, matches[l].matching,
                                                  matches[l + 1].matching)
    true = world.hsm.adjacency[l]
    metrics = edge_metrics(true, learned)
    metrics.update(auroc=edge_auroc(true, concept_scores), edges_off_matching=off,
                   learned_edges=int(adj.sum()), true_edges=int(true.sum()))
    pairs.append({"levels": [l + 1, l + 2], **metrics})
  result = {
      "levels": [{"level": l + 1, "units": int(len(units[l])), "mcc": float(m.mcc),
                  "min_concept_corr": float(np.min(m.per_concept))}
                 for l, m in enumerate(matches)],
      "pairs": pairs,
      "nodes": _nodes(units, matches),
      "edges": _edges(blocks, units),
      "codes": g.codes, "cumulative": bool(config.view.cumulative),
  }
  io.write_json(os.path.join(workdir, GRAPH_FILE), result)
  result["figure"] = graph_figure(world.hsm.adjacency, blocks, matches,
                                  os.path.join(workdir, "concept_graph"))[0]
  return result


def _nodes(units, matches) -> list[dict[str, Any]]:
  nodes = []
  for l, (u, m) in enumerate(zip(units, matches)):
    concept_of = {int(unit): c for c, unit in enumerate(m.matching)}
    for j, unit in enumerate(u):
      c = concept_of.get(j)
      nodes.append({"id": f"L{l + 1}:{int(unit)}", "level": l + 1, "unit": int(unit),
                    "concept": c, "corr": None if c is None else float(m.per_concept[c])})
  return nodes


def _edges(blocks, units) -> list[dict[str, Any]]:
  edges = []
  for l, (adj, scores) in enumerate(blocks):
    for i, j in zip(*np.nonzero(adj)):
      edges.append({"from": f"L{l + 1}:{int(units[l][i])}",
                    "to": f"L{l + 2}:{int(units[l + 1][j])}", "score": float(scores[i, j])})
  return edges


def graph_figure(true_blocks, blocks, matches, stem: str) -> list[str]:
  """The true concept graph beside the learned one (learned units placed at their concepts)."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  def draw(ax, adjs, title):
    sizes = [adjs[0].shape[0]] + [a.shape[1] for a in adjs]
    pos = [np.stack([np.linspace(0, 1, n), np.full(n, l)], 1) for l, n in enumerate(sizes)]
    for l, adj in enumerate(adjs):
      for i, j in zip(*np.nonzero(adj)):
        ax.plot(*zip(pos[l][i], pos[l + 1][j]), color="tab:blue", lw=0.6, alpha=0.7)
    for l, p in enumerate(pos):
      ax.scatter(p[:, 0], p[:, 1], s=12, color="k", zorder=3)
    ax.set_yticks(range(len(sizes)), [f"level {l + 1}" for l in range(len(sizes))])
    ax.set_xticks([])
    ax.set_title(title)

  learned = [adj[np.ix_(matches[l].matching, matches[l + 1].matching)]
             for l, (adj, _) in enumerate(blocks)]
  fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
  draw(axes[0], [np.asarray(b) for b in true_blocks], "true concept graph")
  draw(axes[1], learned, "learned (units at their matched concepts)")
  return save_figure(fig, stem)


def _steer_level(config, world: World, saes, matches, level: int, key) -> dict[str, float]:
  """Fidelity and specificity of setting each concept's unit, against do() on the concept."""
  model, variables = saes[level - 1]
  a = np.asarray(world.samples["a"][level - 1])[world.eval_rows]
  m_all = np.asarray(world.samples["m"][level - 1])[world.eval_rows]
  x_eval = world.xs[level - 1][world.eval_rows]
  enc = np.asarray(model.apply(variables, x_eval, method="encode"))
  base = {"a": [np.asarray(world.samples["a"][0])[world.eval_rows]],
          "m": [np.asarray(world.samples["m"][0])[world.eval_rows]]}
  fidelity, specificity = [], []
  for concept, unit in enumerate(matches[level - 1].matching):
    rows = np.flatnonzero(~a[:, concept])[:config.steer.samples_per_concept]
    active = enc[:, unit][enc[:, unit] > 0]
    if rows.size == 0 or active.size == 0 or not a[:, concept].any():
      continue
    value = float(np.median(active))
    intensity = float(np.median(m_all[a[:, concept], concept]))
    x = x_eval[rows]
    x_steered = np.asarray(steer.steer(model, variables, x, steer.edit("set", [int(unit)],
                                                                      value)))
    sub = {k: [v[0][rows]] for k, v in base.items()}
    after = generators.intervene(jax.random.fold_in(key, concept), world.hsm, rows.size,
                                 {f"a{level}[{concept}]": 1, f"m{level}[{concept}]": intensity},
                                 base=sub)
    dz = _view_latents(config, after["z"], level) - _view_latents(
        config, [np.asarray(z)[world.eval_rows][rows] for z in world.samples["z"]], level)
    true_change = dz @ world.mixings[level - 1].T
    change = x_steered - x
    direction = world.mixings[level - 1][:, concept]
    direction = direction / np.linalg.norm(direction)
    norms = np.linalg.norm(change, axis=1) * np.linalg.norm(true_change, axis=1)
    fidelity.append(np.mean(np.sum(change * true_change, axis=1) / np.maximum(norms, 1e-12)))
    energy = np.maximum(np.sum(change ** 2, axis=1), 1e-12)
    specificity.append(np.mean((change @ direction) ** 2 / energy))
  if not fidelity:
    raise DataError(f"no concept of level {level} could be steered: every concept is always "
                    "present or never matched; use more evaluation samples")
  return {"level": level, "fidelity": float(np.mean(fidelity)),
          "specificity": float(np.mean(specificity)), "concepts": len(fidelity)}


def _view_latents(config, z_levels, level: int) -> np.ndarray:
  z = [np.asarray(v) for v in z_levels]
  return np.concatenate(z[level - 1:], axis=1) if config.view.cumulative else z[level - 1]


def _hcm_almost_complete(key, hcm, pool: int, whole: int, missing: int, trials: int):
  parents = np.flatnonzero(hcm.adjacency[0][:, whole])
  pre = generators.sample_hcm(key, hcm, pool)
  a1, a2 = np.asarray(pre["a"][0]), np.asarray(pre["a"][1])
  others = [p for p in parents if p != missing]
  event = (~a2[:, whole]) & (~a1[:, missing]) & np.all(a1[:, others], axis=1)
  return np.flatnonzero(event)[:trials]


def _emergence(config, world: World, saes, matches, thresholds) -> dict[str, Any]:
  """Whole-unit firing after do() on the missing part, HSM against HCM (level-2 view)."""
  e = config.emergence
  key = jax.random.key(e.seed)
  model, variables = saes[1]
  hcm = generators.make_hcm(hcm_twin(world.hsm.config))
  if any(not np.array_equal(x, y) for x, y in zip(hcm.adjacency, world.hsm.adjacency)):
    raise ConfigError("the HCM twin has a different graph than the HSM; set world.overlap and "
                      "parent counts that both generators build identically")
  records = {"hsm": [], "hcm": []}
  n2 = world.hsm.level_sizes[1]
  mixing = world.mixings[1]

  def fires(z_levels, whole):
    x = _view_latents(config, z_levels, 2) @ mixing.T
    codes = np.asarray(model.apply(variables, x.astype(np.float32), method="encode"))
    unit = matches[1].matching[whole]
    return (codes[:, unit] > 0) & (codes[:, unit] > thresholds[unit])

  for whole in range(n2):
    missing = int(world.hsm.parents(2, whole)[0])
    k = jax.random.fold_in(key, whole)
    base = generators.almost_complete_samples(k, world.hsm, e.trials_per_whole, whole, missing)
    after = generators.intervene(k, world.hsm, e.trials_per_whole, {f"a1[{missing}]": 1},
                                 base=base)
    records["hsm"].append(float(np.mean(fires(after["z"], whole))))
    rows = _hcm_almost_complete(k, hcm, e.hcm_pool, whole, missing, e.trials_per_whole)
    if rows.size:
      done = generators.intervene_hcm(k, hcm, e.hcm_pool, {f"a1[{missing}]": 1})
      records["hcm"].append(float(np.mean(fires([np.asarray(z)[rows] for z in done["z"]],
                                                whole))))
  return {"hsm_fire_rate": float(np.mean(records["hsm"])),
          "hcm_fire_rate": float(np.mean(records["hcm"])) if records["hcm"] else None,
          "hsm_min_whole": float(np.min(records["hsm"])),
          "hcm_max_whole": float(np.max(records["hcm"])) if records["hcm"] else None,
          "wholes_hsm": len(records["hsm"]), "wholes_hcm": len(records["hcm"]),
          "per_whole": records}


def run_steering(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains the per-level SAEs (or resumes) and measures steering and emergence."""
  world = build_world(config)
  if config.view.cumulative:
    raise ConfigError("steering is evaluated on pure level views: set view.cumulative=False")
  saes = train_levels(config, world, workdir)
  true_z = _true_levels(world)
  enc = [np.asarray(m.apply(v, x[world.eval_rows], method="encode"))
         for (m, v), x in zip(saes, world.xs)]
  matches = [mcc(z, c) for z, c in zip(true_z, enc)]
  key = jax.random.key(config.steer.seed)
  levels = [_steer_level(config, world, saes, matches, l + 1, jax.random.fold_in(key, l))
            for l in range(len(saes))]
  emergence = _emergence(config, world, saes, matches,
                         presence_thresholds(enc[1], config.graph.rel_threshold))
  result = {"levels": levels, "emergence": emergence,
            "mcc": [float(m.mcc) for m in matches]}
  io.write_json(os.path.join(workdir, STEERING_FILE), result)
  result["figure"] = steering_figure(levels, emergence, os.path.join(workdir, "steering"))[0]
  return result


def steering_figure(levels, emergence, stem: str) -> list[str]:
  """Left: steering fidelity and specificity per level; right: HSM vs HCM emergence."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4))
  pos = np.arange(len(levels))
  ax0.bar(pos - 0.2, [r["fidelity"] for r in levels], 0.4, label="fidelity (cos with do())")
  ax0.bar(pos + 0.2, [r["specificity"] for r in levels], 0.4, label="specificity")
  ax0.axhline(0.9, color="gray", ls="--", lw=1)
  ax0.set_xticks(pos, [f"level {r['level']}" for r in levels])
  ax0.set_ylim(0, 1.02)
  ax0.legend(loc="lower left")
  ax0.set_title("steering one unit vs do() on its concept")
  rates = [emergence["hsm_fire_rate"], emergence["hcm_fire_rate"] or 0.0]
  ax1.bar([0, 1], rates, color=["tab:green", "tab:red"])
  ax1.set_xticks([0, 1], ["selection (HSM)", "causal (HCM)"])
  ax1.set_ylim(0, 1.02)
  ax1.set_ylabel("whole's unit fires after do(missing part)")
  ax1.set_title("emergence")
  return save_figure(fig, stem)
