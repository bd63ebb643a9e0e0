"""The `prompted_scenes` subject: the text-to-image U-Net of the scenes world, and its pipeline.

World and detectors: `identi.subjects.scenes`. Prompts: `identi.subjects.prompts` (token
sequences naming scene types, objects and sometimes parts; paraphrase-like order and fillers;
under-specified prompts that name only the scene). Model: the shipped prompted U-Net
(identi/subjects/assets/prompted_scenes.bin, trained by configs/prompted_scenes.py), sampled with
classifier-free guidance at ``prompt.guidance``.

1. Capture: as the `scenes` subject (`identi.subjects.scenes_unet`), but every trajectory is
   prompted: trajectory p gets the prompt of world sample p of ``capture.seed`` (the training
   distribution of prompts, without dropout), and the activations read are those of the prompted
   half of the guided batch. ``labels.npz`` also holds the prompts.
2. Graph: one SAE per timestep and the timestep x level table; the graph is sign-aware
   (``graph.sign_aware``, `identi.experiments.graph`), so units that code a concept's absence are
   linked through their negation.
3. Concept removal under prompting (`run_steering`, writes ``unlearning.json``). For each object
   and each scene type (the *target*; the first ``steer.targets`` of each level, 0 = all) and two
   prompt conditions, ``unlearn.samples`` prompts made from world samples that contain the target:

   - ``named``: the prompt names the target (an object: every present object is named; a scene
     type: the prompt names only the scene types);
   - ``implied``: the prompt does not name it but implies it (an object: only its scene type is
     named; a scene type: its objects are named, not the scene).

   Every prompt is sampled from the same initial noise by four methods: ``none`` (no edit),
   ``negative_prompt`` (classifier-free guidance away from a prompt naming the target instead of
   the empty prompt; no SAE), ``flat`` (the target's matched unit of one timestep SAE,
   ``steer.flat_timestep``, ablated at every step with t <= ``steer.t_max``: SAeUron-style) and
   ``hierarchical`` (at every such step the nearest timestep SAE's units of the target and of
   every concept below it in the LEARNED graph, sparing units that count as another concept, and
   only at the map positions where the target's own units write: ``unlearn.region``). Ablation is
   sign-aware: a unit that rises with
   its concept is set to -``steer.remove_strength`` x its median active code, a unit that codes
   the concept's absence is raised to +that value. SAE edits apply to both halves of the guided
   batch. Scores, by the detectors, over the samples whose unedited image shows the target:
   ``removal`` (target absent), ``preservation`` (every other prompted concept, outside the target,
   what lies below it and the scene types it belongs to, still present), ``unchanged`` (share of
   those other concepts, prompted or not, whose presence equals the unedited image's) and
   ``coherence``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from identi import hooks, io, plots
from identi.errors import ConfigError
from identi.experiments import capture as capture_lib
from identi.experiments import graph as graph_lib
from identi.subjects import diffusion, scenes as scenes_lib, scenes_unet
from identi.subjects.base import register_subject
from identi.subjects.prompts import PromptConfig, make_prompts
from identi.subjects.scenes_training import (export_subject, is_prompted, load_subject,
                                             prompt_config, scenes_config, train_subject,
                                             vocabulary)
from identi.train import config as config_lib

SHIPPED_SUBJECT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets",
                               "prompted_scenes.bin")
UNLEARN_FILE = "unlearning.json"
METHODS = ("none", "negative_prompt", "flat", "hierarchical")
CONDITIONS = ("named", "implied")
LEVEL_NAMES = ("part", "object", "scene")


def default_config() -> ml_collections.ConfigDict:
  """The schema of `prompted_scenes` experiment configs (configs/prompted_unlearning.py)."""
  c = scenes_unet.default_config()
  c.subject.kind = "prompted_scenes"
  # Guided sampling doubles every step's batch: fewer trajectories than the scenes experiment.
  c.capture.num_samples = 4096
  c.capture.batch_size = 256
  c.data.num_eval = 1024
  # 3,072 training rows: 1,000 steps of 2,048 rows are already ~670 passes over them.
  c.train.num_steps = 1000
  c.graph.sign_aware = True
  c.prompt = ml_collections.ConfigDict({"guidance": 3.0})
  # Removal edits at three times the scenes experiment's strength (chosen on a development seed
  # of the benchmark, docs/decisions.md); the hierarchical edit is confined to the map positions
  # where the target's units write (a fraction of their peak energy, `unlearn.region`; 0 = the
  # whole map).
  c.steer.remove_strength = 9.0
  c.unlearn = ml_collections.ConfigDict({"samples": 32, "pool": 8192, "seed": 3, "region": 0.3})
  return c


def variant(config: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
  """'' (full) or 'smoke' (a few trajectories, for tests)."""
  if not config_lib.check_variant(arg):
    return config
  config = scenes_unet.variant(config, arg)
  config.unlearn.samples = 4
  config.unlearn.pool = 256
  return config


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the key for unknown keys, wrong types and impossible values."""
  config_lib.check_keys(config, default_config())
  scenes_unet.check_values(config)
  if not config.prompt.guidance >= 0:
    raise ConfigError(f"config key 'prompt.guidance' is {config.prompt.guidance!r}; give a weight "
                      ">= 0 (1 = the prompted model alone, 0 = unconditional)")
  for name in ("samples", "pool"):
    if not config.unlearn[name] > 0:
      raise ConfigError(f"config key 'unlearn.{name}' is {config.unlearn[name]!r}; it must be > 0")
  if not 0.0 <= config.unlearn.region <= 1.0:
    raise ConfigError(f"config key 'unlearn.region' is {config.unlearn.region!r}; give a fraction "
                      "in [0, 1] of the edited units' peak energy (0 = edit the whole map)")
  if config.unlearn.region > 0 and config.capture.reduce != "flatten":
    raise ConfigError(f"config key 'unlearn.region' is {config.unlearn.region!r} but "
                      f"capture.reduce is {config.capture.reduce!r}; an edit region needs "
                      "'flatten', or set unlearn.region = 0")


def descendants(scenes, level: int, target: int) -> list[tuple[int, int]]:
  """(level, index) of every concept below `target` in the world's graph."""
  out, frontier = [], [(level, target)]
  while frontier:
    l, j = frontier.pop()
    if l == 0:
      continue
    for i in np.flatnonzero(np.asarray(scenes.hsm.adjacency[l - 1])[:, j]):
      out.append((l - 1, int(i)))
      frontier.append((l - 1, int(i)))
  return out


def ancestors(scenes, level: int, target: int) -> list[tuple[int, int]]:
  """(level, index) of every concept above `target` in the world's graph."""
  out, frontier = [], [(level, target)]
  adjacency = [np.asarray(a) for a in scenes.hsm.adjacency]
  while frontier:
    l, i = frontier.pop()
    if l >= len(adjacency):
      continue
    for j in np.flatnonzero(adjacency[l][i]):
      out.append((l + 1, int(j)))
      frontier.append((l + 1, int(j)))
  return out


def score_removal(scenes, vocab, level: int, target: int, prompts, before, after
                  ) -> dict[str, np.ndarray]:
  """Per-sample removal scores (module docstring) of edited images `after` against the unedited
  `before` (both `detect` dicts) for prompts `prompts`."""
  sizes = scenes.config.level_sizes
  excluded = [np.zeros(n, bool) for n in sizes]
  excluded[level][target] = True
  for l, i in descendants(scenes, level, target) + ancestors(scenes, level, target):
    excluded[l][i] = True
  prompted_ok = np.ones(len(prompts), bool)
  same = []
  for l in range(len(sizes)):
    keep = ~excluded[l]
    named = vocab.named(prompts, l) & keep[None, :]
    prompted_ok &= ~np.any(named & ~after["a"][l], axis=1)
    same.append((before["a"][l] == after["a"][l])[:, keep])
  return {"removal": ~after["a"][level][:, target], "preservation": prompted_ok,
          "unchanged": np.concatenate(same, axis=1).mean(axis=1), "coherent": after["coherent"]}


def learned_children(edges, level: int, unit: int) -> list[int]:
  """Units of level `level - 1` (0-based) that the learned graph links into `unit` of `level`."""
  return [e["from"] for e in edges if e["level_pair"] == [level, level + 1] and e["to"] == unit]


def removal_plan(st: scenes_unet.Steerer, edges, level: int, target: int, mode: str):
  """Per-SAE (mask, value) that remove concept `target` of `level` (0-based): `mode` 'flat' edits
  its matched unit; 'hierarchical' also every concept below it in the learned graph (and the
  learned units themselves where they match no concept), but never a unit that counts as a
  concept outside that set (`scenes_unet.unit_owners`). Sign-aware (module docstring)."""
  masks, values = st.empty()
  strength = st.config.steer.remove_strength
  used = sorted(set(int(s) for s in st.step_sae[mode] if s >= 0))
  concepts, raw = {(level, target)}, []
  if mode == "hierarchical":
    frontier = [(level, int(st.match[st.level_ts[level]][level][target]))]
    while frontier:
      l, unit = frontier.pop()
      if l == 0:
        continue
      s_lo = st.level_ts[l - 1]
      concept_of = {int(u): i for i, u in enumerate(st.match[s_lo][l - 1])}
      for child in learned_children(edges, l, unit):
        if child in concept_of:
          concepts.add((l - 1, concept_of[child]))
        raw.append((s_lo, child))
        frontier.append((l - 1, child))
  for s in used:
    # A unit matched to a removed concept may count as another concept (it is matched per level):
    # the hierarchical plan leaves it alone, so that what must survive is not edited.
    spared = ({u for u, owner in st.owner[s].items() if owner not in concepts}
              if mode == "hierarchical" else set())
    for l, c in sorted(concepts):
      unit = int(st.match[s][l][c])
      if unit < 0 or unit in spared:
        continue
      masks[s][unit] = True
      values[s][unit] = -st.sign[s][l][c] * strength * st.value[s][unit]
    for s_unit, unit in raw:
      if s_unit == s and not masks[s][unit] and unit not in spared:
        masks[s][unit] = True
        values[s][unit] = -strength * st.value[s][unit]
  return masks, values


def target_units(st: scenes_unet.Steerer, level: int, target: int) -> list[np.ndarray]:
  """Per-SAE bool masks of the units matched to concept `target` of `level`: the edit region of
  a hierarchical removal is where they write, so a wrongly learned part elsewhere is not edited."""
  masks, _ = st.empty()
  for s, m in enumerate(masks):
    unit = int(st.match[s][level][target])
    if unit >= 0:
      m[unit] = True
  return masks


@register_subject("prompted_scenes")
class PromptedScenesUNet(scenes_unet.ScenesUNet):
  """The `prompted_scenes` subject (module docstring)."""

  kind = "prompted_scenes"
  default_config = staticmethod(default_config)
  variant = staticmethod(variant)
  validate_config = staticmethod(validate_config)
  train = staticmethod(train_subject)
  export = staticmethod(export_subject)
  TRAINING_COLUMNS = ("step", "num_params", "coherence_generated", "adherence_objects",
                      "coherence_train", "residual_rmse_generated", "export_mb")

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    path = config.subject.checkpoint or SHIPPED_SUBJECT
    self.model, self.params, subject_config = load_subject(path)
    if not is_prompted(subject_config):
      raise ConfigError(f"subject file {path} holds an unconditional U-Net; the prompted_scenes "
                        "subject needs one trained by configs/prompted_scenes.py (or use "
                        "subject.kind = 'scenes')")
    self.scenes = scenes_lib.make_scenes(scenes_config(subject_config))
    self.vocab = vocabulary(subject_config)
    self.prompt_config = prompt_config(subject_config)
    self._capture_prompts = None

  # Prompts.
  def world_prompts(self, seed: int, n: int, prompt_config: PromptConfig | None = None):
    """(prompts (n, L), world sample) of n world samples of `seed`."""
    world = scenes_lib.sample_scenes(jax.random.key(seed), self.scenes, n)
    prompts = make_prompts(np.random.default_rng((seed, 1)), world["a"], self.vocab,
                           prompt_config or self.prompt_config)
    return prompts, world

  def cond(self, prompts, negative=None):
    """The guidance conditioning (prompt, negative, weight) of `prompts` (default negative: the
    empty prompt)."""
    prompts = jnp.asarray(prompts, jnp.int32)
    negative = jnp.zeros_like(prompts) if negative is None else jnp.asarray(negative, jnp.int32)
    return (prompts, negative, jnp.float32(self.config.prompt.guidance))

  # Model.
  @property
  def sites(self) -> tuple[str, ...]:
    n = self.prompt_config.max_len
    return tuple(hooks.module_paths(self.model.apply, {"params": self.params},
                                    jnp.zeros((1, *self.image_shape)), jnp.zeros((1,)),
                                    jnp.ones((1, n), jnp.int32)))

  def capture(self, inputs, sites: tuple[str, ...]) -> dict[str, Any]:
    """Block outputs `sites` of one denoising call; inputs = (noisy images, times, prompts)."""
    x, t, prompts = inputs
    return hooks.capture(self.model.apply, {"params": self.params}, x, t, prompts,
                         paths=tuple(sites))[1]

  def patch(self, inputs, edits) -> jax.Array:
    """The guided noise prediction of one denoising call with ``edits[block]`` applied to both
    halves of the guided batch; inputs = (noisy images, times, prompts)."""
    x, t, prompts = inputs
    apply = lambda *args: hooks.patch(self.model.apply, {"params": self.params}, *args,
                                      edits=edits)
    return scenes_unet.apply_eps(apply, x, t, self.cond(prompts))

  def generate(self, key: jax.Array, n: int, edits=None, prompts=None) -> jax.Array:
    """n guided DDIM samples (``capture.num_steps`` steps) of `prompts` (default: the prompts of
    n world samples of the key), with `edits` applied at every step."""
    if prompts is None:
      seed = int(jax.random.randint(key, (), 0, 2**31 - 1))
      prompts = self.world_prompts(seed, n)[0]
    cond = self.cond(prompts)

    def eps_fn(x, t, i):
      del i
      if edits:
        apply = lambda *args: hooks.patch(self.model.apply, {"params": self.params}, *args,
                                          edits=edits)
      else:
        apply = lambda *args: self.model.apply({"params": self.params}, *args)
      return scenes_unet.apply_eps(apply, x, t, cond)
    return diffusion.ddim_sample(key, eps_fn, (n, *self.image_shape), self.config.capture.num_steps)

  # Pipeline.
  @property
  def capture_prompts(self) -> np.ndarray:
    if self._capture_prompts is None:
      c = self.config.capture
      self._capture_prompts = self.world_prompts(c.seed, c.num_samples)[0]
    return self._capture_prompts

  def capture_cond(self, start: int, n: int):
    return self.cond(self.capture_prompts[start:start + n])

  def capture_labels(self) -> dict[str, np.ndarray]:
    return {"prompts": self.capture_prompts}

  def benchmark_prompts(self, world, level: int, target: int, condition: str, n: int):
    """Up to n prompts of `condition` for removing `target` (module docstring), from the world
    samples in `world` that contain it."""
    a = world["a"]
    has = a[level][:, target].copy()
    if level == 1 and condition == "implied":  # Only the scene is named: it must be present.
      scene = int(self.scenes.object_scene[target])
      has &= a[2][:, scene]
    rows = np.flatnonzero(has)[:n]
    p = self.prompt_config
    if (level, condition) in ((1, "implied"), (2, "named")):
      p = dataclasses.replace(p, underspecified=1.0)
    else:
      p = dataclasses.replace(p, underspecified=0.0,
                              scene_rate=0.0 if level == 2 else p.scene_rate)
    rng = np.random.default_rng((self.config.unlearn.seed, level, target, CONDITIONS.index(
        condition)))
    return make_prompts(rng, [x[rows] for x in a], self.vocab, p)

  def run_steering(self, workdir: str) -> dict[str, Any]:
    """The concept-removal benchmark (module docstring); writes unlearning.json."""
    config = self.config
    u = config.unlearn
    self.run_capture(workdir)
    st = scenes_unet.Steerer(self, workdir)
    edges = graph_lib.load_graph(workdir)["edges"]
    world = scenes_lib.sample_scenes(jax.random.key(u.seed), self.scenes, u.pool)
    sizes = self.scenes.config.level_sizes
    targets = [(l, j) for l in range(1, len(sizes))
               for j in range(scenes_unet.edited_targets(sizes[l], config.steer.targets))]
    records, examples = [], {}
    progress = capture_lib.Progress(len(targets) * len(CONDITIONS), "target x condition",
                                    stage="removal")
    done = 0
    for level, target in targets:
      negative = np.zeros((1, self.prompt_config.max_len), np.int32)
      negative[0, 0] = self.vocab.concept(level, target)
      for condition in CONDITIONS:
        prompts = self.benchmark_prompts(world, level, target, condition, u.samples)
        # The same initial noise for every method; each (target, condition) its own block.
        idx = np.arange(len(prompts)) + done * u.samples
        images = {}
        for method in METHODS:
          if method in ("none", "negative_prompt"):
            neg = np.repeat(negative, len(prompts), 0) if method == "negative_prompt" else None
            images[method] = st.run(idx, *st.empty(), mode="flat", seed=u.seed,
                                    cond=self.cond(prompts, neg))
          else:
            local = method == "hierarchical" and u.region > 0
            images[method] = st.run(idx, *removal_plan(st, edges, level, target, method),
                                    mode=method, seed=u.seed, cond=self.cond(prompts),
                                    region=u.region if local else None,
                                    anchors=target_units(st, level, target) if local else None)
        before = scenes_unet.detect(self.scenes, images["none"])
        shown = before["a"][level][:, target]
        for method in METHODS:
          after = scenes_unet.detect(self.scenes, images[method])
          scores = score_removal(self.scenes, self.vocab, level, target, prompts, before, after)
          records.append({
              "level": LEVEL_NAMES[level], "target": target, "condition": condition,
              "method": method, "prompts": int(len(prompts)), "samples": int(shown.sum()),
              **{k: float(v[shown].mean()) if shown.any() else float("nan")
                 for k, v in scores.items()}})
          if condition == "named" and level == 1 and shown.any():
            first = int(np.flatnonzero(shown)[0])
            examples.setdefault(target, {"prompt": self.vocab.decode(prompts[first])})[method] = (
                images[method][first])
        done += 1
        progress.update(done)
    rows = summarize(records)
    result = {"rows": rows, "targets": records, "guidance": float(config.prompt.guidance),
              "t_max": float(config.steer.t_max),
              "remove_strength": float(config.steer.remove_strength),
              "region": float(u.region),
              "flat_timestep": float(config.capture.timesteps[config.steer.flat_timestep]),
              "samples_per_target": int(u.samples)}
    io.write_json(os.path.join(workdir, UNLEARN_FILE), result)
    result["results_file"] = UNLEARN_FILE
    result["figure"] = plots.method_grid(examples, METHODS, os.path.join(workdir,
                                                                           "unlearning_grid"))[0]
    result["table_figure"] = plots.removal_scatter(rows, os.path.join(workdir,
                                                                      "unlearning_tradeoff"))[0]
    return result

  @staticmethod
  def tables(stage: str, result: dict[str, Any]) -> list[tuple[list[dict], list[str]]]:
    if stage != "steer":
      return scenes_unet.ScenesUNet.tables(stage, result)
    return [(result["rows"], ["level", "condition", "method", "samples", "removal",
                              "preservation", "unchanged", "coherence"])]


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
  """Per (level, condition, method): scores averaged over samples (weighted by each target's
  samples) and the number of samples."""
  rows = []
  keys = sorted({(r["level"], r["condition"], r["method"]) for r in records},
                key=lambda k: (LEVEL_NAMES.index(k[0]), CONDITIONS.index(k[1]),
                               METHODS.index(k[2])))
  for level, condition, method in keys:
    rs = [r for r in records if (r["level"], r["condition"], r["method"]) == (level, condition,
                                                                                method)
          and r["samples"] > 0]
    w = np.asarray([r["samples"] for r in rs], np.float64)
    row = {"level": level, "condition": condition, "method": method, "samples": int(w.sum())}
    for k in ("removal", "preservation", "unchanged", "coherent"):
      row["coherence" if k == "coherent" else k] = (
          float(np.dot(w, [r[k] for r in rs]) / w.sum()) if w.sum() else float("nan"))
    rows.append(row)
  return rows
