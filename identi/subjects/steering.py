"""Steering a diffusion subject during sampling with its timestep SAEs (issue 6, step 5).

At every DDIM step whose time lies within ``steer.window`` of a studied timestep, the output of
the captured U-Net block is encoded by that timestep's SAE, its codes are edited, decoded, and the
SAE's reconstruction error is added back (`identi.steer.steer` inside `identi.hooks.patch`);
sampling then continues from the edited prediction. Every edited run starts from the same initial
noise as an unedited run, so each sample has its own control, and DDIM (eta = 0) is
deterministic.

Edits (targets: every part or object of the world; samples drawn from a pool of unedited runs
where the target is absent for injections and present for removals):

- ``inject_part``: the part's unit is raised to its median active code.
- ``remove_object``: the object's unit and the units of its parts are set to 0.
- ``inject_object``: the object's unit and its parts' units are raised to their median codes.

Modes: ``hierarchical`` edits each concept at the SAE of its own level's timestep
(``graph.level_timesteps``) and finds an object's parts through the LEARNED concept graph
(``graph.json`` edges into the object's unit); ``flat`` edits only the unit of one SAE
(``steer.flat_timestep``) that best matches the target concept, without the graph. Units are
identified with concepts by MCC matching of the SAE encoder's codes on the held-out rows.

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


@functools.partial(jax.jit, static_argnames=("model", "saes", "block", "num_steps"))
def _sample(x_init, params, sae_vars, masks, values, ablate, times, window, *, model, saes,
            block: str, num_steps: int):
  """DDIM from x_init with the block's output steered by each timestep's SAE in its window."""

  def eps_fn(x, t, i):
    del i

    def edit_block(act):
      flat = act.reshape(act.shape[0], -1)
      for s, sae in enumerate(saes):
        def edit_fn(codes, s=s):
          raised = jnp.where(masks[s], jnp.maximum(codes, values[s]), codes)
          return jnp.where(ablate[s], 0.0, raised)
        steered = steer.steer(sae, sae_vars[s], flat, edit_fn)
        flat = jnp.where(jnp.abs(t - times[s]) <= window, steered, flat)
      return flat.reshape(act.shape)

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
    self.times = jnp.asarray([float(t) for t in config.capture.timesteps])
    self.steps = step_indices(config.capture.timesteps, config.capture.num_steps)
    size = self.scenes.config.image_size
    self.image_shape = (size, size, 1)

  def empty(self):
    shapes = [len(v) for v in self.value]
    return [np.zeros(n, bool) for n in shapes], [np.zeros(n, bool) for n in shapes]

  def learned_parts(self, obj_unit: int) -> list[int]:
    return [i for i, j in self.edges if j == obj_unit]

  def plan(self, edit: str, mode: str, target: int):
    """Per-timestep (raise mask, ablate mask) of one edit of one target concept."""
    raise_, ablate = self.empty()
    level = 0 if edit == "inject_part" else 1
    s = self.level_ts[level] if mode == "hierarchical" else self.config.steer.flat_timestep
    unit = int(self.match[s][level][target])
    units = {s: [unit]}
    if mode == "hierarchical" and level == 1:
      s1 = self.level_ts[0]
      # The learned graph links level-2 units (of the level-2 SAE) to level-1 units.
      units.setdefault(s1, []).extend(self.learned_parts(unit))
    for s, us in units.items():
      (ablate if edit == "remove_object" else raise_)[s][us] = True
    return raise_, ablate

  def run(self, indices: np.ndarray, raise_, ablate) -> np.ndarray:
    c = self.config
    x_init = initial_noise(c.steer.seed, indices, self.image_shape)
    values = [jnp.asarray(v) for v in self.value]
    out = _sample(x_init, self.params, self.sae_vars, [jnp.asarray(m) for m in raise_], values,
                  [jnp.asarray(m) for m in ablate], self.times, float(c.steer.window),
                  model=self.model, saes=self.saes, block=c.capture.block,
                  num_steps=c.capture.num_steps)
    return np.asarray(out)


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
        images = st.run(pool_idx[rows], *st.plan(edit, mode, target))
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
  result = {"rows": results, "window": float(c.window),
            "flat_timestep": float(config.capture.timesteps[c.flat_timestep]),
            "level_timesteps": [float(config.capture.timesteps[s]) for s in st.level_ts],
            "unedited_coherence": float(base["coherent"].mean())}
  io.write_json(os.path.join(workdir, STEERING_FILE), result)
  result["figure"] = steering_grid(examples, os.path.join(workdir, "steering_grid"))[0]
  return result


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
