"""Steering the transformer subject during generation with its layer SAEs (issue 7, step 2).

At every position of every forward pass of the sampler (so at every generated position), the
output of each captured layer is encoded by that layer's SAE, the chosen units are raised to
``steer.strength`` times their ``steer.percentile`` active code on the held-out sequences, decoded,
and the SAE's reconstruction error is added back (`identi.steer.steer` inside
`identi.hooks.patch`). A layer with nothing to raise is left exactly as it is. Every generation
has its own key (``fold_in(key(steer.seed), pool index)``), so an edited generation and its
unedited control share all sampling noise.

Targets: every phrase (level 2), each steered in generations of the unedited pool where it is
absent. Modes:

- ``phrase``: the phrase's unit of the SAE at the phrase level's layer
  (``graph.level_layers[1]``; the unit MCC-matched to the phrase in ``graph.json``).
- ``parts``: the phrase's parents in the LEARNED graph (``graph.json`` edges into the phrase
  unit): word units of the SAE at ``graph.level_layers[0]``, all raised together.
- ``flat``: the unit of one SAE (``steer.flat_layer``) best matched to the phrase by the encoder
  codes, without the graph.

Scores, by `grammar.parse` on the generated tokens: success (the target phrase present),
coherence (the sequence grammatical) and preservation (the fraction of the other phrases whose
presence is unchanged from the unedited generation).
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from identi import hooks, io, steer
from identi.errors import DataError
from identi.figures import save_figure
from identi.metrics import mcc
from identi.subjects import transformer
from identi.subjects.experiment import GRAPH_FILE, level_slices
from identi.subjects.grammar import parse, to_text
from identi.subjects.lm_experiment import (capture_lm_subject, load_lm_world, train_layers,
                                           validate_lm_experiment_config)

STEERING_FILE = "steering.json"
MODES = ("phrase", "parts", "flat")
_EXAMPLES = 3  # Before/after text examples per mode in steering.json.


@functools.partial(jax.jit, static_argnames=("model", "saes", "layers", "temperature"))
def _generate(params, sae_vars, keys, masks, values, *, model, saes, layers, temperature):
  """One generation per key; row i raises the units `masks[layer][i]` of each layer's SAE."""

  def one(key, row_masks):
    def logits_fn(tokens):
      edits = {}
      for i, layer in enumerate(layers):
        def edit_fn(act, i=i):
          flat = act.reshape(-1, act.shape[-1])
          raised = lambda codes: jnp.where(row_masks[i], jnp.maximum(codes, values[i]), codes)
          steered = steer.steer(saes[i], sae_vars[i], flat, raised).astype(act.dtype)
          return jnp.where(row_masks[i].any(), steered, flat).reshape(act.shape)
        edits[layer] = edit_fn
      return hooks.patch(model.apply, {"params": params}, tokens, edits=edits)

    return transformer.sample(key, logits_fn, 1, model.seq_len, temperature)[0]

  return jax.vmap(one)(keys, masks)


def load_graph(workdir: str) -> dict[str, Any]:
  path = os.path.join(workdir, GRAPH_FILE)
  if not os.path.exists(path):
    raise DataError(f"no {path}; run `python -m identi.bin.concept_graph "
                    f"--config=configs/grammar_concepts.py --workdir={workdir}` first (steering "
                    "uses the learned graph)")
  with open(path, encoding="utf-8") as f:
    return json.load(f)


class LmSteerer:
  """Everything a steered generation needs: subject, SAEs, target units and code values."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str):
    self.config = config
    self.model, self.params, self.grammar = load_lm_world(config)
    saes, test = train_layers(config, workdir)
    self.layers = tuple(config.capture.layers)
    self.saes = tuple(m for m, _ in saes)
    self.sae_vars = [jax.tree.map(jnp.asarray, v) for _, v in saes]
    phrases = level_slices(self.grammar.config.level_sizes)[1]
    self.value, self.flat_match = [], None
    s = config.steer
    for i, ((model, variables), x) in enumerate(zip(saes, test["x"])):
      codes = np.asarray(model.apply(variables, x, method="encode"))
      live = (codes > 0).any(axis=0)  # Never-active units keep value 0.
      value = np.zeros(codes.shape[1], np.float32)
      value[live] = np.nanpercentile(np.where(codes > 0, codes, np.nan)[:, live], s.percentile,
                                     axis=0)
      self.value.append(s.strength * value)
      if i == s.flat_layer:
        self.flat_match = mcc(test["z"][:, phrases], codes).matching
    graph = load_graph(workdir)
    self.level_layers = [self.layers.index(l) for l in graph["level_layers"]]
    self.phrase_match = np.asarray(graph["matches"][1]["matching"])
    self.edges = [(e["from"], e["to"]) for e in graph["edges"] if e["level_pair"] == [1, 2]]

  def empty(self, n: int = 1) -> list[np.ndarray]:
    return [np.zeros((n, len(v)), bool) for v in self.value]

  def plan(self, mode: str, target: int) -> list[np.ndarray]:
    """Per-layer raise masks (1, units) of one mode's edit of phrase `target`."""
    masks = self.empty()
    if mode == "flat":
      masks[self.config.steer.flat_layer][0, self.flat_match[target]] = True
      return masks
    unit = int(self.phrase_match[target])
    if mode == "phrase":
      masks[self.level_layers[1]][0, unit] = True
    else:
      masks[self.level_layers[0]][0, [i for i, j in self.edges if j == unit]] = True
    return masks

  def run(self, indices: np.ndarray, masks: list[np.ndarray]) -> np.ndarray:
    """Tokens (n, seq_len) of the generations with pool `indices`, edited by per-row masks."""
    c = self.config
    base = jax.random.key(c.steer.seed)
    size = c.steer.batch_size
    out = []
    for lo in range(0, len(indices), size):
      idx = indices[lo:lo + size]
      pad = np.concatenate([np.arange(len(idx)), np.full(size - len(idx), len(idx) - 1)])
      keys = jax.vmap(lambda p: jax.random.fold_in(base, p))(jnp.asarray(idx[pad]))
      tokens = _generate(self.params, self.sae_vars, keys,
                         [jnp.asarray(m[lo:lo + size][pad]) for m in masks],
                         [jnp.asarray(v) for v in self.value], model=self.model, saes=self.saes,
                         layers=self.layers, temperature=float(c.capture.temperature))
      out.append(np.asarray(tokens)[:len(idx)])
    return np.concatenate(out)


def score(before: dict, after: dict, targets: np.ndarray) -> dict[str, np.ndarray]:
  """Per-generation success, coherence and preservation of phrase edits (module docstring)."""
  rows = np.arange(len(targets))
  others = np.ones(before["a"][1].shape, bool)
  others[rows, targets] = False
  same = (before["a"][1] == after["a"][1]) & others
  return {"success": after["a"][1][rows, targets], "coherence": after["grammatical"],
          "preservation": same.sum(1) / others.sum(1)}


def run_lm_steering(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Every mode over about steer.samples_per_mode generations; writes steering.json."""
  validate_lm_experiment_config(config)
  workdir = os.path.abspath(workdir)
  capture_lm_subject(config, workdir)
  st = LmSteerer(config, workdir)
  c = config.steer
  pool = np.arange(c.pool)
  base_tokens = st.run(pool, st.empty(c.pool))
  base = parse(st.grammar, base_tokens)
  n_phrases = st.grammar.config.level_sizes[1]
  per_target = -(-c.samples_per_mode // n_phrases)
  jobs = []  # (mode, target, pool rows)
  for mode in MODES:
    for target in range(n_phrases):
      rows = np.flatnonzero(~base["a"][1][:, target])[:per_target]
      if rows.size:
        jobs.append((mode, target, rows))
  plans = {(m, t): st.plan(m, t) for m, t, _ in jobs}
  masks = [np.concatenate([np.repeat(plans[m, t][i], len(r), axis=0) for m, t, r in jobs])
           for i in range(len(st.layers))]
  rows = np.concatenate([r for _, _, r in jobs])
  targets = np.concatenate([np.full(len(r), t) for _, t, r in jobs])
  modes = np.concatenate([np.full(len(r), m) for m, _, r in jobs])
  tokens = st.run(pool[rows], masks)
  after = parse(st.grammar, tokens)
  before = {"a": [a[rows] for a in base["a"]], "grammatical": base["grammatical"][rows]}
  scores = score(before, after, targets)
  results, examples = [], {}
  for mode in MODES:
    sel = modes == mode
    units = [int(sum(m.sum() for m in plans[mode, t])) for t in range(n_phrases)
             if (mode, t) in plans]
    results.append({"mode": mode, "samples": int(sel.sum()),
                    **{k: float(v[sel].mean()) if sel.any() else 0.0 for k, v in scores.items()},
                    "units_per_edit": float(np.mean(units)) if units else 0.0})
    first = np.flatnonzero(sel)[:_EXAMPLES]
    examples[mode] = [{"target": int(targets[i]),
                       "before": to_text(st.grammar, base_tokens[rows[i]]),
                       "after": to_text(st.grammar, tokens[i])} for i in first]
  result = {"rows": results, "examples": examples, "pool": int(c.pool),
            "unedited_grammatical": float(base["grammatical"].mean()),
            "level_layers": [st.layers[i] for i in st.level_layers],
            "flat_layer": st.layers[c.flat_layer], "percentile": float(c.percentile),
            "strength": float(c.strength)}
  io.write_json(os.path.join(workdir, STEERING_FILE), result)
  result["figure"] = steering_bars(results, os.path.join(workdir, "steering"))[0]
  return result


def steering_bars(rows: list[dict[str, Any]], stem: str) -> list[str]:
  """Success, coherence and preservation per mode as grouped bars."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  metrics = ("success", "coherence", "preservation")
  fig, ax = plt.subplots(figsize=(6, 3.2))
  width = 0.8 / len(metrics)
  for k, name in enumerate(metrics):
    xs = np.arange(len(rows)) + (k - 1) * width
    ax.bar(xs, [r[name] for r in rows], width, label=name)
  ax.set_xticks(range(len(rows)), [f"{r['mode']}\n(n = {r['samples']})" for r in rows])
  ax.set_ylim(0, 1.15)
  ax.set_title("Steering phrases during generation")
  ax.legend(fontsize=8, loc="upper center", ncol=3)
  fig.tight_layout()
  return save_figure(fig, stem)
