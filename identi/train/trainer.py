"""SAE training: `train_and_evaluate(config, workdir)`.

The training state is one pytree (a dict): step, params, stats, opt_state, tokens_since_fired
(dead-latent counters) and a failure record. One jitted step with donated state runs data-parallel
over all devices. The batch for step t is a pure function of (data, seed, t), so a run restored
from a checkpoint continues bit-identically on CPU.

Workdir layout: run.json (config and data dimension), metrics.jsonl (one record per logged step),
checkpoints/<step>/ (orbax), final.json (final metrics, written atomically at the end).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from identi import data as data_lib
from identi import generators, io
from identi import metrics as metrics_lib
from identi import sae as sae_lib
from identi.errors import ConfigError
from identi.train import minimality, runtime, sharding
from identi.train.checkpoint import Checkpointer
from identi.train.config import (default_config, init_seed, sae_hparams, train_width,
                                 validate_config)
from identi.train.evaluation import evaluate
from identi.train.optimizer import learning_rate_schedule, make_optimizer, sparsity_schedule

#: Training sets up to this size (float32 rows) are kept on every device for the whole run.
DEVICE_ROWS_MAX_BYTES = 256 * 2**20
# Config keys that may change when a run is resumed; anything else must match the saved run.
RESUMABLE_CHANGES = ("train.log_every_steps", "checkpoint.", "eval.", "mesh.",
                     "sweep.batching")

logger = logging.getLogger(__name__)


def build_sources(config: ml_collections.ConfigDict) -> tuple[Any, Any]:
  """The (train, eval) activation sources of the config, with ground-truth latents if known."""
  if config.data.source == "superposition":
    s = config.data.superposition
    world = generators.sparse_superposition(
        jax.random.key(s.seed), s.num_samples, num_features=s.num_features, d=s.d,
        active_per_sample=s.active_per_sample, magnitude=s.magnitude, noise_std=s.noise_std)
    source = data_lib.ArraySource(world["x"], world["z"], name="superposition")
  else:
    source = data_lib.open_source(config.data.path)
  return data_lib.train_eval_split(source, config.data.num_eval, config.data.split_seed)


def build_model(config: ml_collections.ConfigDict, d_in: int):
  """The configured SAE module as it trains (`train_width` latents); its parameters are float32
  whatever sae.compute_dtype says."""
  return sae_lib.make_sae(config.sae.kind, d_in, train_width(config), **sae_hparams(config))


def abstract_state(config: ml_collections.ConfigDict, d_in: int) -> dict[str, Any]:
  """Shapes and dtypes of the training state (no computation), for restoring checkpoints."""
  model = build_model(config, d_in)
  tx = make_optimizer(config)

  def make():
    variables = model.init(jax.random.key(0), jnp.zeros((1, d_in), jnp.float32))
    return init_state(variables, tx, model.d_sae)

  return jax.eval_shape(make)


def init_state(variables, tx, d_sae: int) -> dict[str, Any]:
  """The training state pytree for SAE `variables` and optimiser `tx`, at step 0."""
  params = variables["params"]
  return {
      "step": jnp.zeros((), jnp.int32),
      "params": params,
      "stats": variables["stats"],
      "opt_state": tx.init(params),
      "tokens_since_fired": jnp.zeros((d_sae,), jnp.int32),
      "failure": jnp.zeros((), jnp.int32),
      "failure_step": jnp.full((), -1, jnp.int32),
  }


def make_train_step(model, config: ml_collections.ConfigDict):
  """The pure training step `(state, x) -> (state, metrics)`; jit it with donation."""
  tx = make_optimizer(config)
  coeff_at = sparsity_schedule(config)
  lr_at = learning_rate_schedule(config)
  normalize = config.sae.normalize_decoder
  window = config.train.dead_window_tokens

  def step_fn(state, x):
    step = state["step"]
    coeff = coeff_at(step)
    dead = metrics_lib.dead_mask(state["tokens_since_fired"], window)

    def loss_fn(params):
      (total, terms, codes), mutated = model.apply(
          {"params": params, "stats": state["stats"]}, x, sparsity_coeff=coeff, dead_mask=dead,
          train=True, method="loss", mutable=["stats"])
      return total, (terms, codes, mutated["stats"])

    (loss, (terms, codes, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state["params"])
    if normalize:
      grads = sae_lib.remove_parallel_grad(state["params"], grads)
    grad_norm = optax.tree.norm(grads)
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    if normalize:
      params = sae_lib.normalize_decoder(params)
    # A sparse decoder reports which latents fired, so the dense codes need not be formed.
    tsf = metrics_lib.update_tokens_since_fired(state["tokens_since_fired"], codes,
                                                terms.pop("fired", None))

    new_state = runtime.guarded_update(
        state, {"params": params, "stats": stats, "opt_state": opt_state,
                "tokens_since_fired": tsf}, x, loss, grad_norm)

    x_s = x * state["stats"]["input_scale"]
    variance = jnp.mean(jnp.square(x_s - jnp.mean(x_s, axis=0)))
    metrics = dict(terms, loss=loss, fvu=terms["mse"] / variance, grad_norm=grad_norm,
                   dead_fraction=jnp.mean(dead), learning_rate=lr_at(step),
                   sparsity_coeff=jnp.asarray(coeff, jnp.float32))
    return new_state, metrics

  return step_fn


def saved_config(saved: dict[str, Any]) -> ml_collections.ConfigDict:
  """The config of a saved run, with schema keys added since it was written at their defaults."""
  config = default_config().to_dict()
  for key, value in runtime.flatten_config(saved["config"]).items():
    node = config
    *parents, leaf = key.split(".")
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = value
  return ml_collections.ConfigDict(config)


def check_resumable(saved: dict[str, Any], config: ml_collections.ConfigDict, d_in: int,
                    workdir: str) -> None:
  """ConfigError unless the run saved in `workdir` has this config (`runtime.check_resumable`)
  and data dimension."""
  runtime.check_resumable(saved_config(saved), config, workdir, RESUMABLE_CHANGES)
  if saved["d_in"] != d_in:
    raise ConfigError(
        f"workdir {workdir} holds a run with a different config (data dimension "
        f"{saved['d_in']} -> {d_in}); resume with the same config or choose a new --workdir")


#: (label, metric, format) of the SAE trainer's progress line.
PROGRESS = (("loss", "loss", ".4g"), ("fvu", "fvu", ".4f"), ("l0", "l0", ".2f"),
            ("dead", "dead_fraction", ".1f%"))


def start_sae_run(config: ml_collections.ConfigDict, workdir: str, source: Any,
                  record: dict[str, Any]) -> tuple[str, Any, Any]:
  """What every SAE run does first: validates the config, creates the workdir, splits the data
  (`source`, or the configured data when None) into (train, eval), refuses a workdir that holds
  an imported SAE, another run or a sweep of other SAEs (`record['sweep']`, the names of a
  sweep's SAEs), and writes run.json (`record` plus the data width).

  Returns (absolute workdir, train source, eval source).
  """
  validate_config(config)
  workdir = runtime.prepare_workdir(workdir)
  sharding.check_batch_size(config.train.batch_size, "train.batch_size")
  sharding.check_batch_size(config.eval.batch_size, "eval.batch_size")
  if source is None:
    train_src, eval_src = build_sources(config)
  else:
    train_src, eval_src = data_lib.train_eval_split(source, config.data.num_eval,
                                                    config.data.split_seed)
  saved = runtime.load_run(workdir)
  if saved is not None and saved.get(runtime.IMPORTED_KEY):
    raise ConfigError(f"{workdir} holds an imported SAE, not a training run; train in a new "
                      "--workdir")
  if saved is not None and "sweep" in record and saved.get("sweep") not in (None, record["sweep"]):
    raise ConfigError(f"{workdir} holds a sweep of {saved['sweep']}, not of {record['sweep']}; "
                      "resume it with the same SAEs, or train this sweep in a new workdir")
  if saved is not None:
    check_resumable(saved, config, train_src.dim, workdir)
  if jax.process_index() == 0:
    io.write_json(os.path.join(workdir, runtime.RUN_FILE), {**record, "d_in": train_src.dim})
  return workdir, train_src, eval_src


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       source: Any = None) -> dict[str, Any]:
  """Trains the configured SAE in `workdir` (resuming from its latest checkpoint) and evaluates it.

  Args:
    config: a config from `identi.train.default_config()` (see configs/*.py).
    workdir: output directory; created if missing.
    source: optional activation source (e.g. `identi.data.ArraySource`) that replaces the
      configured data; it is split into train and eval sets as configured.

  Returns:
    The final metrics (also written to `workdir/final.json`).
  """
  workdir, train_src, eval_src = start_sae_run(config, workdir, source,
                                               {"config": config.to_dict()})
  d_in = train_src.dim
  lead = jax.process_index() == 0

  mesh = sharding.training_mesh(config.mesh.model)
  model = build_model(config, d_in)
  tx = make_optimizer(config)

  checkpointer = Checkpointer(workdir, max_to_keep=config.checkpoint.max_to_keep,
                              async_save=config.checkpoint.async_save)
  abstract = abstract_state(config, d_in)
  state_sharding = sharding.latent_shardings(abstract, mesh)
  target = jax.tree.map(lambda a, sh: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh),
                        abstract, state_sharding)
  state, start = checkpointer.restore_newest(target)
  if start is None:
    n_init = min(config.sae.init_sample_size, train_src.num_examples)
    init_idx = data_lib.batch_indices(train_src.num_examples, n_init, 0, config.train.seed + 1)
    variables = sae_lib.init_sae(model, jax.random.key(init_seed(config)),
                                 train_src.get(init_idx))
    state = jax.device_put(init_state(variables, tx, model.d_sae), state_sharding)
    start = 0
  else:
    logger.info("resumed from checkpoint at step %d in %s", start, workdir)

  logger.info("training %s SAE (d_in=%d, d_sae=%d) on %d devices in %d processes (mesh %s), "
              "steps %d-%d", config.sae.kind, d_in, model.d_sae, jax.device_count(),
              jax.process_count(), dict(mesh.shape), start, config.train.num_steps)
  t = config.train
  # Small training sets are read (and checked) once and kept on the devices; each step then
  # gathers its rows there. The rows, and so the run, are the same either way.
  table = None
  if train_src.num_examples * d_in * 4 <= DEVICE_ROWS_MAX_BYTES:
    table = train_src.get(np.arange(train_src.num_examples))

  def batch(step: int, rows: slice) -> np.ndarray:
    idx = data_lib.batch_indices(train_src.num_examples, t.batch_size, step, t.seed)[rows]
    return idx.astype(np.int32) if table is not None else train_src.get(idx)

  state = runtime.run_steps(
      state, make_train_step(model, config), batch, config, start, checkpointer, workdir,
      rate_key="tokens_per_s", rate_format="{:,.0f} tok/s", fields=PROGRESS, mesh=mesh,
      state_sharding=state_sharding, table=table)

  # Evaluation runs data-parallel on the gathered dictionary (the same program for any mesh).
  variables = jax.device_put({"params": state["params"], "stats": state["stats"]},
                             sharding.replicated(sharding.data_mesh()))
  if config.minimality.enabled:  # The minimal dictionary and its encoder replace the SAE.
    model, variables = minimality.run_stage(model, variables, train_src, config, workdir)
    variables = jax.device_put(variables, sharding.replicated(sharding.data_mesh()))
  final = evaluate(model, variables, eval_src, config.eval.batch_size,
                   mcc_method=config.eval.mcc_method)
  final.update(step=int(jax.device_get(state["step"])), kind=minimality.final_kind(config),
               d_in=d_in, d_sae=model.d_sae)
  if lead:
    io.write_json(os.path.join(workdir, runtime.FINAL_FILE), final)
  return final
