"""SAE training: `train_and_evaluate(config, workdir)`.

The training state is one pytree (a dict): step, params, stats, opt_state, tokens_since_fired
(dead-latent counters) and a failure record. One jitted step with donated state runs data-parallel
over all devices. The batch for step t is a pure function of (data, seed, t), so a run restored
from a checkpoint continues bit-identically on CPU.

Workdir layout: run.json (config and data dimension), metrics.jsonl (one record per logged step),
checkpoints/<step>/ (orbax), final.json (final metrics, written atomically at the end).
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from identi import data as data_lib
from identi import generators, io
from identi import metrics as metrics_lib
from identi import sae as sae_lib
from identi.errors import ConfigError, NonFiniteError
from identi.train import sharding
from identi.train.checkpoint import Checkpointer
from identi.train.config import default_config, sae_hparams, validate_config
from identi.train.evaluation import evaluate
from identi.train.optimizer import learning_rate_schedule, make_optimizer, sparsity_schedule

RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
FINAL_FILE = "final.json"

# Config keys that may change when a run is resumed; anything else must match the saved run.
_RESUMABLE_CHANGES = ("train.log_every_steps", "checkpoint.", "eval.")
_FAILURES = {1: "input batch", 2: "loss", 3: "gradient"}

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
  """The configured SAE module; its parameters are float32 whatever sae.compute_dtype says."""
  return sae_lib.make_sae(config.sae.kind, d_in, config.sae.d_sae, **sae_hparams(config))


def abstract_state(config: ml_collections.ConfigDict, d_in: int) -> dict[str, Any]:
  """Shapes and dtypes of the training state (no computation), for restoring checkpoints."""
  model = build_model(config, d_in)
  tx = make_optimizer(config)

  def make():
    variables = model.init(jax.random.key(0), jnp.zeros((1, d_in), jnp.float32))
    return init_state(variables, tx, config.sae.d_sae)

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

    failure = jnp.select(
        [state["failure"] > 0, ~jnp.all(jnp.isfinite(x)), ~jnp.isfinite(loss),
         ~jnp.isfinite(grad_norm)],
        [state["failure"], 1, 2, 3], 0).astype(jnp.int32)
    good = failure == 0
    updated = {"params": params, "stats": stats, "opt_state": opt_state,
               "tokens_since_fired": tsf}
    kept = jax.tree.map(lambda new, old: jnp.where(good, new, old), updated,
                        {k: state[k] for k in updated})
    new_state = dict(
        kept, step=jnp.where(good, step + 1, step), failure=failure,
        failure_step=jnp.where((state["failure"] == 0) & ~good, step, state["failure_step"]))

    x_s = x * state["stats"]["input_scale"]
    variance = jnp.mean(jnp.square(x_s - jnp.mean(x_s, axis=0)))
    metrics = dict(terms, loss=loss, fvu=terms["mse"] / variance, grad_norm=grad_norm,
                   dead_fraction=jnp.mean(dead), learning_rate=lr_at(step),
                   sparsity_coeff=jnp.asarray(coeff, jnp.float32))
    return new_state, metrics

  return step_fn


def load_run(workdir: str) -> dict[str, Any] | None:
  path = os.path.join(workdir, RUN_FILE)
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def saved_config(saved: dict[str, Any]) -> ml_collections.ConfigDict:
  """The config of a saved run, with schema keys added since it was written at their defaults."""
  config = default_config().to_dict()
  for key, value in _flat(saved["config"]).items():
    node = config
    *parents, leaf = key.split(".")
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = value
  return ml_collections.ConfigDict(config)


def _check_resumable(saved: dict[str, Any], config: ml_collections.ConfigDict, d_in: int,
                     workdir: str) -> None:
  old = _flat(saved_config(saved).to_dict())
  new = _flat(config.to_dict())
  changed = sorted(k for k in set(old) | set(new)
                   if old.get(k) != new.get(k) and not k.startswith(_RESUMABLE_CHANGES))
  if changed or saved["d_in"] != d_in:
    what = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed) or (
        f"data dimension {saved['d_in']} -> {d_in}")
    raise ConfigError(
        f"workdir {workdir} holds a run with a different config ({what}); "
        "resume with the same config or choose a new --workdir")


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def _progress_line(step, num_steps, rate_tokens, eta_s, m) -> str:
  eta = time.strftime("%H:%M:%S", time.gmtime(max(eta_s, 0)))
  return (f"step {step}/{num_steps} | {rate_tokens:,.0f} tok/s | ETA {eta} | "
          f"loss {m['loss']:.4g} | fvu {m['fvu']:.4f} | l0 {m['l0']:.2f} | "
          f"dead {100 * m['dead_fraction']:.1f}%")


def raise_failure(state, checkpointer: Checkpointer) -> None:
  failure, failure_step = (int(v) for v in jax.device_get(
      (state["failure"], state["failure_step"])))
  if failure == 0:
    return
  checkpointer.wait()
  last = checkpointer.latest_step()
  kept = (f"the last good checkpoint (step {last}) is intact" if last is not None
          else "no checkpoint was written")
  raise NonFiniteError(
      f"non-finite {_FAILURES[failure]} (NaN or Inf) at step {failure_step}; training stopped "
      f"and {kept}; check the data for NaN/Inf or lower train.learning_rate")


def run_steps(state, train_step, batch_fn, config: ml_collections.ConfigDict, start: int,
              checkpointer: Checkpointer, workdir: str, *, rate_key: str, progress_line) -> Any:
  """The data-parallel step loop shared by every identi trainer; returns the final state.

  Jits `train_step(state, batch) -> (state, metrics)` with donated, replicated state; feeds
  `batch_fn(step, rows)`, this process's rows (a slice) of the global batch of each step; every `train.log_every_steps` appends
  the metrics and `rate_key` (items/s) to metrics.jsonl (records a killed run wrote after `start`
  are dropped first) and logs `progress_line(step, num_steps, rate, eta_s, metrics)`; checkpoints
  every `checkpoint.every_steps` and at the end; raises the failure the state records.
  """
  lead = jax.process_index() == 0
  metrics_path = os.path.join(workdir, METRICS_FILE)
  if lead:
    # Drop records a killed run logged after its last checkpoint; they are about to be redone.
    io.write_jsonl(metrics_path, [r for r in io.read_jsonl(metrics_path) if r["step"] <= start])
  mesh = sharding.data_mesh()
  repl, batch_sharding = sharding.replicated(mesh), sharding.batch_sharded(mesh)
  step_fn = jax.jit(train_step, in_shardings=(repl, batch_sharding), out_shardings=(repl, repl),
                    donate_argnums=0)
  t = config.train
  rows = sharding.local_rows(t.batch_size)
  t_last, step_last = time.time(), start
  for step in range(start, t.num_steps):
    x = sharding.make_global_batch(batch_fn(step, rows), batch_sharding, t.batch_size)
    state, metrics = step_fn(state, x)
    done = step + 1
    if done % t.log_every_steps == 0 or done == t.num_steps:
      m = {k: float(v) for k, v in jax.device_get(metrics).items()}
      raise_failure(state, checkpointer)
      now = time.time()
      rate = (done - step_last) * t.batch_size / max(now - t_last, 1e-9)
      eta = (t.num_steps - done) * t.batch_size / max(rate, 1e-9)
      t_last, step_last = now, done
      if lead:
        io.append_jsonl(metrics_path, dict(m, step=done, **{rate_key: rate}))
        logger.info("%s", progress_line(done, t.num_steps, rate, eta, m))
    if done % config.checkpoint.every_steps == 0 or done == t.num_steps:
      raise_failure(state, checkpointer)
      # Save a copy: the live state's buffers are donated to the next step while orbax writes.
      checkpointer.save(done, jax.tree.map(jnp.copy, state))
  raise_failure(state, checkpointer)
  checkpointer.close()
  return state


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
  validate_config(config)
  if not workdir:
    raise ConfigError("workdir is empty; pass --workdir=DIR (it is created if missing)")
  workdir = os.path.abspath(workdir)
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise ConfigError(f"cannot create workdir {workdir} ({e.strerror}); pass a writable "
                      "--workdir") from e
  sharding.check_batch_size(config.train.batch_size, "train.batch_size")
  sharding.check_batch_size(config.eval.batch_size, "eval.batch_size")

  if source is None:
    train_src, eval_src = build_sources(config)
  else:
    train_src, eval_src = data_lib.train_eval_split(source, config.data.num_eval,
                                                    config.data.split_seed)
  d_in = train_src.dim
  lead = jax.process_index() == 0
  saved = load_run(workdir)
  if saved is not None:
    _check_resumable(saved, config, d_in, workdir)
  if lead:
    io.write_json(os.path.join(workdir, RUN_FILE), {"config": config.to_dict(), "d_in": d_in})

  repl = sharding.replicated(sharding.data_mesh())
  model = build_model(config, d_in)
  tx = make_optimizer(config)

  checkpointer = Checkpointer(workdir, max_to_keep=config.checkpoint.max_to_keep,
                              async_save=config.checkpoint.async_save)
  start = checkpointer.latest_step()
  if start is None:
    n_init = min(config.sae.init_sample_size, train_src.num_examples)
    init_idx = data_lib.batch_indices(train_src.num_examples, n_init, 0, config.train.seed + 1)
    variables = sae_lib.init_sae(model, jax.random.key(config.train.seed),
                                 train_src.get(init_idx))
    state = jax.device_put(init_state(variables, tx, config.sae.d_sae), repl)
    start = 0
  else:
    target = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=repl),
                          abstract_state(config, d_in))
    state = checkpointer.restore(target, start)
    logger.info("resumed from checkpoint at step %d in %s", start, workdir)

  logger.info("training %s SAE (d_in=%d, d_sae=%d) on %d devices in %d processes, steps %d-%d",
               config.sae.kind, d_in, config.sae.d_sae, jax.device_count(), jax.process_count(),
               start, config.train.num_steps)
  t = config.train
  state = run_steps(
      state, make_train_step(model, config),
      lambda step, rows: train_src.get(
          data_lib.batch_indices(train_src.num_examples, t.batch_size, step, t.seed)[rows]),
      config, start, checkpointer, workdir, rate_key="tokens_per_s",
      progress_line=_progress_line)

  variables = {"params": state["params"], "stats": state["stats"]}
  final = evaluate(model, variables, eval_src, config.eval.batch_size,
                   mcc_method=config.eval.mcc_method)
  final.update(step=int(jax.device_get(state["step"])), kind=config.sae.kind,
               d_in=d_in, d_sae=config.sae.d_sae)
  if lead:
    io.write_json(os.path.join(workdir, FINAL_FILE), final)
  return final
