"""The `hsm` subject: per-level linear views of a hierarchical selection world, and its pipeline.

One HSM world is drawn once and observed through one linear view per level (pure: ``x_l = A_l
z[l]``; cumulative: ``x_l = A_l [z[l]; ...; z[L]]``). One SAE is trained per view with
`identi.train`; all scoring uses the held-out split.

- Graph (`run_concept_graph`): MCC of each view's units against that level's concepts;
  unit levels (pure views: the view's level; cumulative views: `assign_levels`); the graph between
  adjacent levels from the units' presence (`identi.concepts.extract_graph`, run on ALL units,
  unsupervised); then, after MCC matching, precision / recall / F1 / SHD against the true graph
  (edges between matched units, mapped to their concepts; edges touching unmatched units are
  counted separately) and AUROC of the edge scores. Writes ``graph.json`` and
  ``concept_graph.{png,pdf}``.
- Steering (`run_steering`): for every concept of every level and held-out samples where it
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
from identi import generators, infer, io, plots, steer
from identi.concepts.graph import assign_levels, extract_graph, presence, presence_thresholds
from identi.errors import ConfigError, DataError
from identi.experiments import capture as capture_lib
from identi.experiments.graph import GRAPH_FILE
from identi.experiments.identify import hsm_config
from identi.experiments.saes import add_training_sections
from identi.experiments.steer import STEERING_FILE
from identi.generators import views
from identi.metrics import edge_auroc, edge_metrics, mcc
from identi.subjects.base import register_subject
from identi.train import config as config_lib
from identi.train import load_trained, train_and_evaluate


def default_config() -> ml_collections.ConfigDict:
  """The schema of `hsm` experiment configs, with defaults (the default 3-level world)."""
  c = ml_collections.ConfigDict()
  c.subject = ml_collections.ConfigDict({"kind": "hsm"})
  c.world = ml_collections.ConfigDict({
      "level_sizes": (48, 24, 6), "min_parents": 2, "max_parents": 2, "overlap": 0.0,
      "pi": 0.3, "zipf_exponent": 0.0, "tau": 0, "eps": 0.3, "magnitude": "lognormal",
      "weight_range": (0.5, 1.5), "graph_seed": 0})
  c.view = ml_collections.ConfigDict({"dims": (96, 48, 16), "cumulative": False, "sigma": 0.0,
                                      "num_samples": 1 << 16, "seed": 0})
  c.data = ml_collections.ConfigDict({"num_eval": 8192, "split_seed": 0})
  add_training_sections(c)
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


def variant(config: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
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


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the key for unknown keys, wrong types and impossible values."""
  config_lib.check_keys(config, default_config())
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
  validate_config(config)
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
  result["figure"] = plots.graph_figure(world.hsm.adjacency, blocks, matches,
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
    dz = view_latents(config, after["z"], level) - view_latents(
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


def view_latents(config, z_levels, level: int) -> np.ndarray:
  """The latents view `level` (1-based) observes: its level, or with cumulative views its level
  and every level above."""
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
    x = view_latents(config, z_levels, 2) @ mixing.T
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
  result["figure"] = plots.steering_figure(levels, emergence, os.path.join(workdir, "steering"))[0]
  return result


@register_subject("hsm")
class HSMViews:
  """The `hsm` subject (module docstring): the world drawn from ``config.world`` and observed
  through one linear view per level (``config.view``); the views are its sites."""

  kind = "hsm"
  default_config = staticmethod(default_config)
  variant = staticmethod(variant)
  validate_config = staticmethod(validate_config)

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self._world: World | None = None

  @property
  def world(self) -> World:
    """The drawn world and its views (built on first use)."""
    if self._world is None:
      self._world = build_world(self.config)
    return self._world

  # World.
  @property
  def level_sizes(self) -> tuple[int, ...]:
    return tuple(self.config.world.level_sizes)

  @property
  def adjacency(self) -> list[np.ndarray]:
    return [np.asarray(a) for a in self.world.hsm.adjacency]

  def sample(self, key: jax.Array, n: int) -> dict[str, Any]:
    """n new samples of the world: ``{"obs": [view of each level], "a", "z"}``."""
    s = generators.sample_hsm(key, self.world.hsm, n)
    return {"obs": self.capture([np.asarray(z) for z in s["z"]], self.sites), "a": s["a"],
            "z": s["z"]}

  def read(self, obs) -> dict[str, Any]:
    """Each level's concepts from its pure view: least squares through the view's mixing (exact
    for noiseless pure views, whose mixing has full column rank)."""
    if self.config.view.cumulative:
      raise NotImplementedError("reading concepts from cumulative views is not defined; use "
                                "view.cumulative=False")
    z = [np.linalg.lstsq(a, np.asarray(x).T, rcond=None)[0].T
         for a, x in zip(self.world.mixings, obs)]
    return {"z": z, "a": [v > 1e-6 for v in z]}

  # Model: the views themselves.
  @property
  def sites(self) -> tuple[str, ...]:
    return tuple(f"view_{l + 1}" for l in range(len(self.level_sizes)))

  def capture(self, inputs, sites: tuple[str, ...]) -> Any:
    """The views `sites` of latents `inputs` (one array per level); a list if `sites` is the
    tuple of all sites, else ``{site: view}``."""
    out = {}
    for site in sites:
      l = self.sites.index(site)
      out[site] = (view_latents(self.config, inputs, l + 1) @ self.world.mixings[l].T).astype(
          np.float32)
    return [out[s] for s in sites] if tuple(sites) == self.sites else out

  def patch(self, inputs, edits) -> dict[str, Any]:
    """The views of latents `inputs` with ``edits[site](view)`` applied."""
    views_ = self.capture(inputs, tuple(edits))
    return {site: edit(views_[site]) for site, edit in edits.items()}

  def generate(self, key: jax.Array, n: int, edits=None) -> Any:
    """n new samples' views (with `edits` applied to the named views)."""
    obs = self.sample(key, n)["obs"]
    if edits:
      for site, edit in edits.items():
        obs[self.sites.index(site)] = edit(obs[self.sites.index(site)])
    return obs

  # Pipeline.
  def run_capture(self, workdir: str) -> dict[str, Any]:
    """Writes every view as a shard directory (latents: every level, parts first) and the
    presence of every level as labels (skipped if present)."""
    if not os.path.exists(capture_lib.labels_path(workdir)):
      w = self.world
      z_all = np.concatenate([np.asarray(z, np.float32) for z in w.samples["z"]], axis=1)
      capture_lib.write_capture(workdir, dict(zip(self.sites, w.xs)), z_all,
                                {f"a{l + 1}": np.asarray(a) for l, a in
                                 enumerate(w.samples["a"])})
    labels = capture_lib.levels_of(capture_lib.read_labels(workdir))
    return {"samples": int(labels[0].shape[0]), "sites": list(self.sites),
            "dims": [int(d) for d in self.config.view.dims],
            "active_per_level": [float(a.sum(1).mean()) for a in labels]}

  def run_graph(self, workdir: str) -> dict[str, Any]:
    return run_concept_graph(self.config, workdir)

  def run_steering(self, workdir: str) -> dict[str, Any]:
    return run_steering(self.config, workdir)

  @staticmethod
  def tables(stage: str, result: dict[str, Any]) -> list[tuple[list[dict], list[str]]]:
    """The rows and columns a binary prints for a stage's result."""
    if stage == "capture":
      row = dict(result, sites=",".join(result["sites"]),
                 dims=",".join(map(str, result["dims"])),
                 active_per_level=",".join(f"{a:.2f}" for a in result["active_per_level"]))
      return [([row], ["samples", "sites", "dims", "active_per_level"])]
    if stage == "graph":
      pairs = [dict(r, levels=f"{r['levels'][0]}->{r['levels'][1]}") for r in result["pairs"]]
      return [(result["levels"], ["level", "units", "mcc", "min_concept_corr"]),
              (pairs, ["levels", "precision", "recall", "f1", "shd", "auroc", "learned_edges",
                       "true_edges", "edges_off_matching"])]
    e = result["emergence"]
    return [(result["levels"], ["level", "fidelity", "specificity", "concepts"]),
            ([{"model": "HSM (selection)", "fire_rate": e["hsm_fire_rate"],
               "wholes": e["wholes_hsm"]},
              {"model": "HCM (causal)", "fire_rate": e["hcm_fire_rate"],
               "wholes": e["wholes_hcm"]}], ["model", "fire_rate", "wholes"])]
