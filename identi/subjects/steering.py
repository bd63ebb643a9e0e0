"""Steering a diffusion subject during sampling with its timestep SAEs (issue 6, step 5).

At every DDIM step at or below ``steer.t_max``, the output of the captured U-Net block is encoded by
a timestep SAE, its codes are edited, decoded, and the SAE's reconstruction error is added back
(`identi.steer.steer` inside `identi.hooks.patch`, through `identi.hooks.edit_spatial` so that
SAEs on pooled blocks steer too: the change of the pooled row is added at every position);
sampling then continues from the edited prediction. Every edited run starts from the same initial
noise as an unedited run, so each sample has its own control, and DDIM (eta = 0) is deterministic.

Why a window of steps and not one timestep: a concept is decided while the image is still noisy.
Transplanting a whole block output from a run that has a part into one that lacks it, at the
steps with t <= 0.12 only, makes the part appear in 18 % of samples (`up_1`; 0.5 % for `mid`),
against 99 % over the whole trajectory (`paper/block_transplant.py`, README). Edits therefore
run from ``t_max`` to the end, each step through the SAE of the studied timestep nearest it
(hierarchical) or through one SAE (flat).

Edits (targets: every part or object of the world; samples drawn from a pool of unedited runs
where the target is absent for injections and present for removals); a unit's strength is a
multiple of its median active code on the held-out rows:

- ``inject_part``: the part's unit is raised to ``inject_strength`` x its median code.
- ``remove_object``: the object's unit (and, hierarchically, its parts' units) is set to
  -``remove_strength`` x its median code (setting it to 0 removes the object in about a third of
  the samples only: the reconstruction error still carries it).
- ``inject_object``: the object's unit (and, hierarchically, its parts' units) is raised as for a
  part.

Modes: ``hierarchical`` edits, at each step, the units of the nearest timestep's SAE that MCC
matching assigns to the target concept, and for an object also its parts as the LEARNED concept
graph gives them (``graph.json`` edges into the object's unit of the level-2 SAE; their units in
the level-1 SAE, and the parts those units match in the other SAEs); ``flat`` edits only the unit
of one SAE (``steer.flat_timestep``, used at every step of the window) that best matches the
target concept, without the graph. Units are identified with concepts by MCC matching of the SAE
encoder's codes on the held-out rows.

Scores, by the scene detectors on the finished images: success (the target present after an
injection, absent after a removal), preservation (the fraction of the other concepts of levels 1
and 2, outside the target and its parts, whose presence is unchanged from the unedited run) and
coherence (the fraction of edited images without fragments).
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
from identi.subjects import diffusion, scenes as scenes_lib
from identi.subjects.experiment import (GRAPH_FILE, _eval_data, capture_subject, level_slices,
                                        load_labels, step_indices, subject_path,
                                        train_timesteps, validate_subject_experiment_config)
from identi.subjects.training import load_subject, scenes_config

STEERING_FILE = "steering.json"
EDITS = ("inject_part", "remove_object", "inject_object")
MODES = ("hierarchical", "flat")


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


@functools.partial(jax.jit, static_argnames=("model", "saes", "block", "reduce", "num_steps"))
def _sample(x_init, params, sae_vars, masks, values, step_sae, *, model, saes, block: str,
            reduce: str, num_steps: int):
  """DDIM from x_init with the block's output steered at step i by SAE step_sae[i] (-1: none);
  the SAEs read the block reduced by `reduce` (hooks.edit_spatial maps the edit back)."""

  def eps_fn(x, t, i):
    s_i = step_sae[i]

    def edit_rows(rows):
      out = rows
      for s, sae in enumerate(saes):
        steered = steer.steer(sae, sae_vars[s], rows,
                              functools.partial(edit_codes, mask=masks[s], value=values[s]))
        out = jnp.where(s_i == s, steered, out)
      return out

    def edit_block(act):
      return hooks.edit_spatial(act, reduce, edit_rows) if act.ndim == 4 else edit_rows(act)

    return hooks.patch(model.apply, {"params": params}, x, t, path=block, edit_fn=edit_block)

  return diffusion.ddim_sample(None, eps_fn, x_init.shape, num_steps, x_init=x_init)


class _Steerer:
  """Everything a steered run needs: subject, SAEs, unit matching and code values."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str):
    self.config = config
    self.model, self.params, subject_config = load_subject(subject_path(config))
    self.scenes = scenes_lib.make_scenes(scenes_config(subject_config))
    saes = train_timesteps(config, workdir)
    self.saes = tuple(m for m, _, _ in saes)
    self.sae_vars = [jax.tree.map(jnp.asarray, v) for _, v, _ in saes]
    sizes = list(self.scenes.config.level_sizes)
    self.slices = level_slices(sizes)
    self.match, self.value = [], []
    for model, variables, source in saes:
      x, z = _eval_data(source)
      codes = np.asarray(model.apply(variables, x, method="encode"))
      self.match.append([mcc(z[:, sl], codes).matching for sl in self.slices])
      pos = np.where(codes > 0, codes, np.nan)
      self.value.append(np.nan_to_num(np.nanmedian(pos, axis=0), nan=0.0).astype(np.float32))
    path = os.path.join(workdir, GRAPH_FILE)
    if not os.path.exists(path):
      raise DataError(f"no {path}; run `python -m identi.bin.concept_graph --config=... "
                      f"--workdir={workdir}` first (steering uses the learned graph)")
    with open(path, encoding="utf-8") as f:
      graph = json.load(f)
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

  def run(self, indices: np.ndarray, masks, values, mode: str = "hierarchical") -> np.ndarray:
    c = self.config
    x_init = initial_noise(c.steer.seed, indices, self.image_shape)
    out = _sample(x_init, self.params, self.sae_vars, [jnp.asarray(m) for m in masks],
                  [jnp.asarray(v) for v in values], jnp.asarray(self.step_sae[mode]),
                  model=self.model, saes=self.saes, block=c.capture.block,
                  reduce=c.capture.reduce, num_steps=c.capture.num_steps)
    return np.asarray(out)


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
  model, params, subject_config = load_subject(subject_path(config))
  scenes = scenes_lib.make_scenes(scenes_config(subject_config))
  size = scenes.config.image_size
  x_init = initial_noise(config.steer.seed, np.arange(pool), (size, size, 1))
  base = diffusion.ddim_sample(None, lambda x, t, i: model.apply({"params": params}, x, t),
                               x_init.shape, config.capture.num_steps, x_init=x_init)
  a1 = _detect(scenes, np.asarray(base))["a"][0]
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
        rates.append(float(_detect(scenes, np.asarray(out))["a"][0][:, p].mean()))
      rows.append({"block": block, "t_lo": float(lo), "t_hi": float(hi),
                   "appears": float(np.mean(rates)) if rates else float("nan"),
                   "parts": len(rates)})
  return rows


def _detect(scenes, images) -> dict[str, Any]:
  d = scenes_lib.detect_concepts(scenes, images)
  return {"a": [np.asarray(a) for a in d["a"]], "coherent": np.asarray(d["coherent"])}


def _score(scenes, edit: str, target: int, before, after) -> dict[str, np.ndarray]:
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


def run_subject_steering(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Every edit type in both modes over >= steer.samples_per_edit samples; writes steering.json."""
  validate_subject_experiment_config(config)
  workdir = os.path.abspath(workdir)
  capture_subject(config, workdir)
  st = _Steerer(config, workdir)
  c = config.steer
  pool_idx = np.arange(c.pool)
  base_images = np.concatenate([
      st.run(chunk, *st.empty())
      for chunk in np.array_split(pool_idx, max(1, -(-c.pool // config.capture.batch_size)))])
  base = _detect(st.scenes, base_images)
  results, examples = [], {}
  for edit in EDITS:
    level = 0 if edit == "inject_part" else 1
    n_targets = st.scenes.config.level_sizes[level]
    per_target = -(-c.samples_per_edit // n_targets)
    for mode in MODES:
      scores, used = [], 0
      for target in range(n_targets):
        present = base["a"][level][:, target]
        rows = np.flatnonzero(present if edit == "remove_object" else ~present)[:per_target]
        if rows.size == 0:
          continue
        images = st.run(pool_idx[rows], *st.plan(edit, mode, target), mode=mode)
        after = _detect(st.scenes, images)
        before = {"a": [a[rows] for a in base["a"]], "coherent": base["coherent"][rows]}
        scores.append(_score(st.scenes, edit, target, before, after))
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
  result["figure"] = steering_grid(examples, os.path.join(workdir, "steering_grid"))[0]
  result["table_figure"] = steering_bars(results, os.path.join(workdir, "steering"))[0]
  return result


def steering_bars(rows: list[dict[str, Any]], stem: str) -> list[str]:
  """Success, preservation and coherence of every edit (groups) and mode (bars)."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  metrics = ("success", "preservation", "coherence")
  fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2), sharey=True)
  x = np.arange(len(EDITS))
  for ax, metric in zip(axes, metrics):
    for m, mode in enumerate(MODES):
      vals = [next((r[metric] for r in rows if r["edit"] == e and r["mode"] == mode), np.nan)
              for e in EDITS]
      bars = ax.bar(x + (m - 0.5) * 0.38, vals, 0.38, label=mode)
      ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(x, [e.replace("_", " ") for e in EDITS], fontsize=8)
    ax.set_ylim(0, 1.12)
    ax.set_title(metric)
  axes[0].legend(fontsize=8, loc="upper left")
  fig.tight_layout()
  return save_figure(fig, stem)


def steering_grid(examples, stem: str) -> list[str]:
  """Before/after images of the first samples of every edit and mode."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  keys = sorted(examples)
  cols = 8
  fig, axes = plt.subplots(2 * len(keys), cols, figsize=(cols * 0.9, 2 * len(keys) * 0.95),
                           squeeze=False)
  for r, key in enumerate(keys):
    before, after, target = examples[key]
    for row, imgs, tag in ((2 * r, before, "before"), (2 * r + 1, after, "after")):
      for j in range(cols):
        ax = axes[row, j]
        ax.axis("off")
        if j < len(imgs):
          ax.imshow(imgs[j, ..., 0], cmap="gray", vmin=-1, vmax=1)
      axes[row, 0].set_title(f"{key[0]} #{target} ({key[1]}): {tag}", fontsize=7, loc="left")
  fig.tight_layout()
  return save_figure(fig, stem)
