"""identi's own SAE units as black boxes of the function-description benchmark, with ground truth.

Every unit of the SAE at one site of each subject (`hsm`, `scenes`, `grammar`) becomes a `unit`
black box: the agent presents a set of concept names of the subject's world (all levels: parts,
wholes, scene types, words, phrases, sentence types); the world makes one sample that shows
exactly those concepts, the subject runs on it, the site's SAE encodes its activation, and the
box answers that unit's code: the SAE encoder's (the pipeline's graph stage reads minimal codes
for `hsm` and `scenes`, an inference over the decoder whose dictionary mask is chosen from a
batch of data; the encoder's code is the unit's own activation, and answers one query
independently of any other). `unit_tasks` builds one `Task` per unit;
`score_unit` scores a description of one; `unit_summary` aggregates scores.

The site is chosen by a rule, not by a score: the site the subject's graph stage reads level 2
from (the middle level, whose concepts have both parts and parents): `hsm` the level-2 view
``view_2``; `scenes` the timestep ``graph.level_timesteps[1]`` (t = 0.2, site ``t2``); `grammar`
the layer ``capture.layers[graph.level_layers[1]]`` (``block_0``). The SAEs come from the
pipeline itself, in ``workdir/<subject>`` with the pipeline's file layout (`hsm`: its world and
``sae_l2``; `scenes`, `grammar`: ``run_capture`` then the site's SAE, ``sae_<site>``), so a rerun,
or a workdir where ``identi.bin.concept_graph`` already ran with the same config, reuses them.
The subject configs are the registered subjects' configs (``variant`` '' or 'smoke') with the
``overrides`` of `default_units_config` applied; ``workdir/<subject>/units_subject_config.json``
records the config and a different one in the same workdir is refused.

Making a sample that shows a concept set (conditional generation; deterministic given the box's
seed and the query's index, the box's count of queries before it):

- Every subject world is a hierarchical selection model whose wholes *emerge* from their parts (a
  whole is present exactly when at least ``tau`` of its parents are). A set is possible when it is
  its own closure: the level-1 concepts it names, with every whole that emerges from them, and no
  other whole. An impossible set (a whole without enough of its parts, or enough parts without
  their whole) makes no sample; the box answers 0.0 for it (and counts the query).
- Level-1 intensities are drawn from the world's intensity law and wholes take the world's
  weighted geometric mean of their parents (``z = a * m``, as the world's sampler makes them).
- `hsm`: the level-2 view of the concepts (``x = A_2 z_2``). `scenes`: the image rendered from the
  part intensities, noised to the site's time with the forward process (``x_t = sqrt(ab) x_0 +
  sqrt(1 - ab) eps``), one U-Net call, block ``capture.block`` read and flattened as the capture
  does. The pipeline's SAE was trained on DDIM trajectories instead, whose x_t a good model makes
  distributed like noised world images; the box uses the forward process because an
  unconditional model cannot be asked for given concepts. `grammar`: the sentence serialised
  from the word presence (groups in random order, as the world does), one forward pass, the layer
  read at every position from BOS to EOS and encoded per position; the box answers the unit's
  largest code over the positions (the pipeline's per-sequence presence reads any position).

Ground truth, from ``units.heldout`` natural samples of the world (the world's own sampler, with
its fragments; fixed seed ``units.seed + 1``) made and encoded through the same path: the code of
each unit against the concepts of every level (``z``; grammar: presence), split in halves as
`identi.metrics.mcc` does. A unit's concept is the one MCC matching pairs it with when it is
matched alone against all concepts (the concept of highest fit-half |corr|), and its ``mcc`` that
pair's score-half |corr|; ``sign`` says whether the code rises (+1) or falls (-1) with the
concept. Below ``units.mcc_threshold`` (0.5) the unit's concept is 'none' (polysemantic or dead).
Why not the one-to-one matching of all units at once: an SAE with twice as many units as
concepts has duplicate units, and the one-to-one matching pairs the second unit of a concept with
some other, weakly correlated concept; ``info['assigned_concept']`` records that matching too.

Descriptions name concepts in their text: ``concept: part_3``, ``concept: NOT scene_0`` (the
unit fires when the concept is absent), ``concept: part_3 AND part_4``, ``concept: phrase_1
(fragments included ...)`` (the code says how far) or ``concept: none``.
`score_unit` reads the names of the world's concepts in the text.
"""

from __future__ import annotations

import abc
import functools
import itertools
import json
import math
import os
import re
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from identi import data as data_lib
from identi import hooks
from identi.errors import ConfigError, DataError
from identi.experiments import capture as capture_lib
from identi.experiments import saes as saes_lib
from identi.find.protocol import CountedBox, Description, Task, compile_description
from identi.generators.hsm import LOGNORMAL_SIGMA
from identi.generators.hsm_sampler import sample_hsm
from identi.metrics import correlation_matrix, mcc
from identi.subjects import diffusion, get_subject, hsm_views
from identi.subjects.base import load_subject_for
from identi.subjects.grammar import serialise
from identi.subjects.grammar_lm import kept_positions, split_rows
from identi.subjects.hsm_views import view_latents
from identi.subjects.scenes import render
from identi.subjects.scenes_unet import reduce_block, step_indices
from identi.train import load_trained, train_and_evaluate

SUBJECTS = ("hsm", "scenes", "grammar")
LEVEL_NAMES = {"hsm": ("part", "whole", "group"), "scenes": ("part", "object", "scene"),
               "grammar": ("word", "phrase", "sentence")}
CONFIG_RECORD = "units_subject_config.json"
NONE = "none"


def default_units_config() -> ml_collections.ConfigDict:
  """The 'units' section of the benchmark config: which subjects, at what size, how scored.

  Sizes are chosen so that obtaining the three SAEs and running both agents on every unit takes
  a few minutes on a 2-core CPU: `hsm` at its full size (the default 3-level world, 48 units at
  ``view_2``); `scenes` with 2,048 DDIM trajectories of 20 steps and a 1,500-step SAE of batch
  512 (the experiment: 16,384 trajectories of 50 steps, 3,000 steps of batch 2,048); `grammar`
  with 4,096 sequences and a 1,500-step SAE (the experiment: 8,192 and 3,000).
  """
  c = ml_collections.ConfigDict()
  c.enabled = True
  c.subjects = SUBJECTS
  c.mcc_threshold = 0.5  # A unit whose matched |corr| is below this has concept 'none'.
  c.high_mcc = 0.9  # Reports split units at this MCC.
  c.query_budget = 120  # Concept sets an agent may present per unit.
  c.heldout = 1024  # Natural samples for the ground truth and the F1.
  c.batch_size = 256  # Samples per forward pass of a subject.
  c.seed = 0  # Box seed; held-out samples use seed + 1.
  c.hsm = ml_collections.ConfigDict({"variant": "", "site": "", "overrides": {}})
  c.scenes = ml_collections.ConfigDict({
      "variant": "", "site": "",
      "overrides": {"capture": {"num_samples": 2048, "num_steps": 20, "batch_size": 256},
                    "data": {"num_eval": 512},
                    "train": {"num_steps": 1500, "batch_size": 512}}})
  c.grammar = ml_collections.ConfigDict({
      "variant": "", "site": "",
      "overrides": {"capture": {"num_samples": 4096},
                    "data": {"num_test": 512, "num_eval": 2048},
                    "train": {"num_steps": 1500}}})
  return c


def units_smoke_config() -> ml_collections.ConfigDict:
  """Seconds on CPU, for tests: the `hsm` smoke world only, a small budget and held-out set."""
  c = default_units_config()
  c.subjects = ("hsm",)
  c.query_budget = 60
  c.heldout = 512
  c.hsm.variant = "smoke"
  c.hsm.overrides = ml_collections.ConfigDict({"train": {"num_steps": 300}})
  return c


def validate_units_config(c: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the key for unknown subjects and impossible values."""
  subjects = tuple(c.subjects)
  unknown = sorted(set(subjects) - set(SUBJECTS))
  if unknown or not subjects:
    raise ConfigError(f"config key 'units.subjects' is {subjects}; use some of "
                      f"{', '.join(SUBJECTS)}")
  if not 0.0 <= c.mcc_threshold <= 1.0 or not 0.0 <= c.high_mcc <= 1.0:
    raise ConfigError(f"config keys 'units.mcc_threshold' ({c.mcc_threshold}) and "
                      f"'units.high_mcc' ({c.high_mcc}) are correlations; use values in [0, 1]")
  for name, low in (("query_budget", 1), ("heldout", 64), ("batch_size", 1)):
    if not c[name] >= low:
      raise ConfigError(f"config key 'units.{name}' is {c[name]!r}; use an integer >= {low}")


# The world as an agent may know it.


def emerge(a1: np.ndarray, adjacency: Sequence[np.ndarray], tau: Sequence[np.ndarray],
           log_m1: np.ndarray | None = None, weights: Sequence[np.ndarray] = ()):
  """Presence of every level from level-1 bits by the world's tau rule; with ``log_m1`` also the
  intensities (weighted geometric means of the parents) and ``z = a * m``."""
  a = [np.asarray(a1, bool)]
  for adj, t in zip(adjacency, tau):
    a.append(a[-1].astype(np.int32) @ np.asarray(adj, np.int32) >= np.asarray(t))
  if log_m1 is None:
    return a
  log_m = [np.asarray(log_m1, np.float64)]
  for w in weights:
    log_m.append(log_m[-1] @ np.asarray(w, np.float64))
  z = [np.where(x, np.exp(y), 0.0).astype(np.float32) for x, y in zip(a, log_m)]
  return a, z


class UnitWorld:
  """What an agent may know of a unit box's world: the concept names (``<level name>_<index>``),
  each concept's level and parts, the emergence rule (`closure`), and natural concept sets
  (`natural_sets`, the world's own sampler). Which concept drives a unit it must find out."""

  def __init__(self, subject: str, hsm):
    self.subject = subject
    self.hsm = hsm
    self.level_sizes = tuple(int(n) for n in hsm.level_sizes)
    self.adjacency = [np.asarray(a, bool) for a in hsm.adjacency]
    self.tau = [np.asarray(t) for t in hsm.tau]
    labels = LEVEL_NAMES[subject]
    self.level_labels = tuple(labels[l] if l < len(labels) else f"level{l + 1}"
                              for l in range(len(self.level_sizes)))
    self.names = tuple(f"{self.level_labels[l]}_{i}" for l, n in enumerate(self.level_sizes)
                       for i in range(n))
    self.index = {name: i for i, name in enumerate(self.names)}
    self.offsets = np.cumsum([0, *self.level_sizes])
    self._pools: dict[tuple[int, int], list[frozenset]] = {}

  def locate(self, name: str) -> tuple[int, int]:
    """(level, index in level), levels 0-based, of concept `name`."""
    if name not in self.index:
      raise ConfigError(f"{name!r} is not a concept of the {self.subject} world; use one of "
                        f"its names, e.g. {self.names[0]!r} or {self.names[-1]!r}")
    g = self.index[name]
    level = int(np.searchsorted(self.offsets, g, side="right") - 1)
    return level, g - int(self.offsets[level])

  def level(self, name: str) -> int:
    return self.locate(name)[0]

  def parts(self, name: str) -> tuple[str, ...]:
    """The concepts one level down that `name` emerges from (empty for level 1)."""
    level, i = self.locate(name)
    if level == 0:
      return ()
    rows = np.flatnonzero(self.adjacency[level - 1][:, i])
    return tuple(self.names[int(self.offsets[level - 1]) + int(r)] for r in rows)

  def needs(self, name: str) -> int:
    """How many of its parts make `name` emerge (1 for level 1)."""
    level, i = self.locate(name)
    return 1 if level == 0 else int(self.tau[level - 1][i])

  def leaves(self, name: str) -> tuple[str, ...]:
    """The level-1 concepts below `name` (itself for level 1)."""
    if self.level(name) == 0:
      return (name,)
    return tuple(leaf for part in self.parts(name) for leaf in self.leaves(part))

  def bits(self, concepts: Sequence[frozenset]) -> list[np.ndarray]:
    """Presence per level (bool ``(n, n_l)``) of concept sets, as named (no closure)."""
    out = [np.zeros((len(concepts), n), bool) for n in self.level_sizes]
    for r, s in enumerate(concepts):
      for name in s:
        level, i = self.locate(name)
        out[level][r, i] = True
    return out

  def sets_of(self, a: Sequence[np.ndarray]) -> list[frozenset]:
    """Concept sets of presence bits per level."""
    flat = np.concatenate([np.asarray(x, bool) for x in a], axis=1)
    return [frozenset(self.names[j] for j in np.flatnonzero(row)) for row in flat]

  def closure(self, concepts) -> frozenset:
    """The possible set its level-1 concepts make: them and every whole that emerges."""
    a1 = self.bits([frozenset(c for c in concepts if self.level(c) == 0)])[0]
    return self.sets_of(emerge(a1, self.adjacency, self.tau))[0]

  def possible(self, concepts) -> bool:
    return frozenset(concepts) == self.closure(concepts)

  def minimal(self, name: str) -> frozenset:
    """The smallest possible set showing `name`: it, built from its first ``tau`` parts."""
    if self.level(name) == 0:
      return frozenset([name])
    chosen = self.parts(name)[:self.needs(name)]
    return self.closure(frozenset().union(*(self.minimal(p) for p in chosen)))

  def without(self, concepts, name: str) -> frozenset:
    """The possible set left when `name` and the level-1 concepts below it are taken away."""
    drop = set(self.leaves(name))
    return self.closure(c for c in concepts if self.level(c) == 0 and c not in drop)

  def natural_sets(self, n: int, seed: int) -> list[frozenset]:
    """n concept sets drawn from the world's own distribution (with its fragments): the first n
    of a pool per seed (pools of a power of two, so that the sampler compiles few shapes)."""
    size = max(1024, 1 << max(0, (int(n) - 1).bit_length()))
    if (seed, size) not in self._pools:
      a = sample_hsm(jax.random.key(seed), self.hsm, size)["a"]
      self._pools[(seed, size)] = self.sets_of(a)
    return self._pools[(seed, size)][:int(n)]


class UnitBox(CountedBox):
  """A `CountedBox` of kind 'unit' over one SAE unit; ``world`` is the box's `UnitWorld`."""

  def __init__(self, name: str, respond: Callable[[list, int], np.ndarray], budget: int,
               world: UnitWorld):
    self.world = world
    self._respond = respond
    super().__init__(name, "unit", self._answer, budget, vocabulary=world.names)

  def _answer(self, sets: list) -> np.ndarray:
    return self._respond(sets, self.queries_used - len(sets))


# Subjects run on concept sets.


def _rng(seed: int, stream: int, index: int) -> np.random.Generator:
  return np.random.default_rng([int(seed), int(stream), int(index)])


def _log_m1(rng: np.random.Generator, n: int, magnitude: str) -> np.ndarray:
  if magnitude == "lognormal":
    return LOGNORMAL_SIGMA * rng.standard_normal(n)
  return np.log(0.5 + rng.random(n))


def _buckets(n: int, size: int) -> list[tuple[int, int, int]]:
  """(start, stop, padded size) chunks of n rows, padded to powers of two (few jit shapes)."""
  out = []
  for lo in range(0, n, size):
    m = min(size, n - lo)
    out.append((lo, lo + m, min(size, 1 << max(0, (m - 1).bit_length()))))
  return out


class UnitEngine(abc.ABC):
  """One subject at one site: makes samples of concept sets, runs the subject, encodes with the
  site's SAE. Codes are cached by (concept set, query index), which fix the sample."""

  def __init__(self, subject: str, world: UnitWorld, site: str, model, variables, seed: int,
               batch_size: int):
    self.subject, self.world, self.site = subject, world, site
    self.sae, self.variables = model, jax.tree.map(jnp.asarray, variables)
    self.seed, self.batch_size = int(seed), int(batch_size)
    self.encode = jax.jit(functools.partial(model.apply, method="encode"))
    self.cache: dict[tuple[frozenset, int], np.ndarray] = {}
    self.num_units = int(model.d_sae)
    self.magnitude = world.hsm.config.magnitude

  @abc.abstractmethod
  def observe(self, a: list[np.ndarray], z: list[np.ndarray], rngs) -> np.ndarray:
    """The SAE's codes of the samples with concept presence `a` and intensities `z` per level
    (subject-specific)."""

  def make(self, a1: np.ndarray, rngs) -> tuple[np.ndarray, np.ndarray]:
    """Codes ``(n, units)`` and concepts ``z`` ``(n, all concepts)`` of samples with level-1
    presence `a1`, intensities and noise from `rngs` (one generator per sample)."""
    log_m1 = np.stack([_log_m1(r, a1.shape[1], self.magnitude) for r in rngs])
    a, z = emerge(a1, self.world.adjacency, self.world.tau, log_m1, self.world.hsm.weights)
    codes = []
    for lo, hi, _ in _buckets(len(rngs), self.batch_size):
      codes.append(self.observe([x[lo:hi] for x in a], [x[lo:hi] for x in z], rngs[lo:hi]))
    return np.concatenate(codes), np.concatenate(z, axis=1)

  def _encode(self, rows: np.ndarray) -> np.ndarray:
    n = rows.shape[0]
    size = 1 << max(0, (n - 1).bit_length())
    pad = np.zeros((size - n, rows.shape[1]), np.float32)
    out = self.encode(self.variables, jnp.asarray(np.concatenate([rows, pad]), jnp.float32))
    return np.asarray(out)[:n]

  def respond(self, sets: list, start: int) -> np.ndarray:
    """All units' codes ``(n, units)`` of queries `sets` at indices start, start + 1, ...;
    zeros for impossible sets."""
    out = np.zeros((len(sets), self.num_units), np.float32)
    todo = []
    for i, s in enumerate(sets):
      key = (frozenset(s), start + i)
      if key in self.cache:
        out[i] = self.cache[key]
      elif self.world.possible(s):
        todo.append(i)
    if todo:
      a1 = self.world.bits([sets[i] for i in todo])[0]
      codes, _ = self.make(a1, [_rng(self.seed, 0, start + i) for i in todo])
      for i, c in zip(todo, codes):
        out[i] = c
        self.cache[(frozenset(sets[i]), start + i)] = c
    return out

  def box(self, unit: int, budget: int) -> UnitBox:
    return UnitBox(f"unit/{self.subject}/{self.site}/{unit}",
                   lambda sets, start: self.respond(sets, start)[:, unit], budget, self.world)

  def heldout(self, n: int, seed: int) -> tuple[list[frozenset], np.ndarray, np.ndarray]:
    """n natural samples: their concept sets, codes ``(n, units)`` and concepts ``z``."""
    a = sample_hsm(jax.random.key(seed), self.world.hsm, int(n))["a"]
    codes, z = self.make(np.asarray(a[0]), [_rng(seed, 1, i) for i in range(n)])
    return self.world.sets_of(a), codes, z


class HSMEngine(UnitEngine):
  """`hsm`: the concepts of the site's level seen through its linear view."""

  def __init__(self, config, world_views, level: int, *args):
    super().__init__(*args)
    self.config, self.views, self.level = config, world_views, level

  def observe(self, a, z, rngs):
    x = view_latents(self.config, z, self.level) @ self.views.mixings[self.level - 1].T
    return self._encode(x.astype(np.float32))


class ScenesEngine(UnitEngine):
  """`scenes`: the rendered image, noised to the site's time, through one U-Net call."""

  def __init__(self, unet, t: float, *args):
    super().__init__(*args)
    self.unet, self.t = unet, float(t)
    c = unet.config.capture
    block, reduce = c.block, c.reduce
    apply = unet.model.apply

    def run(params, x0, noise, t):
      ab = diffusion.alpha_bar(t)
      x_t = jnp.sqrt(ab) * x0 + jnp.sqrt(1.0 - ab) * noise
      act = hooks.capture(apply, {"params": params}, x_t, jnp.full((x0.shape[0],), t),
                          paths=(block,))[1][block]
      return reduce_block(act, reduce)

    self.run = jax.jit(run)

  def observe(self, a, z, rngs):
    scenes = self.unet.scenes
    n = len(rngs)
    shape = scenes.image_shape
    j = scenes.max_shift
    n2 = scenes.config.level_sizes[1]
    offsets = np.stack([r.integers(-j, j + 1, (n2, 2)) for r in rngs]).astype(np.int32)
    noise = np.stack([r.standard_normal(shape) for r in rngs]).astype(np.float32)
    size = 1 << max(0, (n - 1).bit_length())
    pad = size - n
    x0 = np.asarray(render(scenes, z[0], offsets if j else None))
    x0 = np.concatenate([x0, np.zeros((pad, *shape), np.float32)])
    noise = np.concatenate([noise, np.zeros((pad, *shape), np.float32)])
    rows = np.asarray(self.run(self.unet.params, jnp.asarray(x0), jnp.asarray(noise), self.t))
    return self._encode(rows[:n].reshape(n, -1))


class GrammarEngine(UnitEngine):
  """`grammar`: the serialised sentence through the transformer; the largest code over its
  positions from BOS to EOS."""

  def __init__(self, lm, layer: str, *args):
    super().__init__(*args)
    self.lm, self.layer = lm, layer
    apply = lm.model.apply
    self.run = jax.jit(lambda params, tokens: hooks.capture(
        apply, {"params": params}, tokens, paths=(layer,))[1][layer])

  def observe(self, a, z, rngs):
    grammar = self.lm.grammar
    n2 = grammar.config.level_sizes[1]
    if grammar.config.order == "random":
      order = np.stack([r.permutation(n2) for r in rngs])
    else:
      order = np.broadcast_to(np.arange(n2), (len(rngs), n2))
    tokens = serialise(grammar, a[0], order)["tokens"]
    n = tokens.shape[0]
    size = 1 << max(0, (n - 1).bit_length())
    padded = np.concatenate([tokens, np.repeat(tokens[:1], size - n, axis=0)])
    acts = np.asarray(self.run(self.lm.params, jnp.asarray(padded)))[:n]
    keep = kept_positions(tokens)
    codes = self._encode(acts[keep].reshape(-1, acts.shape[-1]))
    out = np.full((n, codes.shape[1]), -np.inf, np.float32)
    np.maximum.at(out, np.nonzero(keep)[0], codes)
    return out


# Obtaining the SAEs (the pipeline's own files in workdir/<subject>).


def _apply_overrides(config: ml_collections.ConfigDict, overrides, prefix: str) -> None:
  for key, value in overrides.items():
    if key not in config:
      raise ConfigError(f"config key '{prefix}.{key}' overrides {key!r}, which the subject "
                        "config lacks; override keys of the subject's config (e.g. "
                        "capture.num_samples)")
    if isinstance(value, (ml_collections.ConfigDict, dict)):
      _apply_overrides(config[key], value, f"{prefix}.{key}")
    else:
      config[key] = value


def subject_config(units_config: ml_collections.ConfigDict, kind: str) -> ml_collections.ConfigDict:
  """The subject's registered config (its variant) with the units section's overrides."""
  section = units_config[kind]
  cls = get_subject(kind)
  config = cls.variant(cls.default_config(), section.variant or None)
  _apply_overrides(config, section.overrides, f"units.{kind}.overrides")
  cls.validate_config(config)
  return config


def _record_config(workdir: str, config: ml_collections.ConfigDict) -> None:
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, CONFIG_RECORD)
  current = json.loads(config.to_json())
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      if json.load(f) != current:
        raise ConfigError(f"{workdir} holds SAEs of another subject config ({path}); pass a "
                          "fresh workdir or delete that directory")
    return
  with open(path, "w", encoding="utf-8") as f:
    json.dump(current, f, indent=1, sort_keys=True)


def _site_index(kind: str, site: str, names: Sequence[str], default: int) -> int:
  if not site:
    return default
  if site not in names:
    raise ConfigError(f"config key 'units.{kind}.site' is {site!r}; use '' (the site the graph "
                      f"stage reads level 2 from) or one of {', '.join(names)}")
  return list(names).index(site)


def _hsm_engine(units_config, config, workdir: str) -> UnitEngine:
  views = hsm_views.build_world(config)
  sites = [f"view_{l + 1}" for l in range(len(config.world.level_sizes))]
  level = _site_index("hsm", units_config.hsm.site, sites, 1) + 1
  if config.view.cumulative:
    raise ConfigError("unit boxes of the hsm subject read pure views; set the override "
                      "view.cumulative=False")
  wd = os.path.join(workdir, f"sae_l{level}")
  train_and_evaluate(hsm_views.training_config(config, views, level), wd,
                     source=views.sources[level - 1])
  _, model, variables = load_trained(wd)
  world = UnitWorld("hsm", views.hsm)
  return HSMEngine(config, views, level, "hsm", world, sites[level - 1], model, variables,
                   units_config.seed, units_config.batch_size)


def _scenes_engine(units_config, config, workdir: str) -> UnitEngine:
  unet = load_subject_for(config)
  unet.run_capture(workdir)
  ts = tuple(config.capture.timesteps)
  names = unet.site_names()
  s = _site_index("scenes", units_config.scenes.site, names,
                  int(config.graph.level_timesteps[min(1, len(ts) - 1)]))
  labels = capture_lib.levels_of(capture_lib.read_labels(workdir))
  active = float(sum(x.sum(1).mean() for x in labels))
  (model, variables, _), = saes_lib.train_saes(
      config, capture_lib.capture_dir(workdir), workdir, [names[s]],
      sum(x.shape[1] for x in labels), active)
  step = step_indices([ts[s]], config.capture.num_steps)[0]
  t = float(diffusion.ddim_timesteps(config.capture.num_steps)[step])
  world = UnitWorld("scenes", unet.scenes.hsm)
  return ScenesEngine(unet, t, "scenes", world, names[s], model, variables, units_config.seed,
                      units_config.batch_size)


def _grammar_engine(units_config, config, workdir: str) -> UnitEngine:
  lm = load_subject_for(config)
  lm.run_capture(workdir)
  layers = list(config.capture.layers)
  s = _site_index("grammar", units_config.grammar.site, layers,
                  int(config.graph.level_layers[min(1, len(config.graph.level_layers) - 1)]))
  labels = lm.labels(workdir)
  train_rows, _ = split_rows(config, labels)
  cdir = capture_lib.capture_dir(workdir)
  source = data_lib.open_source(os.path.join(cdir, layers[0]))
  active = float((source.latents(train_rows) > 0).sum(1).mean())
  (model, variables, _), = saes_lib.train_saes(
      config, cdir, workdir, [layers[s]], sum(a.shape[1] for a in labels["a"]), active,
      rows=train_rows)
  world = UnitWorld("grammar", lm.grammar.hsm)
  return GrammarEngine(lm, layers[s], "grammar", world, layers[s], model, variables,
                       units_config.seed, units_config.batch_size)


_ENGINES = {"hsm": _hsm_engine, "scenes": _scenes_engine, "grammar": _grammar_engine}


def unit_engine(units_config: ml_collections.ConfigDict, kind: str, workdir: str) -> UnitEngine:
  """The engine of subject `kind`, its SAE trained (or reused) in ``workdir/<kind>``."""
  validate_units_config(units_config)
  config = subject_config(units_config, kind)
  wd = os.path.join(os.path.abspath(workdir), kind)
  _record_config(wd, config)
  return _ENGINES[kind](units_config, config, wd)


# Ground truth and tasks.


def unit_truth(world: UnitWorld, codes: np.ndarray, z: np.ndarray,
               threshold: float) -> list[dict[str, Any]]:
  """Per unit: its matched concept (or 'none'), |corr| ``mcc``, ``sign``, the concept of the
  one-to-one matching of all units (``assigned_concept``) and its |corr| (module docstring)."""
  n = z.shape[0]
  half = int(round(n * 0.5))
  fit = correlation_matrix(z[:half], codes[:half], "pearson")
  score = correlation_matrix(z[half:], codes[half:], "pearson")
  joint = mcc(z, codes)
  assigned = {int(u): c for c, u in enumerate(joint.matching) if u >= 0}
  out = []
  for u in range(codes.shape[1]):
    c = int(np.argmax(np.abs(fit[:, u])))
    r = float(abs(score[c, u]))
    a = assigned.get(u)
    out.append({
        "concept": world.names[c] if r >= threshold else NONE,
        "best_concept": world.names[c], "mcc": r,
        "sign": 1 if fit[c, u] >= 0 else -1,
        "assigned_concept": None if a is None else world.names[a],
        "assigned_mcc": None if a is None else float(abs(score[a, u]))})
  return out


def concept_description(concept: str, sign: int = 1, value: float = 1.0,
                        also: Sequence[str] = ()) -> Description:
  """The description 'fires (with `value`) when `concept` (and every one of `also`) is present'
  (``sign`` -1: when it is absent); 'none' describes a unit that never fires."""
  if concept == NONE:
    return Description("def f(concepts):\n  return 0.0\n", f"concept: {NONE}")
  names = [concept, *also]
  if sign < 0:
    cond, text = f"{concept!r} not in concepts", f"NOT {concept}"
  else:
    cond = " and ".join(f"{c!r} in concepts" for c in names)
    text = " AND ".join(names)
  return Description(f"def f(concepts):\n  return {float(value)!r} if {cond} else 0.0\n",
                     f"concept: {text}")


def unit_tasks(units_config: ml_collections.ConfigDict, workdir: str,
               timings: dict[str, float] | None = None) -> list[Task]:
  """One `Task` per unit of the chosen site's SAE of every subject in ``units.subjects``
  (category ``unit/<subject>``). ``info``: concept, mcc, sign, best_concept, assigned_concept,
  subject, site, unit, level (of the concept; None for 'none'), high (mcc >= units.high_mcc),
  heldout_sets and heldout_activations (for `score_unit`), mcc_threshold. `timings`, when given,
  receives the seconds each subject took (SAE obtained and ground truth made)."""
  validate_units_config(units_config)
  if not units_config.enabled:
    return []
  tasks = []
  for kind in units_config.subjects:
    start = time.perf_counter()
    engine = unit_engine(units_config, kind, workdir)
    sets, codes, z = engine.heldout(int(units_config.heldout), int(units_config.seed) + 1)
    truths = unit_truth(engine.world, codes, z, float(units_config.mcc_threshold))
    for u, t in enumerate(truths):
      info = dict(t, subject=kind, site=engine.site, unit=u,
                  level=None if t["concept"] == NONE else engine.world.level(t["concept"]) + 1,
                  high=bool(t["mcc"] >= units_config.high_mcc),
                  mcc_threshold=float(units_config.mcc_threshold),
                  vocabulary=engine.world.names,
                  heldout_sets=sets, heldout_activations=codes[:, u].copy())
      tasks.append(Task(box_factory=functools.partial(engine.box, u), category=f"unit/{kind}",
                        truth=concept_description(t["concept"], t["sign"]), info=info))
    if timings is not None:
      timings[kind] = time.perf_counter() - start
  return tasks


# Scoring.


def named_concepts(text: str, vocabulary: Sequence[str]) -> tuple[tuple[str, ...], int]:
  """The concepts a description's text names (after 'concept:' when present) and its polarity
  (-1 when it says NOT); ((), 1) when it names none."""
  match = re.search(r"concept:\s*(.*)", text)
  body = match.group(1) if match else text
  vocab = set(vocabulary)
  found = [w for w in re.findall(r"[A-Za-z][A-Za-z0-9]*_\d+", body) if w in vocab]
  names = tuple(dict.fromkeys(found))
  negated = bool(names) and re.search(r"\bNOT\s+" + re.escape(names[0]) + r"\b", body)
  return names, -1 if negated else 1


def _fires(f: Callable[[Any], Any], concepts: frozenset) -> bool:
  try:
    v = f(concepts)
    return bool(v is not None and np.isfinite(float(v)) and float(v) > 0)
  except Exception:  # pylint: disable=broad-except
    return False


def f1_score(pred: np.ndarray, actual: np.ndarray) -> dict[str, float]:
  """Precision, recall and F1 of predicted against actual firing (1.0 when neither fires)."""
  pred, actual = np.asarray(pred, bool), np.asarray(actual, bool)
  tp = float(np.sum(pred & actual))
  if not pred.any() and not actual.any():
    return {"precision": 1.0, "recall": 1.0, "f1": 1.0}
  precision = tp / max(float(pred.sum()), 1.0)
  recall = tp / max(float(actual.sum()), 1.0)
  f1 = 0.0 if tp == 0 else 2 * precision * recall / (precision + recall)
  return {"precision": precision, "recall": recall, "f1": f1}


def score_unit(task: Task, description: Description) -> dict[str, Any]:
  """``concept_correct``: the description names exactly the unit's concept with the right
  polarity, or 'none' for a unit whose concept is 'none'; ``f1`` (with precision, recall): its
  code's firing (``f(concepts) > 0``) against the unit's firing (code > 0) on the held-out
  natural samples."""
  info = task.info
  for key in ("concept", "heldout_sets", "heldout_activations"):
    if key not in info:
      raise DataError(f"task {task.category!r} has no info[{key!r}]; score unit tasks made by "
                      "identi.find.units.unit_tasks")
  vocabulary = sorted({c for s in info["heldout_sets"] for c in s} |
                      ({info["concept"]} - {NONE}) | set(info.get("vocabulary", ())))
  names, polarity = named_concepts(description.text, vocabulary)
  if info["concept"] == NONE:
    correct = not names
  else:
    correct = names == (info["concept"],) and polarity == info.get("sign", 1)
  f = compile_description(description)
  pred = np.array([_fires(f, s) for s in info["heldout_sets"]])
  actual = np.asarray(info["heldout_activations"]) > 0
  named = NONE if not names else ("NOT " if polarity < 0 else "") + " AND ".join(names)
  return {"concept_correct": bool(correct), "named": named, "truth": info["concept"],
          "mcc": float(info.get("mcc", math.nan)), "high": bool(info.get("high", False)),
          "subject": info.get("subject"), "unit": info.get("unit"),
          **f1_score(pred, actual)}


def unit_summary(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
  """Rows per (agent, subject, MCC bucket 'all' / 'high' / 'low'): units, concept accuracy, mean
  F1 and mean queries, from records holding `score_unit`'s fields plus 'agent' and 'queries'."""
  rows = []
  keyfn = lambda r: (r["agent"], r["subject"])
  for (agent, subject), group in itertools.groupby(sorted(records, key=keyfn), key=keyfn):
    group = list(group)
    for bucket, members in (("all", group), ("high", [r for r in group if r["high"]]),
                            ("low", [r for r in group if not r["high"]])):
      if not members:
        continue
      rows.append({"agent": agent, "subject": subject, "mcc": bucket, "units": len(members),
                   "concept_accuracy": float(np.mean([r["concept_correct"] for r in members])),
                   "f1": float(np.mean([r["f1"] for r in members])),
                   "queries": float(np.mean([r.get("queries", math.nan) for r in members]))})
  return rows
