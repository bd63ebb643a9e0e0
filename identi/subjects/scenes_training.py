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

The prompted (text-to-image) subject is the same trainer on a config with a `prompt` section
(`default_subject_config(prompted=True)`, configs/prompted_scenes.py): each image is paired with a
prompt made from its own latents (`identi.subjects.prompts`; a share dropped to the empty prompt
for classifier-free guidance), packed after the pixels in one float row (`unpack_batch`); the
U-Net may start from an exported unconditional subject (``model.init_from``, `warm_start`), and
final.json adds prompt adherence of guided samples.

`export_subject(workdir, path)` ships the EMA params and the config as one file; `load_subject`
reads it back, checking its sha256. The file format (`identi.train.runtime.write_export`) is shared
with the transformer subject of `identi.subjects.grammar_training`; each file names its kind, and
each loader refuses the other's files. Everything else generic (the EMA step, the step loop,
resume checks) is `identi.train.runtime`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import time
from typing import Any

from flax import traverse_util
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from identi import io, plots
from identi.subjects.base import without_subject
from identi.errors import ConfigError
from identi.subjects import diffusion
from identi.subjects.prompts import PromptConfig, Vocabulary, adherence, make_prompts
from identi.subjects.scenes import (ScenesConfig, Scenes, detect_concepts, detect_parts,
                                    make_scenes, render, sample_scenes)
from identi.train import runtime
from identi.train.config import check_keys, check_variant
from identi.train.optimizer import make_optimizer

FIGURE_STEM = "samples"
TRAIN_COMMAND = ("python -m identi.bin.train_subject --config=configs/diffusion_scenes.py "
                 "--workdir=runs/diffusion_scenes --export=PATH")

# Config keys that may change when a run is resumed; anything else must match the saved run.
RESUMABLE_CHANGES = ("train.log_every_steps", "checkpoint.", "sample.", "prompt.guidance")
ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
PROMPT_STREAM = 7  # Seeds the prompts of training step t: (train.seed, PROMPT_STREAM, t).

logger = logging.getLogger(__name__)


def default_subject_config(prompted: bool = False) -> ml_collections.ConfigDict:
  """The schema of subject-training configs, with defaults (configs/diffusion_scenes.py; with
  `prompted`, the text-to-image subject of configs/prompted_scenes.py: a `prompt` section and
  `model.text_dim`)."""
  c = ml_collections.ConfigDict()
  c.scenes = ml_collections.ConfigDict(dataclasses.asdict(ScenesConfig()))

  c.model = ml_collections.ConfigDict()
  c.model.channels = (32, 64, 64)  # U-Net widths at 16x16, 8x8 and 4x4.
  c.model.num_res_blocks = 1  # Residual blocks per stage.
  c.model.mid_attention = False  # One self-attention layer at 4x4.
  if prompted:
    c.model.text_dim = 64  # Width of the prompt encoder.
    # Start from an exported unconditional subject ('' = random init; a shipped asset's name, as
    # 'diffusion_scenes', or a file path): its U-Net weights are copied, the prompt modules start
    # at zero effect (their output layers are zero-initialised), so step 0 samples as it does.
    c.model.init_from = ""
    c.prompt = ml_collections.ConfigDict(dataclasses.asdict(PromptConfig()))
    c.prompt.guidance = 3.0  # Classifier-free guidance weight of samples (1 = none).

  sections = runtime.subject_training_sections()
  c.train = sections.train
  c.checkpoint = sections.checkpoint

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
  flat = check_keys(config, default_subject_config(is_prompted(config)))
  runtime.check_ranges(flat, _POSITIVE, _NON_NEGATIVE)
  channels = flat["model.channels"]
  if len(channels) != 3 or not all(isinstance(c, int) and c > 0 for c in channels):
    raise ConfigError(f"config key 'model.channels' is {channels!r}; pass 3 positive widths "
                      "(16x16, 8x8, 4x4), e.g. (32, 64, 64)")
  if flat["scenes.image_size"] % 4:
    raise ConfigError(f"config key 'scenes.image_size' is {flat['scenes.image_size']}; the U-Net "
                      "halves it twice, so use a multiple of 4, e.g. 16")
  scenes_config(config).validate()
  if is_prompted(config):
    prompt_config(config).validate()
    if not flat["prompt.guidance"] >= 0:
      raise ConfigError(f"config key 'prompt.guidance' is {flat['prompt.guidance']!r}; give a "
                        "weight >= 0 (1 = the conditional model alone, 0 = unconditional)")
    if not flat["model.text_dim"] > 0 or flat["model.text_dim"] % 2:
      raise ConfigError(f"config key 'model.text_dim' is {flat['model.text_dim']!r}; give an "
                        "even width > 0 (two attention heads), e.g. 64")


def is_prompted(config) -> bool:
  """Whether a subject config (ConfigDict or dict) is the prompted subject's."""
  return "prompt" in config


def prompt_config(config: ml_collections.ConfigDict) -> PromptConfig:
  return PromptConfig(**{k: v for k, v in config.prompt.to_dict().items() if k != "guidance"})


def vocabulary(config: ml_collections.ConfigDict) -> Vocabulary:
  return Vocabulary(tuple(config.scenes.level_sizes))


def prompt_len(config: ml_collections.ConfigDict) -> int:
  return config.prompt.max_len if is_prompted(config) else 0


def scenes_config(config: ml_collections.ConfigDict) -> ScenesConfig:
  return ScenesConfig(**config.scenes.to_dict())


def build_model(config: ml_collections.ConfigDict) -> diffusion.UNet:
  m = config.model
  if is_prompted(config):
    return diffusion.UNet(channels=tuple(m.channels), num_res_blocks=m.num_res_blocks,
                          mid_attention=m.mid_attention, vocab_size=vocabulary(config).size,
                          text_dim=m.text_dim)
  return diffusion.UNet(channels=tuple(m.channels), num_res_blocks=m.num_res_blocks,
                        mid_attention=m.mid_attention)


def image_shape(config: ml_collections.ConfigDict) -> tuple[int, int, int]:
  return (config.scenes.image_size, config.scenes.image_size, 1)


def init_state(config: ml_collections.ConfigDict, tx: optax.GradientTransformation,
               key: jax.Array) -> dict[str, Any]:
  """The training state pytree at step 0 (with ``model.init_from``, the U-Net's weights copied
  from that unconditional subject)."""
  params = diffusion.init_params(build_model(config), key, image_shape(config), prompt_len(config))
  if is_prompted(config) and config.model.init_from:
    params = warm_start(params, init_source(config.model.init_from))
  return runtime.state_from_params(params, tx)


def init_source(init_from: str) -> str:
  """The file of ``model.init_from``: a path, or the name of a subject shipped in
  identi/subjects/assets; ConfigError naming both forms otherwise."""
  if os.path.isfile(init_from):
    return init_from
  shipped = os.path.join(ASSETS, f"{init_from}.bin")
  if os.path.isfile(shipped):
    return shipped
  raise ConfigError(f"config key 'model.init_from' is {init_from!r}: no such file and no shipped "
                    f"subject {shipped}; pass an exported subject's path, a shipped name such as "
                    "'diffusion_scenes', or '' to start from random weights")


def warm_start(params: dict[str, Any], path: str) -> dict[str, Any]:
  """`params` of a prompted U-Net with every module of the unconditional subject at `path`
  copied in (shapes must match: same channels and blocks)."""
  _, source, _ = load_subject(path)
  flat, src = traverse_util.flatten_dict(params), traverse_util.flatten_dict(source)
  for name, value in src.items():
    if name not in flat or flat[name].shape != value.shape:
      raise ConfigError(f"config key 'model.init_from' names {path}, whose weight "
                        f"{'/'.join(name)} {value.shape} has no counterpart in this model: use "
                        "the same model.channels and num_res_blocks as that subject")
    flat[name] = jnp.asarray(value, flat[name].dtype)
  return traverse_util.unflatten_dict(flat)


def abstract_state(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Shapes and dtypes of the training state (no computation), for restoring checkpoints."""
  tx = make_optimizer(config)
  return jax.eval_shape(lambda: init_state(config, tx, jax.random.key(0)))


def make_train_step(config: ml_collections.ConfigDict):
  """The pure training step `(state, x) -> (state, metrics)`; jit it with donation."""
  model = build_model(config)
  noise_key = runtime.run_keys(config.train.seed)["noise"]

  def loss_fn(params, x, step):
    if is_prompted(config):  # Rows are flattened images, then the prompt's tokens (as floats).
      x, prompt = unpack_batch(config, x)
      return diffusion.diffusion_loss(
          lambda x_t, t: model.apply({"params": params}, x_t, t, prompt),
          jax.random.fold_in(noise_key, step), x)
    return diffusion.diffusion_loss(lambda x_t, t: model.apply({"params": params}, x_t, t),
                                    jax.random.fold_in(noise_key, step), x)

  return runtime.make_ema_step(config, loss_fn)


def training_batch(config: ml_collections.ConfigDict, scenes: Scenes, step: int) -> np.ndarray:
  """The images of training step `step`: a pure function of (train.seed, step)."""
  key = jax.random.fold_in(runtime.run_keys(config.train.seed)["data"], step)
  batch = sample_scenes(key, scenes, config.train.batch_size)
  if not is_prompted(config):
    return batch["images"]
  rng = np.random.default_rng((config.train.seed, PROMPT_STREAM, step))
  prompts = make_prompts(rng, batch["a"], vocabulary(config), prompt_config(config), dropout=True)
  n = prompts.shape[0]
  return np.concatenate([batch["images"].reshape(n, -1), prompts.astype(np.float32)], axis=1)


def unpack_batch(config: ml_collections.ConfigDict, rows):
  """(images (n, H, W, 1), prompts (n, L) int32) of packed training rows."""
  shape = image_shape(config)
  size = int(np.prod(shape))
  return (rows[:, :size].reshape((-1, *shape)),
          jnp.round(rows[:, size:]).astype(jnp.int32))


def config_from_json(d: dict[str, Any]) -> ml_collections.ConfigDict:
  """A saved (JSON) diffusion-subject config as a validated ConfigDict."""
  return runtime.config_from_schema(d, default_subject_config(is_prompted(d)),
                                    validate_subject_config)


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
  workdir, checkpointer, state, start = runtime.start_run(config, workdir, init_state,
                                                         abstract_state, RESUMABLE_CHANGES)
  lead = jax.process_index() == 0

  scenes = make_scenes(scenes_config(config))

  t = config.train
  num_params = runtime.param_count(state["params"])
  logger.info("training the diffusion subject (%d parameters, channels %s) on %d devices, "
              "steps %d-%d", num_params, tuple(config.model.channels), jax.device_count(), start,
              t.num_steps)
  state = runtime.run_steps(state, make_train_step(config),
                            lambda step, rows: training_batch(config, scenes, step)[rows], config,
                            start, checkpointer, workdir, rate_key="images_per_s",
                            rate_format="{:,.1f} img/s", fields=runtime.SUBJECT_PROGRESS)

  final = evaluate_subject(config, scenes, state["ema_params"], workdir if lead else None)
  final.update(step=int(jax.device_get(state["step"])), num_params=num_params)
  if lead:
    io.write_json(os.path.join(workdir, runtime.FINAL_FILE), final)
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
  keys = runtime.run_keys(config.train.seed)
  s = config.sample
  shape = (s.num_samples, *image_shape(config))
  reference_sample = sample_scenes(keys["reference"], scenes, s.num_samples)
  reference = reference_sample["images"]
  prompted = {}
  if is_prompted(config):  # Each sample is prompted with the prompt of one reference image.
    prompts = make_prompts(np.random.default_rng((config.train.seed, PROMPT_STREAM + 1)),
                           reference_sample["a"], vocabulary(config), prompt_config(config))
    prompted = dict(prompt=jnp.asarray(prompts), guidance=float(config.prompt.guidance))
  # Host params: the sampler then runs on one device instead of replicated on every device.
  draw = functools.partial(diffusion.sample, build_model(config), jax.device_get(params),
                           keys["sample"], shape, s.num_steps, **prompted)
  start = time.time()
  generated = np.asarray(draw(eta=float(s.eta)))
  seconds = time.time() - start
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
  if prompted:
    vocab = vocabulary(config)
    final["guidance"] = prompted["guidance"]
    final["adherence"] = adherence(vocab, prompts, detect_concepts(scenes, generated)["a"])
    final["adherence_objects"] = final["adherence"]["objects"]
    final["adherence_train"] = adherence(vocab, prompts, detect_concepts(scenes, reference)["a"])
  if s.eta:
    eta0 = np.asarray(draw(eta=0.0))
    final["coherence_generated_eta0"] = quality_stats(scenes, eta0)["coherence"]
    if prompted:
      final["adherence_eta0"] = adherence(vocab, prompts, detect_concepts(scenes, eta0)["a"])
  if workdir is not None:
    final["figure"] = plots.sample_figure(reference[:64], generated[:64],
                                    os.path.join(workdir, FIGURE_STEM))[0]
  return final


def export_subject(workdir: str, path: str) -> dict[str, Any]:
  """Writes the EMA params of the latest checkpoint and the config to `path` as one file
  (`write_export`, kind 'diffusion_unet')."""
  config, state = runtime.restore_latest(workdir, config_from_json, abstract_state,
                                         TRAIN_COMMAND)
  return runtime.write_export(state["ema_params"], config.to_dict(), "diffusion_unet", path,
                      int(state["step"]))


def build_unet(config_dict: dict[str, Any]) -> tuple[diffusion.UNet, Any, Any]:
  """(model, validated config, abstract params) of a saved diffusion-subject config."""
  config = config_from_json(config_dict)
  model = build_model(config)
  target = jax.eval_shape(lambda: diffusion.init_params(model, jax.random.key(0),
                                                        image_shape(config), prompt_len(config)))
  return model, config, target


def load_subject(path: str) -> tuple[diffusion.UNet, Any, ml_collections.ConfigDict]:
  """Reads an exported diffusion subject: `(model, params, config)`; CheckpointError if missing,
  corrupt or of another kind."""
  return runtime.read_export(path, "diffusion_unet", build_unet,
                             f"re-export it, or retrain with `{TRAIN_COMMAND}`")


def subject_variant(config: ml_collections.ConfigDict,
                    arg: str | None) -> ml_collections.ConfigDict:
  """Applies a `:variant` of a subject config: '' (full run) or 'smoke' (seconds on CPU, tests)."""
  if not check_variant(arg):
    return config
  config.model.channels = (8, 8, 8)
  if is_prompted(config):
    config.model.init_from = ""  # The shipped subject's widths differ.
  config.train.num_steps = 20
  config.train.batch_size = 16
  config.train.warmup_steps = 5
  config.train.log_every_steps = 10
  config.checkpoint.every_steps = 10
  config.sample.num_steps = 4
  config.sample.num_samples = 16
  return config
