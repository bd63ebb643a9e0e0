"""The concept-graph stage of the pipeline: units per site, their MCC per level, the graph.

`run(config, workdir)` asks the registry for ``config.subject.kind`` and runs that subject's
graph stage. Subjects whose activations are captured at named sites (`scenes`, `grammar`) share
`site_graph`: one SAE per site, the site x level MCC table, level l's units taken from the SAE
at site ``level_sites[l]``, their presence linked level to level by
`identi.concepts.extract_graph`, and the edges scored against the world's true graph after MCC
matching. Writes ``graph.json`` and the figures.

Sign-aware graphs (``graph.sign_aware``). A unit may code its concept's absence: it fires when
the concept is missing (the scene units of the diffusion subject do). Its presence then has the
concept's parts as *absent* parents, which the rules of `extract_graph` (parts present -> whole
present) cannot express. With ``sign_aware``, every unit of levels 2 and up is linked both as it
is and negated (present where it is silent), and keeps the polarity whose learned parents have the
larger total edge score (a unit present in no sample stays as it is); a negated unit then serves
as a present-coding unit in the graph and as the lower level of the next pair. ``graph.json``
lists the negated units per level (``negated``); a unit is picked from the SAE's codes alone,
without the world's labels.

Shared-ancestor units (``graph.ancestor_presence``). A minimality stage with shared ancestors
(`identi.infer.ancestors`) adds units whose code is the weighted sum of their children's codes:
such a unit is positive wherever any child is (in nearly every sample), and the whole it stands for
is where its code is high, not where it fires. With ``'split'`` (the default) their presence is
the upper class of a two-class split of their positive codes
(`identi.concepts.split_presence`); ``'relative'`` treats them as every other unit
(``graph.rel_threshold``). Which units are ancestors comes from the stage's file, not from the
labels; ``graph.json`` lists them per level (``ancestor_units``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import ml_collections
import numpy as np

from identi import plots
from identi.concepts.graph import RULES, SCORES, extract_graph, presence, split_presence
from identi.errors import ConfigError, DataError
from identi.experiments.saes import level_slices, sae_codes
from identi.metrics import edge_auroc, edge_metrics, mcc
from identi.subjects.base import load_subject_for
from identi.train.minimality import ancestor_units

GRAPH_FILE = "graph.json"
ANCESTOR_PRESENCE = ("split", "relative")


def graph_schema() -> ml_collections.ConfigDict:
  """The 'graph' section shared by subject experiments (defaults of the scenes experiment)."""
  return ml_collections.ConfigDict({
      "codes": "minimal", "rel_threshold": 0.1, "score": "contrast", "rule": "threshold",
      "necessity": 0.5, "precision": 0.9, "max_parents": 6, "min_support": 5,
      "sign_aware": False, "ancestor_presence": "split"})


def validate_graph_section(g: ml_collections.ConfigDict) -> None:
  """Checks of the 'graph' section that every subject experiment shares."""
  if g.rule not in RULES:
    raise ConfigError(f"config key 'graph.rule' is {g.rule!r}; use 'threshold' (wholes emerge "
                      "from tau of their parts, as in the subject worlds), 'and' or 'isa' "
                      "(taxonomies, where a category is any of its members)")
  if g.score not in SCORES:
    raise ConfigError(f"config key 'graph.score' is {g.score!r}; use 'contrast' (units present "
                      "in almost every sample cannot crowd the parts out) or 'necessity'")
  if g.codes not in ("encoder", "minimal"):
    raise ConfigError(f"config key 'graph.codes' is {g.codes!r}; use 'encoder' or 'minimal'")
  if g.get("ancestor_presence", "split") not in ANCESTOR_PRESENCE:
    raise ConfigError(f"config key 'graph.ancestor_presence' is {g.ancestor_presence!r}; use "
                      "'split' (a shared-ancestor unit is present in the upper class of its "
                      "codes) or 'relative' (as every other unit)")


def learn_graph(presences, g: ml_collections.ConfigDict) -> list[tuple[np.ndarray, np.ndarray]]:
  """`identi.concepts.extract_graph` with the settings of a config's 'graph' section."""
  return extract_graph(presences, necessity=g.necessity, precision=g.precision,
                       max_parents=g.max_parents, min_support=g.min_support, rule=g.rule,
                       score=g.score)


def score_pairs(blocks, matches, adjacency) -> list[dict[str, Any]]:
  """Edge precision / recall / F1 / SHD / AUROC of each extracted level pair against the true
  adjacency, among the MCC-matched units (`matches[l].matching[i]` is concept i's unit)."""
  pairs = []
  for l, (adj, scores) in enumerate(blocks):
    lo, hi = matches[l].matching, matches[l + 1].matching
    learned = adj[np.ix_(lo, hi)]
    true = adjacency[l]
    metrics = edge_metrics(true, learned)
    metrics.update(auroc=edge_auroc(true, scores[np.ix_(lo, hi)]),
                   edges_off_matching=int(adj.sum() - learned.sum()),
                   learned_edges=int(adj.sum()), true_edges=int(true.sum()))
    pairs.append({"levels": [l + 1, l + 2], **metrics})
  return pairs


def edge_list(blocks) -> list[dict[str, Any]]:
  """The extracted edges as JSON records (level pair, from unit, to unit, score)."""
  return [{"level_pair": [l + 1, l + 2], "from": int(i), "to": int(j),
           "score": float(blocks[l][1][i, j])}
          for l in range(len(blocks)) for i, j in zip(*np.nonzero(blocks[l][0]))]


def load_graph(workdir: str) -> dict[str, Any]:
  """The ``graph.json`` a graph stage wrote in `workdir`; DataError saying how to make it."""
  path = os.path.join(workdir, GRAPH_FILE)
  if not os.path.exists(path):
    raise DataError(f"no {path}; run `python -m identi.bin.concept_graph --config=... "
                    f"--workdir={workdir}` first (steering uses the learned graph)")
  with open(path, encoding="utf-8") as f:
    return json.load(f)


@dataclasses.dataclass
class SiteCodes:
  """What `site_graph` needs of a subject's trained site SAEs.

  names: site labels as they appear in the table (a float timestep, a layer name);
  codes: per site, the codes of its SAE on the held-out rows; z: the held-out rows' latents (all
  levels concatenated, parts first); groups: None, or an int array assigning held-out rows to
  samples (a unit is present in a sample when present at any of its rows); ancestors: None, or
  per site the int indices of its shared-ancestor units (module docstring).
  """
  key: str
  names: list[Any]
  codes: list[np.ndarray]
  z: list[np.ndarray]
  groups: np.ndarray | None = None
  ancestors: list[np.ndarray] | None = None


def site_graph(config: ml_collections.ConfigDict, sites: SiteCodes, level_sites: list[int],
               level_sizes, adjacency, workdir: str) -> dict[str, Any]:
  """The site x level MCC table and the graph across levels (module docstring); writes
  ``graph.json``. The result also holds `blocks` and `matches` (not written) for figures."""
  slices = level_slices(level_sizes)
  table = []
  for name, c, z in zip(sites.names, sites.codes, sites.z):
    row = {sites.key: name, "units": int(c.shape[1])}
    for l, sl in enumerate(slices):
      row[f"level_{l + 1}"] = float(mcc(z[:, sl], c).mcc)
    table.append(row)
  g = config.graph
  matches = [mcc(sites.z[s][:, slices[l]], sites.codes[s]) for l, s in enumerate(level_sites)]
  ancestors = [np.zeros(0, np.int64) if sites.ancestors is None else sites.ancestors[s]
               for s in level_sites]
  present = [unit_presence(sites.codes[s], a, g) for s, a in zip(level_sites, ancestors)]
  if sites.groups is not None:
    present = [per_group(p, sites.groups) for p in present]
  negated = [np.zeros(p.shape[1], bool) for p in present]
  if g.get("sign_aware", False):
    present, negated = orient_units(present, g)
  blocks = learn_graph(present, g)
  pairs = [{sites.key + "s": [sites.names[level_sites[l]], sites.names[level_sites[l + 1]]],
            **m} for l, m in enumerate(score_pairs(blocks, matches, adjacency))]
  result = {
      "table": table, "pairs": pairs,
      f"level_{sites.key}s": [sites.names[s] for s in level_sites],
      "matches": [{"level": l + 1, "mcc": float(m.mcc), "matching": m.matching.tolist(),
                   "per_concept": m.per_concept.tolist()} for l, m in enumerate(matches)],
      "edges": edge_list(blocks), "codes": g.codes,
      "negated": [np.flatnonzero(n).tolist() for n in negated],
      "ancestor_units": [a.tolist() for a in ancestors],
      "ancestor_presence": g.get("ancestor_presence", "split"),
  }
  return result, blocks, matches, present


def unit_presence(codes: np.ndarray, ancestors: np.ndarray, g: ml_collections.ConfigDict
                  ) -> np.ndarray:
  """Presence bits of one site's units: ``graph.rel_threshold`` of each unit's typical code, and
  for its shared-ancestor units (int indices) the split of ``graph.ancestor_presence``."""
  present = presence(codes, g.rel_threshold)
  if len(ancestors) and g.get("ancestor_presence", "split") == "split":
    present[:, ancestors] = split_presence(codes[:, ancestors])
  return present


def orient_units(present: list[np.ndarray], g: ml_collections.ConfigDict
                 ) -> tuple[list[np.ndarray], list[np.ndarray]]:
  """The sign-aware presences (module docstring): level by level from the bottom, each upper
  unit is linked as it is and negated to the (already oriented) level below, and negated where
  that gives its parents the larger total edge score. Returns (presences, negated masks)."""
  present = [np.asarray(p, bool) for p in present]
  negated = [np.zeros(present[0].shape[1], bool)]
  for l in range(1, len(present)):
    upper = present[l]
    n = upper.shape[1]
    adj, scores = learn_graph([present[l - 1], np.concatenate([upper, ~upper], axis=1)], g)[0]
    total = np.where(adj, scores, 0.0).sum(axis=0)
    # A unit present in no sample is not negated: present everywhere, it has no "absent" samples
    # to contrast its parents against, and every frequent lower unit would score as its parent.
    flip = (total[n:] > total[:n]) & upper.any(axis=0)
    present[l] = np.where(flip[None, :], ~upper, upper)
    negated.append(flip)
  return present, negated


def per_group(present: np.ndarray, groups: np.ndarray) -> np.ndarray:
  """bool (groups, units): a unit is present in a group (a sequence) if present at any row."""
  _, inverse = np.unique(groups, return_inverse=True)
  out = np.zeros((inverse.max() + 1, present.shape[1]), bool)
  np.logical_or.at(out, inverse, present)
  return out


def site_codes(config, saes_and_data, key: str, names, groups=None) -> SiteCodes:
  """`SiteCodes` of trained SAEs: `saes_and_data` holds (model, variables, x, z) per site."""
  codes, zs, ancestors = [], [], []
  for model, variables, x, z in saes_and_data:
    codes.append(sae_codes(config.graph.codes, model, variables, x))
    zs.append(z)
    ancestors.append(ancestor_units(variables))
  return SiteCodes(key, list(names), codes, zs, groups, ancestors)


def graph_figures(result_blocks, matches, adjacency, table, num_levels: int, workdir: str,
                  key: str, heatmap_stem: str) -> list[str]:
  """The MCC heat map and the learned-vs-true graph figure of a site graph."""
  return [plots.mcc_heatmap(table, num_levels, os.path.join(workdir, heatmap_stem),
                            row_key=key)[0],
          plots.graph_figure(adjacency, result_blocks, matches,
                             os.path.join(workdir, "concept_graph"))[0]]


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """The graph stage of ``config.subject.kind`` (captures and trains what is missing first)."""
  return load_subject_for(config).run_graph(os.path.abspath(workdir))
