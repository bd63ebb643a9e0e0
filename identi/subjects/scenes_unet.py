"""The `scenes` subject: the diffusion U-Net trained on the scenes world, and its pipeline.

World: `identi.subjects.scenes` (images of parts composing objects composing scenes; the scene
detectors read the concepts back from an image). Model: the shipped U-Net
(identi/subjects/assets/diffusion_scenes.bin, trained by configs/diffusion_scenes.py) sampled with
DDIM; sites are its named blocks (`identi.hooks` paths such as ``mid`` or ``up_1``) read at the
studied timesteps.

1. Capture: DDIM trajectories from fixed noise; at each studied timestep (the DDIM step nearest
   each of ``capture.timesteps``) the output of block ``capture.block`` is read with
   `identi.hooks.capture` inside the jitted sampler and reduced by `identi.hooks.reduce_spatial`
   (``capture.reduce``). The ground truth of a generated image is what the scene detectors read
   from the finished sample: the concepts the model committed to on that trajectory. Sites are
   named ``t<k>`` (k indexes ``capture.timesteps``); latents = the detected z of every level,
   parts first; ``labels.npz`` holds presence per level, coherence and the images.
2. Graph: one SAE per timestep and the timestep x level table (`identi.experiments.graph`); level
   l's units are those of the SAE at ``graph.level_timesteps[l]``. Extra figures: the captured
   samples and the graph drawn with each node's top images.
3. Steering during sampling (`run_steering`): at every DDIM step at or below ``steer.t_max``, the
   block output is encoded by a timestep SAE, its codes edited, decoded, and the SAE's
   reconstruction error added back (`identi.steer.steer` inside `identi.hooks.patch`, through
   `identi.hooks.edit_spatial` so that SAEs on pooled blocks steer too). Every edited run starts
   from the same initial noise as an unedited run, so each sample has its own control; DDIM
   (eta = 0) is deterministic. Edits run over a window of steps, not one timestep, because a
   concept is decided while the image is still noisy (`paper/block_transplant.py` measures when).
   Edits: ``inject_part`` (the part's unit raised to ``inject_strength`` x its median active
   code), ``remove_object`` (the object's unit, and hierarchically its parts' units, set to
   -``remove_strength`` x its median code: setting it to 0 leaves the object in the
   reconstruction error), ``inject_object`` (raised as for a part). Modes: ``hierarchical`` edits
   at each step the units of the nearest timestep's SAE that MCC matching assigns to the target,
   and for an object also its parts as the LEARNED graph gives them; ``flat`` edits only the unit
   of one SAE (``steer.flat_timestep``) at every step of the window, without the graph. Scores, by
   the detectors on the finished images: success, preservation (the other concepts of levels 1
   and 2, outside the target and its parts, unchanged) and coherence.

Choices: the default block is ``up_1`` (8 x 8 x 64, the decoder stage after the bottleneck), not
``mid``: transplanting ``mid``'s whole output between runs barely changes the image (the skip
connections carry it past the bottleneck), so edits of ``mid`` cannot steer. The SAE input is the
flattened block map (``reduce='flatten'``): the scenes world has fixed object positions, so
position is part of a concept's identity and pooling would merge the parts of different objects.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from identi import hooks, io, plots, steer
from identi.errors import ConfigError
from identi.experiments import capture as capture_lib
from identi.experiments import graph as graph_lib
from identi.experiments.saes import add_training_sections, level_slices, source_rows, train_saes
from identi.experiments.steer import STEERING_FILE
from identi.metrics import mcc
from identi.subjects import diffusion, scenes as scenes_lib
from identi.subjects.base import register_subject
from identi.subjects.scenes_training import (export_subject, load_subject, scenes_config,
                                             train_subject)
from identi.train import config as config_lib

SHIPPED_SUBJECT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets",
                               "diffusion_scenes.bin")
EDITS = ("inject_part", "remove_object", "inject_object")
MODES = ("hierarchical", "flat")


def default_config() -> ml_collections.ConfigDict:
  """The schema of `scenes` experiment configs, with defaults (configs/scenes_concepts.py)."""
  c = ml_collections.ConfigDict()
  c.subject = ml_collections.ConfigDict({"kind": "scenes", "checkpoint": ""})  # '' = shipped.
  c.capture = ml_collections.ConfigDict({
      "block": "up_1", "reduce": "flatten", "timesteps": (0.8, 0.5, 0.2, 0.05), "num_steps": 50,
      "num_samples": 16384, "batch_size": 512, "seed": 0})
  c.data = ml_collections.ConfigDict({"num_eval": 4096, "split_seed": 0})
  add_training_sections(c)
  c.sae.kind = "batchtopk"
  c.train.num_steps = 3000
  c.sae_width = 2.0  # d_sae = sae_width * (concepts of all levels).
  c.k_factor = 2.5  # k = ceil(k_factor * mean detected active concepts of all levels).
  c.graph = graph_lib.graph_schema()
  c.graph.level_timesteps = (3, 2, 1)
  c.steer = ml_collections.ConfigDict({
      "samples_per_edit": 256, "pool": 4096, "t_max": 0.6, "inject_strength": 6.0,
      "remove_strength": 3.0, "flat_timestep": 1, "seed": 2,
      # The first this many concepts of each edited level are the targets (0 = all of them).
      "targets": 0})
  return c


def variant(config: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
  """Applies a `:variant`: '' (full) or 'smoke' (a few trajectories, for tests)."""
  if not config_lib.check_variant(arg):
    return config
  config_lib.shrink_training(config)
  config.capture.block = "mid"  # 1,024 dims instead of 4,096: the same code path, 4x cheaper SAEs.
  config.capture.num_steps = 10
  config.capture.num_samples = 256
  config.capture.batch_size = 128
  config.data.num_eval = 96
  config.steer.samples_per_edit = 8
  config.steer.pool = 96
  config.steer.targets = 2
  return config


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the key for unknown keys, wrong types and impossible values."""
  config_lib.check_keys(config, default_config())
  check_values(config)


def check_values(config: ml_collections.ConfigDict) -> None:
  """The value checks of `validate_config` (shared with the prompted subject's configs)."""
  c = config.capture
  if c.reduce not in ("flatten", "pool"):
    raise ConfigError(f"config key 'capture.reduce' is {c.reduce!r}; use 'flatten' or 'pool' "
                      "(image-level latents cannot label the per-position rows of 'position')")
  ts = tuple(c.timesteps)
  if len(ts) < 1 or not all(0.0 < t <= 1.0 for t in ts):
    raise ConfigError(f"config key 'capture.timesteps' is {ts}; give times in (0, 1], e.g. "
                      "(0.8, 0.5, 0.2) (1 = pure noise)")
  for name in ("num_steps", "num_samples", "batch_size"):
    if not c[name] > 0:
      raise ConfigError(f"config key 'capture.{name}' is {c[name]!r}; it must be > 0")
  if not 0 < config.data.num_eval < c.num_samples:
    raise ConfigError(f"config key 'data.num_eval' is {config.data.num_eval}; hold out fewer "
                      f"than capture.num_samples = {c.num_samples} rows")
  graph_lib.validate_graph_section(config.graph)
  for name, idx in (("graph.level_timesteps", tuple(config.graph.level_timesteps)),
                    ("steer.flat_timestep", (config.steer.flat_timestep,))):
    if not all(0 <= i < len(ts) for i in idx):
      raise ConfigError(f"config key '{name}' is {idx}; entries index capture.timesteps "
                        f"(0..{len(ts) - 1})")
  for name in ("sae_width", "k_factor"):
    if not config[name] > 0:
      raise ConfigError(f"config key '{name}' is {config[name]!r}; it must be > 0")
  s = config.steer
  if not 0.0 < s.t_max <= 1.0:
    raise ConfigError(f"config key 'steer.t_max' is {s.t_max!r}; give the highest time edited, "
                      "in (0, 1] (e.g. 0.6: concepts are decided at mid noise)")
  for name in ("inject_strength", "remove_strength", "samples_per_edit", "pool"):
    if not s[name] > 0:
      raise ConfigError(f"config key 'steer.{name}' is {s[name]!r}; it must be > 0")
  if not s.targets >= 0:
    raise ConfigError(f"config key 'steer.targets' is {s.targets!r}; give how many concepts of "
                      "each level to edit, or 0 for all of them")


def edited_targets(level_size: int, targets: int) -> int:
  """How many concepts of a level of `level_size` the steering edits: the first `targets` (the
  config's ``steer.targets``), or all of them for 0."""
  return min(level_size, targets) if targets else level_size


def step_indices(timesteps, num_steps: int) -> list[int]:
  """The DDIM step (0-based, times `ddim_timesteps`) whose input time is nearest each time."""
  ts = np.asarray(diffusion.ddim_timesteps(num_steps))[:-1]
  return [int(np.argmin(np.abs(ts - t))) for t in timesteps]


def reduce_block(act: jax.Array, mode: str) -> jax.Array:
  """A block output as SAE rows: spatial maps reduced by `mode`, vectors as they are."""
  return hooks.reduce_spatial(act, mode) if act.ndim == 4 else act


def apply_eps(apply_fn, x, t, cond=None):
  """The noise prediction of one denoising call: `apply_fn(x, t)`, or for a prompted model with
  ``cond = (prompt, negative, guidance)`` classifier-free guidance (`diffusion.guided_eps`)."""
  if cond is None:
    return apply_fn(x, t)
  return diffusion.guided_eps(apply_fn, x, t, *cond)


def capture_fn(model, block: str, num_steps: int, steps: tuple[int, ...]):
  """A jitted (params, key, shape, cond=None) -> (images, activations of `block` at each studied
  step); with ``cond = (prompt, negative, guidance)`` the images are sampled with classifier-free
  guidance and the activations are those of the prompted half of the batch."""
  steps_arr = jnp.asarray(steps)

  def run(params, key, shape, cond=None):
    def eps_fn(x, t, i):
      if cond is None:
        eps, acts = hooks.capture(model.apply, {"params": params}, x, t, paths=(block,))
        return eps, acts[block]
      prompt, negative, guidance = cond
      n = x.shape[0]
      eps, acts = hooks.capture(model.apply, {"params": params}, jnp.concatenate([x, x]),
                                diffusion.twice(t), jnp.concatenate([prompt, negative]),
                                paths=(block,))
      return eps[n:] + guidance * (eps[:n] - eps[n:]), acts[block][:n]

    x0, info = diffusion.ddim_sample(key, eps_fn, shape, num_steps, has_aux=True)
    return x0, info["aux"][steps_arr]

  return jax.jit(run, static_argnums=2)


def initial_noise(seed: int, indices: np.ndarray, image_shape) -> jax.Array:
  """x_1 of pool samples `indices`: sample p's noise depends on (seed, p) only."""
  key = jax.random.key(seed)
  return jax.vmap(lambda p: jax.random.normal(jax.random.fold_in(key, p), image_shape))(
      jnp.asarray(indices))


def step_saes(timesteps, num_steps: int, t_max: float, fixed: int | None = None) -> np.ndarray:
  """The SAE used at each DDIM step: the nearest studied timestep's (or `fixed`) at steps whose
  time is <= t_max, -1 (no edit) above it."""
  ts = np.asarray(diffusion.ddim_timesteps(num_steps))[:-1]
  times = np.asarray([float(t) for t in timesteps])
  nearest = np.argmin(np.abs(ts[:, None] - times[None, :]), axis=1)
  chosen = nearest if fixed is None else np.full(num_steps, fixed)
  return np.where(ts <= t_max + 1e-6, chosen, -1).astype(np.int32)


def edit_codes(codes: jax.Array, mask: jax.Array, value: jax.Array) -> jax.Array:
  """Masked units: raised to at least `value` where it is >= 0, set to it where it is < 0."""
  edited = jnp.where(value >= 0, jnp.maximum(codes, value), value)
  return jnp.where(mask, edited, codes)


def edit_region(w_dec: jax.Array, mask: jax.Array, map_shape, fraction: float) -> jax.Array:
  """(d_in,) 0/1 weights of a flattened (H, W, C) map: the positions where the dictionary vectors
  of the masked units (rows of `w_dec`) put at least `fraction` of the largest per-position
  energy (squared norm over channels) of those vectors together. All ones where no unit is
  masked."""
  h, w, c = map_shape
  energy = jnp.sum(jnp.square(w_dec).reshape(-1, h, w, c), axis=-1)  # (d_sae, H, W)
  energy = jnp.tensordot(mask.astype(energy.dtype), energy, axes=1)
  keep = (energy >= fraction * jnp.max(energy)).astype(w_dec.dtype)
  return jnp.broadcast_to(keep[:, :, None], (h, w, c)).reshape(-1)


@functools.partial(jax.jit, static_argnames=("model", "saes", "block", "reduce", "num_steps",
                                             "region"))
def steered_sample(x_init, params, sae_vars, masks, values, step_sae, cond=None, anchors=None, *,
                   model, saes, block: str, reduce: str, num_steps: int,
                   region: float | None = None):
  """DDIM from x_init with the block's output steered at step i by SAE step_sae[i] (-1: none);
  the SAEs read the block reduced by `reduce` (hooks.edit_spatial maps the edit back). With
  ``cond = (prompt, negative, guidance)`` (a prompted model) the steps use classifier-free
  guidance, and the edit applies to both halves of the guided batch. With `region` (a fraction in
  (0, 1], for ``reduce='flatten'``), the change the SAE edit makes is kept only at the map
  positions where the units of `anchors` (per-SAE bool masks; default: the edited units) write
  (`edit_region`); None edits the whole map."""
  if region is not None and reduce != "flatten":
    raise ConfigError(f"an edit region needs the flattened block map (reduce='flatten'), not "
                      f"{reduce!r}; pass region=None")

  def eps_fn(x, t, i):
    s_i = step_sae[i]

    def edit_rows(rows, map_shape=None):
      out = rows
      for s, sae in enumerate(saes):
        steered = steer.steer(sae, sae_vars[s], rows,
                              functools.partial(edit_codes, mask=masks[s], value=values[s]))
        if region is not None:
          weight = edit_region(sae_vars[s]["params"]["W_dec"],
                               masks[s] if anchors is None else anchors[s], map_shape, region)
          steered = rows + weight[None, :] * (steered - rows)
        out = jnp.where(s_i == s, steered, out)
      return out

    def edit_block(act):
      if act.ndim != 4:
        return edit_rows(act)
      return hooks.edit_spatial(act, reduce, functools.partial(edit_rows,
                                                               map_shape=act.shape[1:]))

    return apply_eps(functools.partial(hooks.patch, model.apply, {"params": params}, path=block,
                                       edit_fn=edit_block), x, t, cond)

  return diffusion.ddim_sample(None, eps_fn, x_init.shape, num_steps, x_init=x_init)


@functools.partial(jax.jit, static_argnames=("model", "block", "num_steps"))
def transplant_sample(x_a, x_b, params, lo, hi, *, model, block: str, num_steps: int):
  """DDIM of runs a and b (initial noises x_a, x_b) side by side; at the steps with lo <= t <= hi
  run a's `block` output is replaced by run b's at the same step. Returns run a's images."""
  n = x_a.shape[0]

  def eps_fn(x, t, i):
    del i
    _, acts = hooks.capture(model.apply, {"params": params}, x[n:], t, paths=(block,))

    def edit(h):
      return jnp.concatenate([jnp.where((t >= lo) & (t <= hi), acts[block], h[:n]), h[n:]])

    return hooks.patch(model.apply, {"params": params}, x, t, path=block, edit_fn=edit)

  x = jnp.concatenate([x_a, x_b])
  return diffusion.ddim_sample(None, eps_fn, x.shape, num_steps, x_init=x)[:n]


def transplant_table(config: ml_collections.ConfigDict, blocks, windows, *, parts, pairs: int,
                     pool: int) -> list[dict[str, Any]]:
  """How much of the image a block decides, and when: for each part, `pairs` runs whose image
  lacks it receive, within each time window, the block output of runs whose image has it; the
  rate at which the part then appears (mean over parts), per block and window."""
  subject = ScenesUNet(config)
  model, params, scenes = subject.model, subject.params, subject.scenes
  size = scenes.config.image_size
  x_init = initial_noise(config.steer.seed, np.arange(pool), (size, size, 1))
  base = diffusion.ddim_sample(None, lambda x, t, i: model.apply({"params": params}, x, t),
                               x_init.shape, config.capture.num_steps, x_init=x_init)
  a1 = detect(scenes, np.asarray(base))["a"][0]
  rows = []
  for block in blocks:
    for lo, hi in windows:
      rates = []
      for p in parts:
        without, with_ = np.flatnonzero(~a1[:, p])[:pairs], np.flatnonzero(a1[:, p])[:pairs]
        m = min(without.size, with_.size)
        if m == 0:
          continue
        out = transplant_sample(x_init[without[:m]], x_init[with_[:m]], params, lo, hi,
                                model=model, block=block, num_steps=config.capture.num_steps)
        rates.append(float(detect(scenes, np.asarray(out))["a"][0][:, p].mean()))
      rows.append({"block": block, "t_lo": float(lo), "t_hi": float(hi),
                   "appears": float(np.mean(rates)) if rates else float("nan"),
                   "parts": len(rates)})
  return rows


def detect(scenes, images) -> dict[str, Any]:
  d = scenes_lib.detect_concepts(scenes, images)
  return {"a": [np.asarray(a) for a in d["a"]], "coherent": np.asarray(d["coherent"])}


def score_edit(scenes, edit: str, target: int, before, after) -> dict[str, np.ndarray]:
  level = 0 if edit == "inject_part" else 1
  want = edit != "remove_object"
  success = after["a"][level][:, target] == want
  keep1 = np.ones(scenes.config.level_sizes[0], bool)
  keep2 = np.ones(scenes.config.level_sizes[1], bool)
  if level == 0:
    keep1[target] = False
  else:
    keep2[target] = False
    keep1[scenes.part_object == target] = False
  same = np.concatenate([(before["a"][0] == after["a"][0])[:, keep1],
                         (before["a"][1] == after["a"][1])[:, keep2]], axis=1)
  return {"success": success, "preservation": same.mean(axis=1),
          "coherent": after["coherent"]}


def unit_signs(z: np.ndarray, codes: np.ndarray, matching: np.ndarray) -> np.ndarray:
  """+1 where concept i's matched unit rises with it, -1 where it codes the concept's absence
  (negative correlation; MCC matches on |corr|); +1 for unmatched or constant columns."""
  out = np.ones(z.shape[1], np.float32)
  for i, u in enumerate(matching):
    if u < 0:
      continue
    a, b = z[:, i] - z[:, i].mean(), codes[:, u] - codes[:, u].mean()
    out[i] = -1.0 if float(a @ b) < 0 else 1.0
  return out


def unit_owners(results) -> dict[int, tuple[int, int]]:
  """The concept each matched unit counts as: the matching is made per level, so one unit can be
  matched to a concept of several levels; it counts as the one it correlates with most (on the
  matching's fit half). `results`: one MCCResult per level (0-based). Maps unit -> (level,
  concept)."""
  best: dict[int, tuple[float, tuple[int, int]]] = {}
  for level, r in enumerate(results):
    for concept, unit in enumerate(np.asarray(r.matching)):
      unit = int(unit)
      if unit >= 0:
        corr = float(r.corr_fit[concept, unit])
        if unit not in best or corr > best[unit][0]:
          best[unit] = (corr, (level, concept))
  return {unit: owner for unit, (_, owner) in best.items()}


class Steerer:
  """Everything a steered run needs: subject, SAEs, unit matching (and the concept each matched
  unit counts as, `unit_owners`) and code values."""

  def __init__(self, subject: "ScenesUNet", workdir: str):
    config = subject.config
    self.config = config
    self.model, self.params, self.scenes = subject.model, subject.params, subject.scenes
    saes = subject.train_saes(workdir)
    self.saes = tuple(m for m, _, _ in saes)
    self.sae_vars = [jax.tree.map(jnp.asarray, v) for _, v, _ in saes]
    sizes = list(self.scenes.config.level_sizes)
    self.slices = level_slices(sizes)
    self.match, self.value, self.sign, self.owner = [], [], [], []
    for model, variables, source in saes:
      x, z = source_rows(source)
      codes = np.asarray(model.apply(variables, x, method="encode"))
      results = [mcc(z[:, sl], codes) for sl in self.slices]
      self.match.append([r.matching for r in results])
      self.owner.append(unit_owners(results))
      self.sign.append([unit_signs(z[:, sl], codes, m) for sl, m in zip(self.slices,
                                                                          self.match[-1])])
      pos = np.where(codes > 0, codes, np.nan)
      self.value.append(np.nan_to_num(np.nanmedian(pos, axis=0), nan=0.0).astype(np.float32))
    graph = graph_lib.load_graph(workdir)
    self.edges = [(e["from"], e["to"]) for e in graph["edges"] if e["level_pair"] == [1, 2]]
    self.level_ts = list(config.graph.level_timesteps)
    c = config.capture
    self.step_sae = {
        "hierarchical": step_saes(c.timesteps, c.num_steps, config.steer.t_max),
        "flat": step_saes(c.timesteps, c.num_steps, config.steer.t_max,
                          fixed=config.steer.flat_timestep)}
    size = self.scenes.config.image_size
    self.image_shape = (size, size, 1)

  def empty(self):
    masks = [np.zeros(len(v), bool) for v in self.value]
    return masks, [np.zeros(len(v), np.float32) for v in self.value]

  def learned_parts(self, obj_unit: int) -> list[int]:
    return [i for i, j in self.edges if j == obj_unit]

  def plan(self, edit: str, mode: str, target: int):
    """Per-SAE (mask, value) of one edit of one target concept in one mode."""
    masks, values = self.empty()
    level = 0 if edit == "inject_part" else 1
    sign = -1.0 if edit == "remove_object" else 1.0
    strength = sign * (self.config.steer.remove_strength if sign < 0
                       else self.config.steer.inject_strength)
    used = sorted(set(int(s) for s in self.step_sae[mode] if s >= 0))
    units = {s: [int(self.match[s][level][target])] for s in used}
    if mode == "hierarchical" and level == 1:
      s1 = self.level_ts[0]
      parents = self.learned_parts(int(self.match[self.level_ts[1]][1][target]))
      part_of_unit = {int(u): i for i, u in enumerate(self.match[s1][0])}
      parts = [part_of_unit[u] for u in parents if u in part_of_unit]
      for s in used:
        units[s].extend(parents if s == s1 else [int(self.match[s][0][p]) for p in parts])
    for s, us in units.items():
      masks[s][us] = True
      values[s][us] = strength * self.value[s][us]
    return masks, values

  def run(self, indices: np.ndarray, masks, values, mode: str = "hierarchical", cond=None,
          seed: int | None = None, region: float | None = None, anchors=None) -> np.ndarray:
    """Steered samples from the initial noise of pool samples `indices` (of `seed`, default
    ``steer.seed``); `cond`, `region` and `anchors` as `steered_sample`."""
    c = self.config
    x_init = initial_noise(c.steer.seed if seed is None else seed, indices, self.image_shape)
    out = steered_sample(x_init, self.params, self.sae_vars, [jnp.asarray(m) for m in masks],
                         [jnp.asarray(v) for v in values], jnp.asarray(self.step_sae[mode]), cond,
                         None if anchors is None else [jnp.asarray(a) for a in anchors],
                         model=self.model, saes=self.saes, block=c.capture.block,
                         reduce=c.capture.reduce, num_steps=c.capture.num_steps,
                         region=None if region is None else float(region))
    return np.asarray(out)


@register_subject("scenes")
class ScenesUNet:
  """The `scenes` subject (module docstring): the U-Net, its world, and its pipeline stages."""

  kind = "scenes"
  default_config = staticmethod(default_config)
  variant = staticmethod(variant)
  validate_config = staticmethod(validate_config)
  # Training the subject itself (`identi.bin.train_subject`, configs/diffusion_scenes.py).
  train = staticmethod(train_subject)
  export = staticmethod(export_subject)
  TRAINING_COLUMNS = ("step", "num_params", "coherence_generated", "coherence_train",
                      "residual_rmse_generated", "export_mb")

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.model, self.params, subject_config = load_subject(
        config.subject.checkpoint or SHIPPED_SUBJECT)
    self.scenes = scenes_lib.make_scenes(scenes_config(subject_config))

  # World.
  @property
  def level_sizes(self) -> tuple[int, ...]:
    return tuple(self.scenes.config.level_sizes)

  @property
  def adjacency(self) -> list[np.ndarray]:
    return [np.asarray(a) for a in self.scenes.hsm.adjacency]

  def sample(self, key: jax.Array, n: int) -> dict[str, Any]:
    """n rendered scenes of the world: ``{"obs": images, "a", "z"}``."""
    s = scenes_lib.sample_scenes(key, self.scenes, n)
    return {"obs": s["images"], "a": s["a"], "z": s["z"]}

  def read(self, obs) -> dict[str, Any]:
    """The concepts the scene detectors find in images."""
    return scenes_lib.detect_concepts(self.scenes, obs)

  # Model.
  @property
  def sites(self) -> tuple[str, ...]:
    return tuple(hooks.module_paths(self.model.apply, {"params": self.params},
                                    jnp.zeros((1, *self.image_shape)), jnp.zeros((1,))))

  @property
  def image_shape(self) -> tuple[int, int, int]:
    size = self.scenes.config.image_size
    return (size, size, 1)

  def capture(self, inputs, sites: tuple[str, ...]) -> dict[str, Any]:
    """Block outputs `sites` of one denoising call; inputs = (noisy images, times)."""
    x, t = inputs
    return hooks.capture(self.model.apply, {"params": self.params}, x, t, paths=tuple(sites))[1]

  def patch(self, inputs, edits) -> jax.Array:
    """The predicted noise of one denoising call with ``edits[block]`` applied."""
    x, t = inputs
    return hooks.patch(self.model.apply, {"params": self.params}, x, t, edits=edits)

  def generate(self, key: jax.Array, n: int, edits=None) -> jax.Array:
    """n DDIM samples (``capture.num_steps`` steps), with `edits` applied at every step."""
    def eps_fn(x, t, i):
      del i
      if edits:
        return hooks.patch(self.model.apply, {"params": self.params}, x, t, edits=edits)
      return self.model.apply({"params": self.params}, x, t)
    return diffusion.ddim_sample(key, eps_fn, (n, *self.image_shape), self.config.capture.num_steps)

  # Pipeline.
  def capture_cond(self, start: int, n: int):
    """The conditioning of captured trajectories start..start+n (None: unconditional)."""
    del start, n
    return None

  def capture_labels(self) -> dict[str, np.ndarray]:
    """Extra arrays saved with the captured labels."""
    return {}

  def site_names(self) -> list[str]:
    return [f"t{s}" for s in range(len(self.config.capture.timesteps))]

  def run_capture(self, workdir: str) -> dict[str, Any]:
    """Runs the trajectories and writes activation shards and labels (skipped if present)."""
    config = self.config
    c = config.capture
    if not os.path.exists(capture_lib.labels_path(workdir)):
      steps = tuple(step_indices(c.timesteps, c.num_steps))
      run = capture_fn(self.model, c.block, c.num_steps, steps)
      images, acts = [], [[] for _ in steps]
      key = jax.random.key(c.seed)
      num_batches = -(-c.num_samples // c.batch_size)
      progress = capture_lib.Progress(c.num_samples, "trajectories")
      for b in range(num_batches):
        n = min(c.batch_size, c.num_samples - b * c.batch_size)
        x0, a = run(self.params, jax.random.fold_in(key, b), (n, *self.image_shape),
                    self.capture_cond(b * c.batch_size, n))
        images.append(np.asarray(x0))
        for s in range(len(steps)):
          acts[s].append(np.asarray(reduce_block(a[s], c.reduce)))
        progress.update(min(c.num_samples, (b + 1) * c.batch_size))
      images = np.concatenate(images)
      detected = scenes_lib.detect_concepts(self.scenes, images)
      z_all = np.concatenate([np.asarray(z, np.float32) for z in detected["z"]], axis=1)
      capture_lib.write_capture(
          workdir, {name: np.concatenate(a) for name, a in zip(self.site_names(), acts)}, z_all,
          dict(images=images, coherent=detected["coherent"], **self.capture_labels(),
               **{f"a{l + 1}": a for l, a in enumerate(detected["a"])}))
    labels = capture_lib.read_labels(workdir)
    return {"samples": int(labels["images"].shape[0]),
            "coherence": float(labels["coherent"].mean()),
            "timesteps": [float(t) for t in c.timesteps],
            "steps": step_indices(c.timesteps, c.num_steps),
            "active_per_level": [float(a.sum(1).mean()) for a in capture_lib.levels_of(labels)],
            "dim": int(capture_lib.data_lib.open_source(
                os.path.join(capture_lib.capture_dir(workdir), "t0")).dim)}

  def train_saes(self, workdir: str) -> list[tuple[Any, Any, Any]]:
    """Trains (or resumes) one SAE per timestep; returns (model, variables, eval source) each."""
    a = capture_lib.levels_of(capture_lib.read_labels(workdir))
    sizes = [x.shape[1] for x in a]
    active = float(sum(x.sum(1).mean() for x in a))
    return train_saes(self.config, capture_lib.capture_dir(workdir), workdir, self.site_names(),
                      sum(sizes), active)

  def run_graph(self, workdir: str) -> dict[str, Any]:
    """Captures (or reuses), trains the timestep SAEs, scores the MCC table and the graph."""
    config = self.config
    capture = self.run_capture(workdir)
    saes = self.train_saes(workdir)
    sizes = list(self.level_sizes)
    data = [(m, v, *source_rows(src)) for m, v, src in saes]
    sites = graph_lib.site_codes(config, data, "timestep",
                                 [float(t) for t in config.capture.timesteps])
    level_ts = list(config.graph.level_timesteps)[:len(sizes)]
    result, blocks, matches, _ = graph_lib.site_graph(config, sites, level_ts, sizes,
                                                      self.adjacency, workdir)
    result = {"capture": capture, **result, "block": config.capture.block}
    io.write_json(os.path.join(workdir, graph_lib.GRAPH_FILE), result)
    result["figures"] = graph_lib.graph_figures(blocks, matches, self.adjacency, result["table"],
                                                len(sizes), workdir, "timestep", "timestep_mcc")
    images = capture_lib.read_labels(workdir)["images"]
    result["figures"].append(plots.image_grid(
        images[:64], os.path.join(workdir, "samples"),
        "DDIM samples of the subject (captured trajectories)")[0])
    eval_images = images[saes[0][2].indices]
    result["figures"].append(plots.node_image_graph(
        self.adjacency, blocks, matches, [sites.codes[s] for s in level_ts], eval_images,
        os.path.join(workdir, "concept_nodes"))[0])
    return result

  def run_steering(self, workdir: str) -> dict[str, Any]:
    """Every edit type in both modes over >= steer.samples_per_edit samples, spread over the
    edited level's concepts (the first ``steer.targets``; 0 = all); writes steering.json."""
    config = self.config
    self.run_capture(workdir)
    st = Steerer(self, workdir)
    c = config.steer
    pool_idx = np.arange(c.pool)
    base_images = np.concatenate([
        st.run(chunk, *st.empty())
        for chunk in np.array_split(pool_idx, max(1, -(-c.pool // config.capture.batch_size)))])
    base = detect(self.scenes, base_images)
    results, examples = [], {}
    for edit in EDITS:
      level = 0 if edit == "inject_part" else 1
      n_targets = edited_targets(self.scenes.config.level_sizes[level], c.targets)
      per_target = -(-c.samples_per_edit // n_targets)
      for mode in MODES:
        scores, used = [], 0
        for target in range(n_targets):
          present = base["a"][level][:, target]
          rows = np.flatnonzero(present if edit == "remove_object" else ~present)[:per_target]
          if rows.size == 0:
            continue
          images = st.run(pool_idx[rows], *st.plan(edit, mode, target), mode=mode)
          after = detect(self.scenes, images)
          before = {"a": [a[rows] for a in base["a"]], "coherent": base["coherent"][rows]}
          scores.append(score_edit(self.scenes, edit, target, before, after))
          used += rows.size
          if (edit, mode) not in examples:
            examples[(edit, mode)] = (base_images[rows[:8]], images[:8], target)
        cat = {k: np.concatenate([s[k] for s in scores]) for k in ("success", "preservation",
                                                                    "coherent")}
        results.append({"edit": edit, "mode": mode, "samples": int(used),
                        "success": float(cat["success"].mean()),
                        "preservation": float(cat["preservation"].mean()),
                        "coherence": float(cat["coherent"].mean())})
    result = {"rows": results, "t_max": float(c.t_max),
              "inject_strength": float(c.inject_strength),
              "remove_strength": float(c.remove_strength),
              "flat_timestep": float(config.capture.timesteps[c.flat_timestep]),
              "level_timesteps": [float(config.capture.timesteps[s]) for s in st.level_ts],
              "unedited_coherence": float(base["coherent"].mean())}
    io.write_json(os.path.join(workdir, STEERING_FILE), result)
    result["figure"] = plots.steering_grid(examples, os.path.join(workdir, "steering_grid"))[0]
    result["table_figure"] = plots.edit_bars(results, os.path.join(workdir, "steering"), EDITS,
                                             MODES)[0]
    return result

  @staticmethod
  def tables(stage: str, result: dict[str, Any]) -> list[tuple[list[dict], list[str]]]:
    """The rows and columns a binary prints for a stage's result."""
    if stage == "capture":
      row = dict(result, timesteps=",".join(f"{t:g}" for t in result["timesteps"]),
                 steps=",".join(map(str, result["steps"])),
                 active_per_level=",".join(f"{a:.2f}" for a in result["active_per_level"]))
      return [([row], ["samples", "dim", "timesteps", "steps", "coherence", "active_per_level"])]
    if stage == "graph":
      levels = len(result["level_timesteps"])
      rows = [dict(r, levels=f"{r['levels'][0]}->{r['levels'][1]}",
                   timesteps="->".join(f"{t:g}" for t in r["timesteps"]))
              for r in result["pairs"]]
      return [(result["table"], ["timestep", "units"] + [f"level_{l + 1}" for l in range(levels)]),
              (rows, ["levels", "timesteps", "precision", "recall", "f1", "shd", "auroc",
                      "learned_edges", "true_edges"])]
    return [(result["rows"], ["edit", "mode", "samples", "success", "preservation", "coherence"])]


