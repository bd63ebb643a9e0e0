"""Training the diffusion subject on the scenes world: `train_subject(config, workdir)`.

The subject is the U-Net of `identi.subjects.diffusion`, trained on images sampled on the fly
from `identi.subjects.scenes`. The batch of step t is `sample_scenes(fold_in(data_key, t))` and its
noise and times come from `fold_in(noise_key, t)`, so a run restored from a checkpoint continues
bit-identically on CPU. The state (step, params, EMA params, Adam state, failure record) is
replicated and the batch split over all devices (`identi.train.sharding`); the optimiser is
`identi.train.make_optimizer` (global-norm clipping, Adam, linear warm-up and final decay). The EMA
decay ramps as min(ema_decay, (1 + t) / (10 + t)), so that short runs average over recent steps.

Workdir layout, as the SAE trainer's: run.json (config), metrics.jsonl (one record per logged
step), checkpoints/<step>/ (orbax), final.json (coherence and quality of DDIM samples of the EMA
params against the training distribution), samples.{png,pdf} (training images and samples).

`export_subject(workdir, path)` ships the EMA params and the config as one file; `load_subject`
reads it back, checking its sha256. The file format (`write_export`, `read_export`) is shared with
the transformer subject of `identi.subjects.grammar_training`; each file names its kind, and each
loader refuses the other's files.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import time
from typing import Any, Callable

import flax.serialization
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from identi import io, plots
from identi.subjects.base import without_subject
from identi.errors import CheckpointError, ConfigError
from identi.subjects import diffusion
from identi.subjects.scenes import (ScenesConfig, Scenes, detect_concepts, detect_parts,
                                    make_scenes, render, sample_scenes)
from identi.train import sharding
from identi.train.checkpoint import Checkpointer
from identi.train.config import check_keys, check_variant
from identi.train.optimizer import learning_rate_schedule, make_optimizer
from identi.train.trainer import FINAL_FILE, RUN_FILE, load_run, run_steps

FIGURE_STEM = "samples"
EXPORT_MAGIC = b"IDENTI-SUBJECT-1\n"
# Kinds of exported subjects and the function that loads each.
EXPORT_LOADERS = {"diffusion_unet": "identi.subjects.scenes_training.load_subject",
                  "transformer_lm": "identi.subjects.grammar_training.load_lm_subject"}
TRAIN_COMMAND = ("python -m identi.bin.train_subject --config=configs/diffusion_scenes.py "
                 "--workdir=runs/diffusion_scenes --export=PATH")

# Config keys that may change when a run is resumed; anything else must match the saved run.
_RESUMABLE_CHANGES = ("train.log_every_steps", "checkpoint.", "sample.")

logger = logging.getLogger(__name__)


def default_subject_config() -> ml_collections.ConfigDict:
  """The schema of subject-training configs, with defaults (configs/diffusion_scenes.py)."""
  c = ml_collections.ConfigDict()
  c.scenes = ml_collections.ConfigDict(dataclasses.asdict(ScenesConfig()))

  c.model = ml_collections.ConfigDict()
  c.model.channels = (32, 64, 64)  # U-Net widths at 16x16, 8x8 and 4x4.
  c.model.num_res_blocks = 1  # Residual blocks per stage.
  c.model.mid_attention = False  # One self-attention layer at 4x4.

  c.train = ml_collections.ConfigDict()
  c.train.num_steps = 8000
  c.train.batch_size = 64
  c.train.learning_rate = 1e-3
  c.train.warmup_steps = 200  # Linear learning-rate warm-up from 0.
  c.train.decay_fraction = 0.3  # Final fraction of steps with linear decay to 0.
  c.train.b1 = 0.9
  c.train.b2 = 0.999
  c.train.grad_clip = 1.0  # Global-norm clipping; 0 disables.
  c.train.ema_decay = 0.999  # Largest EMA decay (ramped as min(decay, (1 + t) / (10 + t))).
  c.train.seed = 0
  c.train.log_every_steps = 100

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.every_steps = 500
  c.checkpoint.max_to_keep = 3
  c.checkpoint.async_save = True

  c.sample = ml_collections.ConfigDict()
  c.sample.num_steps = 50  # DDIM steps.
  c.sample.num_samples = 1024  # Samples (and training images) scored in final.json.
  # 1: stochastic (DDPM-like) steps, more coherent samples than deterministic DDIM (eta = 0) at
  # this training budget; final.json also scores eta = 0.
  c.sample.eta = 1.0
  return c


_POSITIVE = ("model.num_res_blocks", "train.num_steps", "train.batch_size", "train.learning_rate",
             "train.log_every_steps", "checkpoint.every_steps", "checkpoint.max_to_keep",
             "sample.num_steps", "sample.num_samples")
_NON_NEGATIVE = ("train.warmup_steps", "train.grad_clip", "train.seed", "sample.eta")


def validate_subject_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the key for unknown keys, wrong types and impossible values."""
  flat = check_keys(config, default_subject_config())
  check_ranges(flat, _POSITIVE, _NON_NEGATIVE)
  channels = flat["model.channels"]
  if len(channels) != 3 or not all(isinstance(c, int) and c > 0 for c in channels):
    raise ConfigError(f"config key 'model.channels' is {channels!r}; pass 3 positive widths "
                      "(16x16, 8x8, 4x4), e.g. (32, 64, 64)")
  if flat["scenes.image_size"] % 4:
    raise ConfigError(f"config key 'scenes.image_size' is {flat['scenes.image_size']}; the U-Net "
                      "halves it twice, so use a multiple of 4, e.g. 16")
  scenes_config(config).validate()


def check_ranges(flat: dict[str, Any], positive: tuple[str, ...],
                 non_negative: tuple[str, ...]) -> None:
  """ConfigError naming the key unless the `positive` keys of a flat subject config are > 0, the
  `non_negative` ones >= 0, and train.decay_fraction and train.ema_decay in their ranges."""
  for name in positive:
    if not flat[name] > 0:
      raise ConfigError(f"config key '{name}' is {flat[name]!r}; it must be > 0")
  for name in non_negative:
    if not flat[name] >= 0:
      raise ConfigError(f"config key '{name}' is {flat[name]!r}; it must be >= 0")
  if not 0 <= flat["train.decay_fraction"] <= 1:
    raise ConfigError(f"config key 'train.decay_fraction' is {flat['train.decay_fraction']!r}; "
                      "it must lie in [0, 1]")
  if not 0 <= flat["train.ema_decay"] < 1:
    raise ConfigError(f"config key 'train.ema_decay' is {flat['train.ema_decay']!r}; it must "
                      "lie in [0, 1), e.g. 0.999")


def scenes_config(config: ml_collections.ConfigDict) -> ScenesConfig:
  return ScenesConfig(**config.scenes.to_dict())


def build_model(config: ml_collections.ConfigDict) -> diffusion.UNet:
  m = config.model
  return diffusion.UNet(channels=tuple(m.channels), num_res_blocks=m.num_res_blocks,
                        mid_attention=m.mid_attention)


def image_shape(config: ml_collections.ConfigDict) -> tuple[int, int, int]:
  return (config.scenes.image_size, config.scenes.image_size, 1)


def _keys(config: ml_collections.ConfigDict) -> dict[str, jax.Array]:
  base = jax.random.key(config.train.seed)
  names = ("init", "data", "noise", "sample", "reference")
  return {name: jax.random.fold_in(base, i) for i, name in enumerate(names)}


def init_state(config: ml_collections.ConfigDict, tx: optax.GradientTransformation,
               key: jax.Array) -> dict[str, Any]:
  """The training state pytree at step 0."""
  return state_from_params(diffusion.init_params(build_model(config), key, image_shape(config)),
                           tx)


def state_from_params(params: Any, tx: optax.GradientTransformation) -> dict[str, Any]:
  """The training state pytree at step 0 of any subject with initial `params`."""
  return {
      "step": jnp.zeros((), jnp.int32),
      "params": params,
      "ema_params": jax.tree.map(jnp.copy, params),  # Own buffers: the state is donated.
      "opt_state": tx.init(params),
      "failure": jnp.zeros((), jnp.int32),
      "failure_step": jnp.full((), -1, jnp.int32),
  }


def abstract_state(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Shapes and dtypes of the training state (no computation), for restoring checkpoints."""
  tx = make_optimizer(config)
  return jax.eval_shape(lambda: init_state(config, tx, jax.random.key(0)))


def make_train_step(config: ml_collections.ConfigDict):
  """The pure training step `(state, x) -> (state, metrics)`; jit it with donation."""
  model = build_model(config)
  noise_key = _keys(config)["noise"]

  def loss_fn(params, x, step):
    return diffusion.diffusion_loss(lambda x_t, t: model.apply({"params": params}, x_t, t),
                                    jax.random.fold_in(noise_key, step), x)

  return make_step(config, loss_fn)


def make_step(config: ml_collections.ConfigDict, loss_fn: Callable[[Any, jax.Array, jax.Array],
                                                                     jax.Array]):
  """The pure training step `(state, x) -> (state, metrics)` of any subject: the gradient of
  `loss_fn(params, x, step)`, the optimiser of `make_optimizer`, the EMA ramp and the failure
  record (a step with non-finite input, loss or gradient changes nothing); jit it with donation."""
  tx = make_optimizer(config)
  lr_at = learning_rate_schedule(config)
  ema_max = config.train.ema_decay

  def step_fn(state, x):
    step = state["step"]
    loss, grads = jax.value_and_grad(loss_fn)(state["params"], x, step)
    grad_norm = optax.tree.norm(grads)
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    stepf = step.astype(jnp.float32)
    decay = jnp.minimum(ema_max, (1.0 + stepf) / (10.0 + stepf))
    ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state["ema_params"], params)

    failure = jnp.select(
        [state["failure"] > 0, ~jnp.all(jnp.isfinite(x)), ~jnp.isfinite(loss),
         ~jnp.isfinite(grad_norm)],
        [state["failure"], 1, 2, 3], 0).astype(jnp.int32)
    good = failure == 0
    updated = {"params": params, "ema_params": ema, "opt_state": opt_state}
    kept = jax.tree.map(lambda new, old: jnp.where(good, new, old), updated,
                        {k: state[k] for k in updated})
    new_state = dict(
        kept, step=jnp.where(good, step + 1, step), failure=failure,
        failure_step=jnp.where((state["failure"] == 0) & ~good, step, state["failure_step"]))
    metrics = {"loss": loss, "grad_norm": grad_norm, "learning_rate": lr_at(step),
               "ema_decay": decay}
    return new_state, metrics

  return step_fn


def training_batch(config: ml_collections.ConfigDict, scenes: Scenes, step: int) -> np.ndarray:
  """The images of training step `step`: a pure function of (train.seed, step)."""
  key = jax.random.fold_in(_keys(config)["data"], step)
  return sample_scenes(key, scenes, config.train.batch_size)["images"]


def _json_flat(config: ml_collections.ConfigDict | dict[str, Any]) -> dict[str, Any]:
  """{'section.key': value} with tuples as JSON lists, so saved and live configs compare."""
  d = config.to_dict() if isinstance(config, ml_collections.ConfigDict) else config
  out = {}
  for key, value in json.loads(json.dumps(d)).items():
    if isinstance(value, dict):
      out.update({f"{key}.{k}": v for k, v in _json_flat(value).items()})
    else:
      out[key] = value
  return out


def _check_resumable(saved: dict[str, Any], config: ml_collections.ConfigDict,
                     workdir: str) -> None:
  old, new = _json_flat(saved["config"]), _json_flat(config)
  changed = sorted(k for k in set(old) | set(new)
                   if old.get(k) != new.get(k) and not k.startswith(_RESUMABLE_CHANGES))
  if changed:
    what = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed)
    raise ConfigError(
        f"workdir {workdir} holds a run with a different config ({what}); "
        "resume with the same config or choose a new --workdir")


def config_from_schema(d: dict[str, Any], schema: ml_collections.ConfigDict,
                       validate: Callable[[ml_collections.ConfigDict], None]
                       ) -> ml_collections.ConfigDict:
  """A saved (JSON) config as a ConfigDict checked by `validate`, lists turned back into the
  schema's tuples."""
  config = ml_collections.ConfigDict()
  for section, values in d.items():
    if section not in schema:
      raise ConfigError(f"saved config has unknown section '{section}'; it was not written by "
                        "this subject's trainer")
    config[section] = ml_collections.ConfigDict(
        {k: tuple(v) if isinstance(v, list) and isinstance(schema[section].get(k), tuple) else v
         for k, v in values.items()})
  validate(config)
  return config


def config_from_json(d: dict[str, Any]) -> ml_collections.ConfigDict:
  """A saved (JSON) diffusion-subject config as a validated ConfigDict."""
  return config_from_schema(d, default_subject_config(), validate_subject_config)


def _progress_line(step, num_steps, rate, eta_s, m) -> str:
  eta = time.strftime("%H:%M:%S", time.gmtime(max(eta_s, 0)))
  return (f"step {step}/{num_steps} | {rate:,.1f} img/s | ETA {eta} | loss {m['loss']:.4g} | "
          f"grad_norm {m['grad_norm']:.3g} | lr {m['learning_rate']:.3g}")


def _prepare_workdir(workdir: str) -> str:
  if not workdir:
    raise ConfigError("workdir is empty; pass --workdir=DIR (it is created if missing)")
  workdir = os.path.abspath(workdir)
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise ConfigError(f"cannot create workdir {workdir} ({e.strerror}); pass a writable "
                      "--workdir") from e
  return workdir


def start_run(config: ml_collections.ConfigDict, workdir: str, init: Callable[..., Any],
              abstract: Callable[[ml_collections.ConfigDict], Any]) -> tuple[str, Any, Any, int]:
  """Prepares a subject training workdir: checks a saved run is resumable, writes run.json, and
  returns (workdir, checkpointer, replicated state, start step): the latest checkpoint's state,
  or `init(config, optimizer, init_key)` at step 0."""
  workdir = _prepare_workdir(workdir)
  sharding.check_batch_size(config.train.batch_size, "train.batch_size")
  saved = load_run(workdir)
  if saved is not None:
    _check_resumable(saved, config, workdir)
  if jax.process_index() == 0:
    io.write_json(os.path.join(workdir, RUN_FILE), {"config": config.to_dict()})
  repl = sharding.replicated(sharding.data_mesh())
  checkpointer = Checkpointer(workdir, max_to_keep=config.checkpoint.max_to_keep,
                              async_save=config.checkpoint.async_save)
  start = checkpointer.latest_step()
  if start is None:
    return workdir, checkpointer, jax.device_put(
        init(config, make_optimizer(config), _keys(config)["init"]), repl), 0
  target = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=repl),
                        abstract(config))
  state = checkpointer.restore(target, start)
  logger.info("resumed from checkpoint at step %d in %s", start, workdir)
  return workdir, checkpointer, state, start


def train_subject(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains the diffusion subject in `workdir` (resuming from its latest checkpoint), then scores
  DDIM samples of its EMA params.

  Args:
    config: a config from `default_subject_config()` (see configs/diffusion_scenes.py).
    workdir: output directory; created if missing.

  Returns:
    The final metrics (also written to `workdir/final.json`).
  """
  config = without_subject(config)
  validate_subject_config(config)
  workdir, checkpointer, state, start = start_run(config, workdir, init_state, abstract_state)
  lead = jax.process_index() == 0

  scenes = make_scenes(scenes_config(config))

  t = config.train
  num_params = diffusion.param_count(state["params"])
  logger.info("training the diffusion subject (%d parameters, channels %s) on %d devices, "
              "steps %d-%d", num_params, tuple(config.model.channels), jax.device_count(), start,
              t.num_steps)
  state = run_steps(state, make_train_step(config),
                    lambda step, rows: training_batch(config, scenes, step)[rows], config, start,
                    checkpointer, workdir, rate_key="images_per_s", progress_line=_progress_line)

  final = evaluate_subject(config, scenes, state["ema_params"], workdir if lead else None)
  final.update(step=int(jax.device_get(state["step"])), num_params=num_params)
  if lead:
    io.write_json(os.path.join(workdir, FINAL_FILE), final)
  return final


def quality_stats(scenes: Scenes, images: np.ndarray) -> dict[str, Any]:
  """What the scene detector reads from images, per level: coherence, concepts per image and
  presence frequency per concept; and the RMSE of the images against their re-rendered detected
  parts (0 for clean compositions of templates, so a measure of stray ink and wrong shapes)."""
  images = np.asarray(images, np.float32)
  det = detect_concepts(scenes, images)
  parts = detect_parts(scenes, images)
  redrawn = np.asarray(render(scenes, det["z"][0], parts["offsets"]))
  return {
      "coherence": float(np.mean(det["coherent"])),
      "concepts_per_image": [float(a.sum(axis=1).mean()) for a in det["a"]],
      "frequency": [a.mean(axis=0) for a in det["a"]],
      "residual_rmse": float(np.sqrt(np.mean(np.square(images - redrawn)))),
      "out_of_range": float(np.mean(np.abs(images) > 1.0 + 1e-6)),
  }


def evaluate_subject(config: ml_collections.ConfigDict, scenes: Scenes, params: Any,
                     workdir: str | None = None) -> dict[str, Any]:
  """Scores DDIM samples of `params` (at sample.eta, and coherence at eta = 0 if that differs)
  against training images, and draws both into workdir/samples.{png,pdf}."""
  keys = _keys(config)
  s = config.sample
  shape = (s.num_samples, *image_shape(config))
  # Host params: the sampler then runs on one device instead of replicated on every device.
  draw = functools.partial(diffusion.sample, build_model(config), jax.device_get(params),
                           keys["sample"], shape, s.num_steps)
  start = time.time()
  generated = np.asarray(draw(eta=float(s.eta)))
  seconds = time.time() - start
  reference = sample_scenes(keys["reference"], scenes, s.num_samples)["images"]
  gen, ref = quality_stats(scenes, generated), quality_stats(scenes, reference)
  final = {
      "coherence_generated": gen["coherence"],
      "coherence_train": ref["coherence"],
      "concepts_per_image_generated": gen["concepts_per_image"],
      "concepts_per_image_train": ref["concepts_per_image"],
      "frequency_gap": [float(np.mean(np.abs(g - r)))
                        for g, r in zip(gen["frequency"], ref["frequency"])],
      "residual_rmse_generated": gen["residual_rmse"],
      "residual_rmse_train": ref["residual_rmse"],
      "num_samples": s.num_samples,
      "ddim_steps": s.num_steps,
      "sample_seconds": seconds,
  }
  if s.eta:
    final["coherence_generated_eta0"] = quality_stats(scenes, np.asarray(draw(eta=0.0)))[
        "coherence"]
  if workdir is not None:
    final["figure"] = plots.sample_figure(reference[:64], generated[:64],
                                    os.path.join(workdir, FIGURE_STEM))[0]
  return final


def restore_latest(workdir: str, from_json: Callable[[dict[str, Any]], ml_collections.ConfigDict],
                   abstract: Callable[[ml_collections.ConfigDict], Any],
                   command: str) -> tuple[ml_collections.ConfigDict, Any]:
  """`(config, state)` of a subject workdir's latest checkpoint, its config read by `from_json`
  and its state shaped by `abstract(config)`; ConfigError naming the training `command` if the
  workdir holds no run."""
  workdir = os.path.abspath(workdir)
  saved = load_run(workdir)
  if saved is None:
    raise ConfigError(f"{workdir} holds no {RUN_FILE}, so it is not a subject training workdir; "
                      f"train first with `{command}`")
  config = from_json(saved["config"])
  repl = sharding.replicated(sharding.data_mesh())
  target = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=repl),
                        abstract(config))
  checkpointer = Checkpointer(workdir, read_only=True)
  state = checkpointer.restore(target)
  checkpointer.close()
  return config, state


def write_export(params: Any, config: dict[str, Any], kind: str, path: str,
                 step: int) -> dict[str, Any]:
  """Writes subject `params` of `kind` (a key of EXPORT_LOADERS) and their config as one file.

  The file is EXPORT_MAGIC, one JSON header line (kind, config, step, sha256 and size of the
  payload), then the payload: `flax.serialization.to_bytes(params)` (msgpack). Written
  atomically.
  """
  params = jax.device_get(params)
  payload = flax.serialization.to_bytes(params)
  header = {"format": 1, "kind": kind, "config": config, "step": int(step),
            "num_params": diffusion.param_count(params), "payload_bytes": len(payload),
            "sha256": hashlib.sha256(payload).hexdigest()}
  data = EXPORT_MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + payload
  io.write_bytes(path, data)
  return {"path": os.path.abspath(path), "bytes": len(data), "sha256": header["sha256"],
          "step": header["step"], "num_params": header["num_params"]}


def read_export(path: str, kind: str, build: Callable[[dict[str, Any]], tuple[Any, Any, Any]],
                fix: str) -> tuple[Any, Any, ml_collections.ConfigDict]:
  """Reads a file of `write_export` holding a subject of `kind`: `(model, params, config)`.

  `build(config_dict) -> (model, config, params)` makes the model, its validated config and
  parameters of the right shapes from the header. CheckpointError, ending with `fix`, for a
  missing, truncated or corrupted file; CheckpointError naming the right loader for another kind.
  """
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise CheckpointError(f"cannot read subject file {path} ({e.strerror}); {fix}") from e
  try:
    if not data.startswith(EXPORT_MAGIC):
      raise ValueError("it does not start with the identi subject header")
    header_line, _, payload = data[len(EXPORT_MAGIC):].partition(b"\n")
    header = json.loads(header_line)
    if header["kind"] != kind:
      loader = EXPORT_LOADERS.get(header["kind"])
      if loader is None:
        raise ValueError(f"it holds a subject of unknown kind {header['kind']!r}")
      raise CheckpointError(f"subject file {path} holds a {header['kind']!r} subject, not a "
                            f"{kind!r} one: load it with {loader}")
    if len(payload) != header["payload_bytes"]:
      raise ValueError(f"the payload has {len(payload)} bytes, not {header['payload_bytes']} "
                       "(truncated?)")
    if hashlib.sha256(payload).hexdigest() != header["sha256"]:
      raise ValueError("its sha256 does not match the header (corrupted)")
    model, config, target = build(header["config"])
    target = jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), target)
    params = flax.serialization.from_bytes(target, payload)
    for a, b in zip(jax.tree.leaves(target), jax.tree.leaves(params)):
      if a.shape != np.shape(b):
        raise ValueError(f"a parameter has shape {np.shape(b)}, not {a.shape} as the config says")
  except (ValueError, KeyError, TypeError, ConfigError) as e:
    raise CheckpointError(f"subject file {path} is unreadable: {e}; {fix}") from e
  return model, jax.tree.map(jnp.asarray, params), config


def export_subject(workdir: str, path: str) -> dict[str, Any]:
  """Writes the EMA params of the latest checkpoint and the config to `path` as one file
  (`write_export`, kind 'diffusion_unet')."""
  config, state = restore_latest(workdir, config_from_json, abstract_state, TRAIN_COMMAND)
  return write_export(state["ema_params"], config.to_dict(), "diffusion_unet", path,
                      int(state["step"]))


def _build_unet(config_dict: dict[str, Any]) -> tuple[diffusion.UNet, Any, Any]:
  config = config_from_json(config_dict)
  model = build_model(config)
  target = jax.eval_shape(lambda: diffusion.init_params(model, jax.random.key(0),
                                                        image_shape(config)))
  return model, config, target


def load_subject(path: str) -> tuple[diffusion.UNet, Any, ml_collections.ConfigDict]:
  """Reads an exported diffusion subject: `(model, params, config)`; CheckpointError if missing,
  corrupt or of another kind."""
  return read_export(path, "diffusion_unet", _build_unet,
                     f"re-export it, or retrain with `{TRAIN_COMMAND}`")


def subject_variant(config: ml_collections.ConfigDict,
                    arg: str | None) -> ml_collections.ConfigDict:
  """Applies a `:variant` of a subject config: '' (full run) or 'smoke' (seconds on CPU, tests)."""
  if not check_variant(arg):
    return config
  config.model.channels = (8, 8, 8)
  config.train.num_steps = 20
  config.train.batch_size = 16
  config.train.warmup_steps = 5
  config.train.log_every_steps = 10
  config.checkpoint.every_steps = 10
  config.sample.num_steps = 4
  config.sample.num_samples = 16
  return config
