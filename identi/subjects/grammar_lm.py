"""The `grammar` subject: the transformer trained on the grammar world, and its pipeline.

1. Capture: ``capture.num_samples`` sequences sampled from the
   subject at ``capture.temperature`` (jitted, `identi.subjects.transformer.sample`), then one
   forward pass on the finished sequences reads the residual stream after each of
   ``capture.layers`` with `identi.hooks.capture` (for a causal model this equals reading it while
   sampling). Writes one `identi.data` shard directory per layer (``capture/<layer>``) and
   ``capture/labels.npz``.
2. Graph: one SAE per layer, the layer x level MCC table and the concept
   graph words -> phrases -> sentence types, scored against the grammar's true graph. Writes
   ``graph.json``, ``layer_mcc.png`` and ``concept_graph.png``.
3. Steering during generation (`run_steering`, below).

Choices:

- Rows are positions: every position from BOS up to and including the first EOS (all positions
  of a sequence without EOS); PAD is dropped. Rows are stored sequence by sequence.
- Ground truth is what `grammar.parse` reads from the finished sample (the concepts the model
  committed to). The latents z of a row concatenate, levels in order: level 1, the one-hot of the
  word at that position (zero at BOS, SEP and EOS); level 2, the one-hot of the phrase whose group
  the position is in (SEP included; zero at BOS and EOS); level 3 and above, the presence of the
  concepts in the whole sequence (the same at every position of a sequence).
- ``capture/labels.npz`` holds ``seq_id`` and ``position`` of every row, the ``tokens``,
  ``grammatical`` and the per-sequence presence ``a1, a2, ...`` of every level.
- Sequences, not rows, are held out: ``data.num_test`` sequences (drawn with
  ``data.split_seed``) are never seen by the SAEs; the table, the graph and the steering values
  use their positions. The SAEs split their own training rows as `identi.train` does
  (``data.num_eval`` rows).
- The graph is extracted from presence per sequence: a unit is present in a sequence when it is
  present (`identi.concepts.graph.presence`) at any of its positions, because words and phrases
  compose at the sequence level (a phrase emerges from words at several positions). Level l's
  units are those of the SAE at ``capture.layers[graph.level_layers[l]]``, identified with the
  concepts by MCC matching of the per-position codes. Some units are present in every sequence
  (those of BOS, SEP, EOS and the first positions), so candidates are ranked by contrast
  (``graph.score``, `identi.concepts.learn_edges`), and presence needs half of a unit's typical
  code (``graph.rel_threshold`` 0.5).
- Layers: the residual stream entering the first block (``embed``, token plus position
  embedding) and after each block. Words are read best at ``embed``, where they enter; phrases
  after ``block_0``; sentence types, a property of the whole sequence, barely per position.

Steering during generation.
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
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from identi import data as data_lib
from identi import hooks, io, plots, steer
from identi.errors import ConfigError, DataError
from identi.experiments import capture as capture_lib
from identi.experiments import graph as graph_lib
from identi.experiments.saes import add_training_sections, level_slices, train_saes
from identi.experiments.steer import STEERING_FILE
from identi.metrics import mcc
from identi.subjects import transformer
from identi.subjects.base import register_subject
from identi.subjects.grammar import Grammar, make_grammar, parse, sample_grammar, to_text
from identi.subjects.grammar_training import (export_lm_subject, grammar_config, load_lm_subject,
                                              train_lm_subject)
from identi.train import config as config_lib

SHIPPED_LM_SUBJECT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets",
                                  "grammar_lm.bin")
MODES = ("phrase", "parts", "flat")
EXAMPLES = 3  # Before/after text examples per mode in steering.json.


def default_config() -> ml_collections.ConfigDict:
  """The schema of `grammar` experiment configs, with defaults (configs/grammar_concepts.py)."""
  c = ml_collections.ConfigDict()
  c.subject = ml_collections.ConfigDict({"kind": "grammar", "checkpoint": ""})  # '' = shipped.
  c.capture = ml_collections.ConfigDict({
      "layers": ("embed", "block_0", "block_1"), "num_samples": 8192, "batch_size": 512,
      "temperature": 1.0, "seed": 0})
  # num_eval: rows the SAEs hold out of their training sequences; num_test: held-out sequences.
  c.data = ml_collections.ConfigDict({"num_eval": 4096, "num_test": 1024, "split_seed": 0})
  add_training_sections(c)
  c.sae.kind = "batchtopk"
  c.train.num_steps = 3000
  c.sae_width = 2.0  # d_sae = sae_width * (concepts of all levels).
  c.k_factor = 1.5  # k = ceil(k_factor * mean active concepts per position).
  c.graph = graph_lib.graph_schema()
  c.graph.codes = "encoder"
  c.graph.level_layers = (0, 1, 2)
  c.graph.rel_threshold = 0.5
  # samples_per_mode generations per mode, spread over the phrases, from a pool of `pool`
  # unedited ones; raised units get strength * their `percentile` active code; flat_layer indexes
  # capture.layers.
  c.steer = ml_collections.ConfigDict({
      "samples_per_mode": 500, "pool": 2048, "batch_size": 256, "percentile": 90.0,
      "strength": 1.0, "flat_layer": 2, "seed": 1})
  return c


def variant(config: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
  """Applies a `:variant`: '' (full) or 'smoke' (a few hundred sequences, for tests)."""
  if not config_lib.check_variant(arg):
    return config
  config_lib.shrink_training(config)
  config.capture.num_samples = 256
  config.capture.batch_size = 128
  config.data.num_eval = 256
  config.data.num_test = 64
  config.graph.min_support = 2
  config.steer.samples_per_mode = 12
  config.steer.pool = 64
  config.steer.batch_size = 32
  return config


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the key for unknown keys, wrong types and impossible values."""
  config_lib.check_keys(config, default_config())
  c = config.capture
  layers = tuple(c.layers)
  if not layers or len(set(layers)) != len(layers):
    raise ConfigError(f"config key 'capture.layers' is {layers}; name distinct module paths of "
                      "the transformer, e.g. ('block_0', 'block_1')")
  for name in ("num_samples", "batch_size"):
    if not c[name] > 0:
      raise ConfigError(f"config key 'capture.{name}' is {c[name]!r}; it must be > 0")
  if not c.temperature >= 0:
    raise ConfigError(f"config key 'capture.temperature' is {c.temperature!r}; use a value >= 0 "
                      "(1 samples the model's own distribution)")
  if not 0 < config.data.num_test < c.num_samples:
    raise ConfigError(f"config key 'data.num_test' is {config.data.num_test}; hold out between 1 "
                      f"and capture.num_samples - 1 = {c.num_samples - 1} sequences")
  if not config.data.num_eval > 0:
    raise ConfigError(f"config key 'data.num_eval' is {config.data.num_eval}; the SAEs need > 0 "
                      "held-out rows")
  g = config.graph
  graph_lib.validate_graph_section(g)
  for name, idx in (("graph.level_layers", tuple(g.level_layers)),
                    ("steer.flat_layer", (config.steer.flat_layer,))):
    if not idx or not all(0 <= i < len(layers) for i in idx):
      raise ConfigError(f"config key '{name}' is {idx}; entries index capture.layers "
                        f"(0..{len(layers) - 1})")
  s = config.steer
  for name in ("samples_per_mode", "pool", "batch_size", "strength"):
    if not s[name] > 0:
      raise ConfigError(f"config key 'steer.{name}' is {s[name]!r}; it must be > 0")
  if not 0 <= s.percentile <= 100:
    raise ConfigError(f"config key 'steer.percentile' is {s.percentile!r}; use a percentile in "
                      "[0, 100], e.g. 90")
  for name in ("sae_width", "k_factor"):
    if not config[name] > 0:
      raise ConfigError(f"config key '{name}' is {config[name]!r}; it must be > 0")


@functools.partial(jax.jit, static_argnames=("model", "layers", "num_samples", "temperature"))
def sample_and_capture(model, params, key, *, layers, num_samples, temperature):
  """Samples sequences, then reads each layer's output on them in one forward pass."""
  tokens = transformer.sample(key, lambda t: model.apply({"params": params}, t), num_samples,
                              model.seq_len, temperature)
  _, acts = hooks.capture(model.apply, {"params": params}, tokens, paths=layers)
  return tokens, tuple(acts[l] for l in layers)


def kept_positions(tokens: np.ndarray) -> np.ndarray:
  """bool (n, T): positions from BOS up to and including the first EOS (all without an EOS)."""
  eos = tokens == transformer.EOS
  end = np.where(eos.any(axis=1), eos.argmax(axis=1), tokens.shape[1] - 1)
  return np.arange(tokens.shape[1]) <= end[:, None]


def position_latents(grammar: Grammar, parsed: dict, keep: np.ndarray) -> np.ndarray:
  """float32 (rows, sum of level sizes) latents of the kept positions (module docstring)."""
  sizes = grammar.config.level_sizes
  seq_id, pos = np.nonzero(keep)
  parts = []
  for l, key in enumerate(("position_word", "position_phrase")):
    idx = parsed[key][seq_id, pos]
    onehot = np.zeros((idx.size, sizes[l]), np.float32)
    onehot[np.flatnonzero(idx >= 0), idx[idx >= 0]] = 1.0
    parts.append(onehot)
  parts += [a[seq_id].astype(np.float32) for a in parsed["a"][2:]]
  return np.concatenate(parts, axis=1)


def split_rows(config, labels) -> tuple[np.ndarray, np.ndarray]:
  """(train rows, test rows): the positions of the sequences kept for the SAEs and of the
  ``data.num_test`` held-out ones, each in increasing order."""
  n = labels["tokens"].shape[0]
  test = np.random.default_rng(config.data.split_seed).permutation(n)[:config.data.num_test]
  is_test = np.isin(labels["seq_id"], test)
  return np.flatnonzero(~is_test), np.flatnonzero(is_test)


@functools.partial(jax.jit, static_argnames=("model", "saes", "layers", "temperature"))
def steered_generate(params, sae_vars, keys, masks, values, *, model, saes, layers, temperature):
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


def score_edit(before: dict, after: dict, targets: np.ndarray) -> dict[str, np.ndarray]:
  """Per-generation success, coherence and preservation of phrase edits (module docstring)."""
  rows = np.arange(len(targets))
  others = np.ones(before["a"][1].shape, bool)
  others[rows, targets] = False
  same = (before["a"][1] == after["a"][1]) & others
  return {"success": after["a"][1][rows, targets], "coherence": after["grammatical"],
          "preservation": same.sum(1) / others.sum(1)}


class Steerer:
  """Everything a steered generation needs: subject, SAEs, target units and code values."""

  def __init__(self, subject: "GrammarLM", workdir: str):
    config = subject.config
    self.config = config
    self.model, self.params, self.grammar = subject.model, subject.params, subject.grammar
    saes, test = subject.train_saes(workdir)
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
    graph = graph_lib.load_graph(workdir)
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
      tokens = steered_generate(self.params, self.sae_vars, keys,
                         [jnp.asarray(m[lo:lo + size][pad]) for m in masks],
                         [jnp.asarray(v) for v in self.value], model=self.model, saes=self.saes,
                         layers=self.layers, temperature=float(c.capture.temperature))
      out.append(np.asarray(tokens)[:len(idx)])
    return np.concatenate(out)


@register_subject("grammar")
class GrammarLM:
  """The `grammar` subject (module docstring): the transformer, its world, and its pipeline."""

  kind = "grammar"
  default_config = staticmethod(default_config)
  variant = staticmethod(variant)
  validate_config = staticmethod(validate_config)
  # Training the subject itself (`identi.bin.train_subject`, configs/grammar_lm.py).
  train = staticmethod(train_lm_subject)
  export = staticmethod(export_lm_subject)
  TRAINING_COLUMNS = ("step", "num_params", "grammatical_rate", "world_grammatical_rate",
                      "loss_train", "export_mb")

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.model, self.params, subject_config = load_lm_subject(
        config.subject.checkpoint or SHIPPED_LM_SUBJECT)
    names = transformer.block_names(self.model)
    for layer in config.capture.layers:
      if layer not in names:
        raise ConfigError(f"config key 'capture.layers' names {layer!r}, which this "
                          f"{self.model.num_layers}-block transformer lacks; use some of {names}")
    self.grammar: Grammar = make_grammar(grammar_config(subject_config))

  # World.
  @property
  def level_sizes(self) -> tuple[int, ...]:
    return tuple(self.grammar.config.level_sizes)

  @property
  def adjacency(self) -> list[np.ndarray]:
    return [np.asarray(a) for a in self.grammar.hsm.adjacency]

  def sample(self, key: jax.Array, n: int) -> dict[str, Any]:
    """n sentences of the world: ``{"obs": tokens, "a", "z"}``."""
    s = sample_grammar(key, self.grammar, n)
    return {"obs": s["tokens"], "a": s["a"], "z": s["z"]}

  def read(self, obs) -> dict[str, Any]:
    """What the grammar's parser reads from token sequences (presence per level and more)."""
    return parse(self.grammar, obs)

  # Model.
  @property
  def sites(self) -> tuple[str, ...]:
    return tuple(transformer.block_names(self.model))

  def capture(self, inputs, sites: tuple[str, ...]) -> dict[str, Any]:
    """The residual stream at `sites` on token sequences `inputs`."""
    return hooks.capture(self.model.apply, {"params": self.params}, inputs,
                         paths=tuple(sites))[1]

  def patch(self, inputs, edits) -> jax.Array:
    """Logits on token sequences `inputs` with ``edits[layer]`` applied."""
    return hooks.patch(self.model.apply, {"params": self.params}, inputs, edits=edits)

  def generate(self, key: jax.Array, n: int, edits=None) -> jax.Array:
    """n sampled sequences (``capture.temperature``), with `edits` applied at every position."""
    logits_fn = ((lambda t: self.patch(t, edits)) if edits else
                 (lambda t: self.model.apply({"params": self.params}, t)))
    return transformer.sample(key, logits_fn, n, self.model.seq_len,
                              float(self.config.capture.temperature))

  # Pipeline.
  def run_capture(self, workdir: str) -> dict[str, Any]:
    """Samples the sequences and writes activation shards and labels (skipped if present)."""
    config = self.config
    c = config.capture
    layers = tuple(c.layers)
    if not os.path.exists(capture_lib.labels_path(workdir)):
      key = jax.random.key(c.seed)
      tokens, acts = [], [[] for _ in layers]
      num_batches = -(-c.num_samples // c.batch_size)
      progress = capture_lib.Progress(c.num_samples, "sequences")
      for b in range(num_batches):
        n = min(c.batch_size, c.num_samples - b * c.batch_size)
        t, a = sample_and_capture(self.model, self.params, jax.random.fold_in(key, b),
                                  layers=layers, num_samples=n,
                                  temperature=float(c.temperature))
        t = np.asarray(t)
        keep = kept_positions(t)
        tokens.append(t)
        for i in range(len(layers)):
          acts[i].append(np.asarray(a[i])[keep])
        progress.update(b * c.batch_size + n)
      tokens = np.concatenate(tokens)
      keep = kept_positions(tokens)
      parsed = parse(self.grammar, tokens)
      z = position_latents(self.grammar, parsed, keep)
      seq_id, position = np.nonzero(keep)
      capture_lib.write_capture(
          workdir, {layer: np.concatenate(acts[i]) for i, layer in enumerate(layers)}, z,
          dict(seq_id=seq_id.astype(np.int32), position=position.astype(np.int32),
               tokens=tokens, grammatical=parsed["grammatical"],
               **{f"a{l + 1}": a for l, a in enumerate(parsed["a"])}))
    labels = self.labels(workdir)
    source = data_lib.open_source(os.path.join(capture_lib.capture_dir(workdir), layers[0]))
    z = source.latents(np.arange(source.num_examples))
    return {"sequences": int(labels["tokens"].shape[0]), "rows": int(source.num_examples),
            "dim": int(source.dim), "layers": list(layers),
            "grammatical": float(labels["grammatical"].mean()),
            "active_per_level": [float(a.sum(1).mean()) for a in labels["a"]],
            "active_per_position": float((z > 0).sum(1).mean())}

  def labels(self, workdir: str) -> dict[str, Any]:
    """The labels of a capture: seq_id, position, tokens, grammatical, and 'a' per level."""
    raw = capture_lib.read_labels(workdir, "--config=configs/grammar_concepts.py")
    if "seq_id" not in raw:
      raise DataError(f"{capture_lib.labels_path(workdir)} is not a grammar capture; "
                                  "capture into a fresh --workdir")
    out = {k: raw[k] for k in ("seq_id", "position", "tokens", "grammatical")}
    out["a"] = capture_lib.levels_of(raw)
    return out

  def train_saes(self, workdir: str) -> tuple[list[tuple[Any, Any]], dict[str, Any]]:
    """Trains (or resumes) one SAE per layer on the training sequences; returns [(model,
    variables)] per layer and the test data: per-layer activations 'x', latents 'z', 'seq_id'."""
    config = self.config
    labels = self.labels(workdir)
    train_rows, test_rows = split_rows(config, labels)
    layers = list(config.capture.layers)
    cdir = capture_lib.capture_dir(workdir)
    sources = [data_lib.open_source(os.path.join(cdir, l)) for l in layers]
    z = sources[0].latents(test_rows)
    active = float((sources[0].latents(train_rows) > 0).sum(1).mean())
    num_concepts = sum(a.shape[1] for a in labels["a"])
    saes = train_saes(config, cdir, workdir, layers, num_concepts, active, rows=train_rows)
    test = {"x": [s.get(test_rows) for s in sources], "z": z,
            "seq_id": labels["seq_id"][test_rows]}
    return [(m, v) for m, v, _ in saes], test

  def run_graph(self, workdir: str) -> dict[str, Any]:
    """Captures (or reuses), trains the layer SAEs, scores the MCC table and the graph."""
    config = self.config
    capture = self.run_capture(workdir)
    saes, test = self.train_saes(workdir)
    layers = list(config.capture.layers)
    sizes = list(self.level_sizes)
    level_layers = list(config.graph.level_layers)[:len(sizes)]
    if len(level_layers) < len(sizes):
      raise ConfigError(f"config key 'graph.level_layers' is {tuple(config.graph.level_layers)}; "
                        f"give one layer index per level ({len(sizes)} levels)")
    data = [(m, v, x, test["z"]) for (m, v), x in zip(saes, test["x"])]
    sites = graph_lib.site_codes(config, data, "layer", layers, groups=test["seq_id"])
    result, blocks, matches, present = graph_lib.site_graph(config, sites, level_layers, sizes,
                                                            self.adjacency, workdir)
    result = {"capture": capture, **result, "test_sequences": int(present[0].shape[0]),
              "test_rows": int(test["z"].shape[0])}
    io.write_json(os.path.join(workdir, graph_lib.GRAPH_FILE), result)
    result["figures"] = graph_lib.graph_figures(blocks, matches, self.adjacency, result["table"],
                                                len(sizes), workdir, "layer", "layer_mcc")
    return result

  def run_steering(self, workdir: str) -> dict[str, Any]:
    """Every mode over about steer.samples_per_mode generations; writes steering.json."""
    config = self.config
    self.run_capture(workdir)
    st = Steerer(self, workdir)
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
    scores = score_edit(before, after, targets)
    results, examples = [], {}
    for mode in MODES:
      sel = modes == mode
      units = [int(sum(m.sum() for m in plans[mode, t])) for t in range(n_phrases)
               if (mode, t) in plans]
      results.append({"mode": mode, "samples": int(sel.sum()),
                      **{k: float(v[sel].mean()) if sel.any() else 0.0
                         for k, v in scores.items()},
                      "units_per_edit": float(np.mean(units)) if units else 0.0})
      first = np.flatnonzero(sel)[:EXAMPLES]
      examples[mode] = [{"target": int(targets[i]),
                         "before": to_text(st.grammar, base_tokens[rows[i]]),
                         "after": to_text(st.grammar, tokens[i])} for i in first]
    result = {"rows": results, "examples": examples, "pool": int(c.pool),
              "unedited_grammatical": float(base["grammatical"].mean()),
              "level_layers": [st.layers[i] for i in st.level_layers],
              "flat_layer": st.layers[c.flat_layer], "percentile": float(c.percentile),
              "strength": float(c.strength)}
    io.write_json(os.path.join(workdir, STEERING_FILE), result)
    result["figure"] = plots.mode_bars(results, os.path.join(workdir, "steering"))[0]
    return result

  @staticmethod
  def tables(stage: str, result: dict[str, Any]) -> list[tuple[list[dict], list[str]]]:
    """The rows and columns a binary prints for a stage's result."""
    if stage == "capture":
      row = dict(result, layers=",".join(result["layers"]),
                 active_per_level=",".join(f"{a:.2f}" for a in result["active_per_level"]))
      return [([row], ["sequences", "rows", "dim", "layers", "grammatical", "active_per_level",
                       "active_per_position"])]
    if stage == "graph":
      levels = len(result["level_layers"])
      rows = [dict(r, levels=f"{r['levels'][0]}->{r['levels'][1]}", layers="->".join(r["layers"]))
              for r in result["pairs"]]
      return [(result["table"], ["layer", "units"] + [f"level_{l + 1}" for l in range(levels)]),
              (rows, ["levels", "layers", "precision", "recall", "f1", "shd", "auroc",
                      "learned_edges", "true_edges"])]
    return [(result["rows"], ["mode", "samples", "success", "coherence", "preservation",
                              "units_per_edit"])]
