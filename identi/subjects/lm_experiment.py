"""The identify-graph-steer pipeline on the transformer subject of the grammar world (issue 7).

1. `capture_lm_subject(config, workdir)`: ``capture.num_samples`` sequences sampled from the
   subject at ``capture.temperature`` (jitted, `identi.subjects.transformer.sample`), then one
   forward pass on the finished sequences reads the residual stream after each of
   ``capture.layers`` with `identi.hooks.capture` (for a causal model this equals reading it while
   sampling). Writes one `identi.data` shard directory per layer (``capture/<layer>``) and
   ``capture/labels.npz``.
2. `run_lm_graph(config, workdir)`: one SAE per layer, the layer x level MCC table and the concept
   graph words -> phrases -> sentence types, scored against the grammar's true graph. Writes
   ``graph.json``, ``layer_mcc.png`` and ``concept_graph.png``.
3. Steering during generation: `identi.subjects.lm_steering`.

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
"""

from __future__ import annotations

import functools
import logging
import os
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from identi import data as data_lib
from identi import hooks, io
from identi.concepts.graph import presence
from identi.errors import ConfigError, DataError
from identi.metrics import mcc
from identi.subjects import transformer
from identi.subjects.experiment import (CAPTURE_DIR, GRAPH_FILE, LABELS_FILE, edge_list,
                                        learn_graph, level_slices, mcc_heatmap, sae_codes,
                                        score_pairs, train_saes, validate_graph_section)
from identi.subjects.grammar import Grammar, make_grammar, parse
from identi.subjects.lm_training import grammar_config, load_lm_subject
from identi.train import config as config_lib

SHIPPED_LM_SUBJECT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets",
                                  "grammar_lm.bin")
logger = logging.getLogger(__name__)


def default_lm_experiment_config() -> ml_collections.ConfigDict:
  """The schema of LM-experiment configs, with defaults (configs/grammar_concepts.py)."""
  c = ml_collections.ConfigDict()
  c.subject = ml_collections.ConfigDict({"checkpoint": ""})  # '' = the shipped grammar_lm.bin.
  c.capture = ml_collections.ConfigDict({
      "layers": ("embed", "block_0", "block_1"), "num_samples": 8192, "batch_size": 512,
      "temperature": 1.0, "seed": 0})
  # num_eval: rows the SAEs hold out of their training sequences; num_test: held-out sequences.
  c.data = ml_collections.ConfigDict({"num_eval": 4096, "num_test": 1024, "split_seed": 0})
  schema = config_lib.default_config()
  for section in ("sae", "train", "checkpoint", "eval"):
    c[section] = schema[section]
  c.sae.kind = "batchtopk"
  c.train.num_steps = 3000
  c.sae_width = 2.0  # d_sae = sae_width * (concepts of all levels).
  c.k_factor = 1.5  # k = ceil(k_factor * mean active concepts per position).
  c.graph = ml_collections.ConfigDict({
      "codes": "encoder", "level_layers": (0, 1, 2), "rel_threshold": 0.5, "rule": "threshold",
      "score": "contrast", "necessity": 0.5, "precision": 0.9, "max_parents": 6, "min_support": 5})
  # samples_per_mode generations per mode, spread over the phrases, from a pool of `pool`
  # unedited ones; raised units get strength * their `percentile` active code; flat_layer indexes
  # capture.layers.
  c.steer = ml_collections.ConfigDict({
      "samples_per_mode": 500, "pool": 2048, "batch_size": 256, "percentile": 90.0,
      "strength": 1.0, "flat_layer": 2, "seed": 1})
  return c


def lm_experiment_variant(config: ml_collections.ConfigDict,
                          arg: str | None) -> ml_collections.ConfigDict:
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


def is_lm_experiment_config(config: ml_collections.ConfigDict) -> bool:
  """Whether `config` is an LM-experiment config (it names transformer layers to capture)."""
  return "capture" in config and "layers" in config.capture


def validate_lm_experiment_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the key for unknown keys, wrong types and impossible values."""
  config_lib.check_keys(config, default_lm_experiment_config())
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
  validate_graph_section(g)
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


def lm_subject_path(config: ml_collections.ConfigDict) -> str:
  return config.subject.checkpoint or SHIPPED_LM_SUBJECT


def load_lm_world(config: ml_collections.ConfigDict
                  ) -> tuple[transformer.Transformer, Any, Grammar]:
  """The subject `(model, params, grammar)` of an LM-experiment config; ConfigError for a layer
  the model does not have."""
  model, params, subject_config = load_lm_subject(lm_subject_path(config))
  names = transformer.block_names(model)
  for layer in config.capture.layers:
    if layer not in names:
      raise ConfigError(f"config key 'capture.layers' names {layer!r}, which this "
                        f"{model.num_layers}-block transformer lacks; use some of {names}")
  return model, params, make_grammar(grammar_config(subject_config))


@functools.partial(jax.jit, static_argnames=("model", "layers", "num_samples", "temperature"))
def _sample_and_capture(model, params, key, *, layers, num_samples, temperature):
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


def capture_lm_subject(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Samples the sequences and writes activation shards and labels (skipped if present)."""
  validate_lm_experiment_config(config)
  out_dir = os.path.join(os.path.abspath(workdir), CAPTURE_DIR)
  labels_path = os.path.join(out_dir, LABELS_FILE)
  if os.path.exists(labels_path):
    return _capture_summary(config, workdir)
  c = config.capture
  layers = tuple(c.layers)
  model, params, grammar = load_lm_world(config)
  key = jax.random.key(c.seed)
  tokens, acts = [], [[] for _ in layers]
  num_batches = -(-c.num_samples // c.batch_size)
  start = time.perf_counter()
  for b in range(num_batches):
    n = min(c.batch_size, c.num_samples - b * c.batch_size)
    t, a = _sample_and_capture(model, params, jax.random.fold_in(key, b), layers=layers,
                               num_samples=n, temperature=float(c.temperature))
    t = np.asarray(t)
    keep = kept_positions(t)
    tokens.append(t)
    for i in range(len(layers)):
      acts[i].append(np.asarray(a[i])[keep])
    done = b * c.batch_size + n
    rate = done / (time.perf_counter() - start)
    logger.info("capture %d/%d sequences | %.1f seq/s", done, c.num_samples, rate)
  tokens = np.concatenate(tokens)
  keep = kept_positions(tokens)
  parsed = parse(grammar, tokens)
  z = position_latents(grammar, parsed, keep)
  for i, layer in enumerate(layers):
    data_lib.write_shards(os.path.join(out_dir, layer), np.concatenate(acts[i]), z=z)
  seq_id, position = np.nonzero(keep)
  np.savez(labels_path + ".tmp.npz", seq_id=seq_id.astype(np.int32),
           position=position.astype(np.int32), tokens=tokens, grammatical=parsed["grammatical"],
           **{f"a{l + 1}": a for l, a in enumerate(parsed["a"])})
  os.replace(labels_path + ".tmp.npz", labels_path)
  return _capture_summary(config, workdir)


def load_lm_labels(workdir: str) -> dict[str, Any]:
  """The labels of an LM capture: seq_id, position, tokens, grammatical, and 'a' per level."""
  path = os.path.join(os.path.abspath(workdir), CAPTURE_DIR, LABELS_FILE)
  if not os.path.exists(path):
    raise DataError(f"no captured activations at {path}; run `python -m identi.bin.capture "
                    f"--config=configs/grammar_concepts.py --workdir={workdir}` first")
  with np.load(path) as f:
    levels = sorted((k for k in f.files if k[0] == "a" and k[1:].isdigit()),
                    key=lambda k: int(k[1:]))
    out = {k: f[k] for k in ("seq_id", "position", "tokens", "grammatical")}
    out["a"] = [f[k] for k in levels]
  if "seq_id" not in out or not out["a"]:
    raise DataError(f"{path} is not an LM capture; capture into a fresh --workdir")
  return out


def _capture_summary(config, workdir) -> dict[str, Any]:
  labels = load_lm_labels(workdir)
  source = data_lib.open_source(os.path.join(workdir, CAPTURE_DIR, config.capture.layers[0]))
  z = source.latents(np.arange(source.num_examples))
  return {"sequences": int(labels["tokens"].shape[0]), "rows": int(source.num_examples),
          "dim": int(source.dim), "layers": list(config.capture.layers),
          "grammatical": float(labels["grammatical"].mean()),
          "active_per_level": [float(a.sum(1).mean()) for a in labels["a"]],
          "active_per_position": float((z > 0).sum(1).mean())}


def split_rows(config, labels) -> tuple[np.ndarray, np.ndarray]:
  """(train rows, test rows): the positions of the sequences kept for the SAEs and of the
  ``data.num_test`` held-out ones, each in increasing order."""
  n = labels["tokens"].shape[0]
  test = np.random.default_rng(config.data.split_seed).permutation(n)[:config.data.num_test]
  is_test = np.isin(labels["seq_id"], test)
  return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def train_layers(config, workdir: str) -> tuple[list[tuple[Any, Any]], dict[str, Any]]:
  """Trains (or resumes) one SAE per layer on the training sequences; returns [(model,
  variables)] per layer and the test data: per-layer activations 'x', latents 'z', 'seq_id'."""
  labels = load_lm_labels(workdir)
  train_rows, test_rows = split_rows(config, labels)
  layers = list(config.capture.layers)
  sources = [data_lib.open_source(os.path.join(workdir, CAPTURE_DIR, l)) for l in layers]
  z = sources[0].latents(test_rows)
  active = float((sources[0].latents(train_rows) > 0).sum(1).mean())
  num_concepts = sum(a.shape[1] for a in labels["a"])
  saes = train_saes(config, workdir, layers, num_concepts, active, rows=train_rows)
  test = {"x": [s.get(test_rows) for s in sources], "z": z,
          "seq_id": labels["seq_id"][test_rows]}
  return [(m, v) for m, v, _ in saes], test


def per_sequence(present: np.ndarray, seq_id: np.ndarray) -> np.ndarray:
  """bool (sequences, units): a unit is present in a sequence if present at any position."""
  _, inverse = np.unique(seq_id, return_inverse=True)
  out = np.zeros((inverse.max() + 1, present.shape[1]), bool)
  np.logical_or.at(out, inverse, present)
  return out


def run_lm_graph(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Captures (or reuses), trains the layer SAEs, scores the MCC table and the graph."""
  workdir = os.path.abspath(workdir)
  capture = capture_lm_subject(config, workdir)
  grammar = load_lm_world(config)[2]
  saes, test = train_layers(config, workdir)
  layers = list(config.capture.layers)
  sizes = list(grammar.config.level_sizes)
  slices = level_slices(sizes)
  z = test["z"]
  codes, table = [], []
  for layer, (model, variables), x in zip(layers, saes, test["x"]):
    c = sae_codes(config, model, variables, x)
    codes.append(c)
    row = {"layer": layer, "units": int(c.shape[1])}
    for l, sl in enumerate(slices):
      row[f"level_{l + 1}"] = float(mcc(z[:, sl], c).mcc)
    table.append(row)
  g = config.graph
  level_layers = list(g.level_layers)[:len(sizes)]
  if len(level_layers) < len(sizes):
    raise ConfigError(f"config key 'graph.level_layers' is {tuple(g.level_layers)}; give one "
                      f"layer index per level ({len(sizes)} levels)")
  matches = [mcc(z[:, slices[l]], codes[s]) for l, s in enumerate(level_layers)]
  present = [per_sequence(presence(codes[s], g.rel_threshold), test["seq_id"])
             for s in level_layers]
  blocks = learn_graph(present, g)
  pairs = [dict(m, layers=[layers[level_layers[l]], layers[level_layers[l + 1]]])
           for l, m in enumerate(score_pairs(blocks, matches, grammar.hsm.adjacency))]
  result = {
      "capture": capture, "table": table, "pairs": pairs,
      "level_layers": [layers[s] for s in level_layers],
      "matches": [{"level": l + 1, "mcc": float(m.mcc), "matching": m.matching.tolist(),
                   "per_concept": m.per_concept.tolist()} for l, m in enumerate(matches)],
      "edges": edge_list(blocks), "codes": g.codes,
      "test_sequences": int(present[0].shape[0]), "test_rows": int(z.shape[0]),
  }
  io.write_json(os.path.join(workdir, GRAPH_FILE), result)
  result["figures"] = [mcc_heatmap(table, len(sizes), os.path.join(workdir, "layer_mcc"),
                                   row_key="layer")[0]]
  from identi.concepts.experiment import graph_figure  # pylint: disable=g-import-not-at-top
  result["figures"].append(graph_figure(grammar.hsm.adjacency, blocks, matches,
                                        os.path.join(workdir, "concept_graph"))[0])
  return result
