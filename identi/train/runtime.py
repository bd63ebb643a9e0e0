"""The one training runtime of identi: what the SAE trainer and every subject trainer share.

- Workdir files: ``run.json`` (the config, checked on resume), ``metrics.jsonl`` (one record per
  logged step), ``checkpoints/`` (orbax), ``final.json``.
- `start_run` prepares a workdir and returns the state to train from: the latest checkpoint's, or
  a fresh one; `check_resumable` refuses to resume under a different config.
- `guarded_update` is the non-finite guard every step uses: a step whose input, loss or gradient
  is not finite changes nothing and is recorded in the state, and `raise_failure` reports it at the
  next log or checkpoint boundary (no per-step host synchronisation).
- `make_ema_step` is the step of the subject trainers: gradient, optimiser, EMA of the parameters
  (ramped), the guard.
- `run_steps` is the data-parallel step loop: jit with donated replicated state, metrics JSONL,
  a progress line with rate and ETA, checkpoints.
- `write_export` / `read_export`: the file format of a trained subject (a magic line, one JSON
  header line, the msgpack parameters), `restore_latest` reads a workdir's latest checkpoint.
"""

from __future__ import annotations

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

from identi import io
from identi.errors import CheckpointError, ConfigError, NonFiniteError
from identi.train import sharding
from identi.train.checkpoint import Checkpointer
from identi.train.optimizer import learning_rate_schedule, make_optimizer

RUN_FILE = "run.json"
#: run.json key of a workdir that holds an SAE imported from another toolkit (`identi.formats`).
IMPORTED_KEY = "imported"
METRICS_FILE = "metrics.jsonl"
FINAL_FILE = "final.json"
EXPORT_MAGIC = b"IDENTI-SUBJECT-1\n"
FAILURES = {1: "input batch", 2: "loss", 3: "gradient"}
#: Kinds of exported subjects and the function that loads each.
EXPORT_LOADERS = {"diffusion_unet": "identi.subjects.scenes_training.load_subject",
                  "transformer_lm": "identi.subjects.grammar_training.load_lm_subject"}
#: The named PRNG streams of a subject trainer, derived from train.seed in this order.
KEY_NAMES = ("init", "data", "noise", "sample", "reference")

logger = logging.getLogger("identi.train")


# Workdirs and configs.

def prepare_workdir(workdir: str) -> str:
  """The absolute `workdir`, created if missing; ConfigError if it is empty or not writable."""
  if not workdir:
    raise ConfigError("workdir is empty; pass --workdir=DIR (it is created if missing)")
  workdir = os.path.abspath(workdir)
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise ConfigError(f"cannot create workdir {workdir} ({e.strerror}); pass a writable "
                      "--workdir") from e
  return workdir


def load_run(workdir: str) -> dict[str, Any] | None:
  """The ``run.json`` of `workdir`, or None when there is none."""
  path = os.path.join(workdir, RUN_FILE)
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def flatten_config(config: ml_collections.ConfigDict | dict[str, Any]) -> dict[str, Any]:
  """{'section.key': value} with tuples as JSON lists, so saved and live configs compare."""
  d = config.to_dict() if isinstance(config, ml_collections.ConfigDict) else config
  out = {}
  for key, value in json.loads(json.dumps(d)).items():
    if isinstance(value, dict):
      out.update({f"{key}.{k}": v for k, v in flatten_config(value).items()})
    else:
      out[key] = value
  return out


def check_resumable(saved: dict[str, Any] | ml_collections.ConfigDict,
                    config: ml_collections.ConfigDict, workdir: str,
                    may_change: tuple[str, ...]) -> None:
  """ConfigError naming every differing key unless `config` equals the `saved` config of the run
  in `workdir`, up to keys under the prefixes `may_change` (logging, checkpoints, evaluation)."""
  old, new = flatten_config(saved), flatten_config(config)
  changed = sorted(k for k in set(old) | set(new)
                   if old.get(k) != new.get(k) and not k.startswith(may_change))
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


def subject_training_sections() -> ml_collections.ConfigDict:
  """The 'train' and 'checkpoint' sections of subject-training configs, with defaults."""
  c = ml_collections.ConfigDict()
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
  return c


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


def run_keys(seed: int) -> dict[str, jax.Array]:
  """The named PRNG keys (`KEY_NAMES`) of a subject trainer with ``train.seed`` `seed`."""
  base = jax.random.key(seed)
  return {name: jax.random.fold_in(base, i) for i, name in enumerate(KEY_NAMES)}


def param_count(params: Any) -> int:
  """Number of scalar parameters in a pytree."""
  return sum(int(np.size(a)) for a in jax.tree.leaves(params))


# States and steps.

def state_from_params(params: Any, tx: optax.GradientTransformation) -> dict[str, Any]:
  """The training state pytree at step 0 of a subject trainer with initial `params`."""
  return {
      "step": jnp.zeros((), jnp.int32),
      "params": params,
      "ema_params": jax.tree.map(jnp.copy, params),  # Own buffers: the state is donated.
      "opt_state": tx.init(params),
      "failure": jnp.zeros((), jnp.int32),
      "failure_step": jnp.full((), -1, jnp.int32),
  }


def guarded_update(state: dict[str, Any], updated: dict[str, Any], x: jax.Array,
                   loss: jax.Array, grad_norm: jax.Array) -> dict[str, Any]:
  """The next state: `updated` (and step + 1) if the input `x`, `loss` and `grad_norm` are
  finite and no earlier step failed; else the old entries, with the first failure (`FAILURES`)
  and its step recorded."""
  step = state["step"]
  failure = jnp.select(
      [state["failure"] > 0, ~jnp.all(jnp.isfinite(x)), ~jnp.isfinite(loss),
       ~jnp.isfinite(grad_norm)],
      [state["failure"], 1, 2, 3], 0).astype(jnp.int32)
  good = failure == 0
  # A cond, not an element-wise select: the select reads the old entries after the new ones are
  # written into the donated buffers, which makes XLA copy the whole state first (under vmap, in
  # a sweep, the cond becomes that select again).
  kept = jax.lax.cond(good, lambda: dict(updated), lambda: {k: state[k] for k in updated})
  return dict(
      kept, step=jnp.where(good, step + 1, step), failure=failure,
      failure_step=jnp.where((state["failure"] == 0) & ~good, step, state["failure_step"]))


def make_ema_step(config: ml_collections.ConfigDict,
                  loss_fn: Callable[[Any, jax.Array, jax.Array], jax.Array]):
  """The pure training step `(state, x) -> (state, metrics)` of a subject trainer: the gradient
  of `loss_fn(params, x, step)`, the optimiser of `make_optimizer`, the EMA ramp and
  `guarded_update`; jit it with donation."""
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
    new_state = guarded_update(state, {"params": params, "ema_params": ema,
                                       "opt_state": opt_state}, x, loss, grad_norm)
    metrics = {"loss": loss, "grad_norm": grad_norm, "learning_rate": lr_at(step),
               "ema_decay": decay}
    return new_state, metrics

  return step_fn


def raise_failure(state, checkpointer: Checkpointer) -> None:
  """NonFiniteError naming the failure and its step if the state records one (the last good
  checkpoint is waited for and named)."""
  failures, steps = (np.atleast_1d(np.asarray(v)) for v in jax.device_get(
      (state["failure"], state["failure_step"])))
  if not failures.any():
    return
  member = int(np.argmax(failures > 0))  # A stacked (sweep) state: the first failed SAE.
  failure, failure_step = int(failures[member]), int(steps[member])
  which = f"SAE {member} of the sweep: " if failures.size > 1 else ""
  checkpointer.wait()
  last = checkpointer.latest_step()
  kept = (f"the last good checkpoint (step {last}) is intact" if last is not None
          else "no checkpoint was written")
  raise NonFiniteError(
      f"{which}non-finite {FAILURES[failure]} (NaN or Inf) at step {failure_step}; training stopped "
      f"and {kept}; check the data for NaN/Inf or lower train.learning_rate")


# Runs.

def start_run(config: ml_collections.ConfigDict, workdir: str, init: Callable[..., Any],
              abstract: Callable[[ml_collections.ConfigDict], Any],
              may_change: tuple[str, ...]) -> tuple[str, Any, Any, int]:
  """Prepares a subject training workdir: checks a saved run is resumable (`check_resumable`),
  writes run.json, and returns (workdir, checkpointer, replicated state, start step): the latest
  checkpoint's state, or `init(config, optimizer, init_key)` at step 0."""
  workdir = prepare_workdir(workdir)
  sharding.check_batch_size(config.train.batch_size, "train.batch_size")
  saved = load_run(workdir)
  if saved is not None:
    check_resumable(saved["config"], config, workdir, may_change)
  if jax.process_index() == 0:
    io.write_json(os.path.join(workdir, RUN_FILE), {"config": config.to_dict()})
  repl = sharding.replicated(sharding.data_mesh())
  checkpointer = Checkpointer(workdir, max_to_keep=config.checkpoint.max_to_keep,
                              async_save=config.checkpoint.async_save)
  target = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=repl),
                        abstract(config))
  state, start = checkpointer.restore_newest(target)
  if start is None:
    return workdir, checkpointer, jax.device_put(
        init(config, make_optimizer(config), run_keys(config.train.seed)["init"]), repl), 0
  logger.info("resumed from checkpoint at step %d in %s", start, workdir)
  return workdir, checkpointer, state, start


#: (label, metric, format) of the progress line of the subject trainers.
SUBJECT_PROGRESS = (("loss", "loss", ".4g"), ("grad_norm", "grad_norm", ".3g"),
                    ("lr", "learning_rate", ".3g"))


def progress_line(step: int, num_steps: int, rate: str, eta_s: float, metrics: dict[str, float],
                  fields: tuple[tuple[str, str, str], ...]) -> str:
  """``step S/N | RATE | ETA hh:mm:ss | label value | ...`` for the (label, metric, format)
  `fields` of `metrics` (a format ending in '%' shows 100 x the value)."""
  eta = time.strftime("%H:%M:%S", time.gmtime(max(eta_s, 0)))
  parts = [f"step {step}/{num_steps}", rate, f"ETA {eta}"]
  for label, name, fmt in fields:
    if fmt.endswith("%"):
      parts.append(f"{label} {100 * metrics[name]:{fmt[:-1]}}%")
    else:
      parts.append(f"{label} {metrics[name]:{fmt}}")
  return " | ".join(parts)


def scalar_or_list(value) -> float | list[float]:
  """A metric as JSON: a float, or one float per SAE for a stacked (sweep) step's metrics."""
  value = np.asarray(value)
  return float(value) if value.ndim == 0 else [float(v) for v in value]


#: How many dispatched steps `run_steps` lets the devices have queued (see there).
AHEAD_STEPS = 2


def run_steps(state, train_step, batch_fn, config: ml_collections.ConfigDict, start: int,
              checkpointer: Checkpointer, workdir: str, *, rate_key: str, rate_format: str,
              fields: tuple[tuple[str, str, str], ...], mesh: Any = None,
              state_sharding: Any = None, table: np.ndarray | None = None) -> Any:
  """The data-parallel step loop shared by every identi trainer; returns the final state.

  Jits `train_step(state, batch) -> (state, metrics)` with donated, replicated state; feeds
  `batch_fn(step, rows)`, this process's rows (a slice) of the global batch of each step; every
  `train.log_every_steps` appends the metrics and `rate_key` (items/s) to metrics.jsonl (records
  a killed run wrote after `start` are dropped first) and logs a `progress_line` (the rate
  formatted by `rate_format`, e.g. "{:,.1f} img/s"; `fields` of the metrics); checkpoints every
  `checkpoint.every_steps` and at the end; raises the failure the state records. `mesh` (default
  `sharding.data_mesh()`) splits the batch over its 'data' axis; `state_sharding` (a pytree of
  shardings like the state, default replicated) keeps the state where it is, e.g. latent-sharded.
  With `table` (every training row, small enough to keep on each device) `batch_fn` returns row
  indices into it and the step gathers its batch on the device: no rows cross from the host
  after the start.
  """
  lead = jax.process_index() == 0
  metrics_path = os.path.join(workdir, METRICS_FILE)
  if lead:
    # Drop records a killed run logged after its last checkpoint; they are about to be redone.
    io.write_jsonl(metrics_path, [r for r in io.read_jsonl(metrics_path) if r["step"] <= start])
  mesh = mesh if mesh is not None else sharding.data_mesh()
  repl, batch_sharding = sharding.replicated(mesh), sharding.batch_sharded(mesh)
  state_sharding = state_sharding if state_sharding is not None else repl
  if table is None:
    step_fn = jax.jit(train_step, in_shardings=(state_sharding, batch_sharding),
                      out_shardings=(state_sharding, repl), donate_argnums=0)
  else:
    rows_on_device = jax.device_put(table, repl)
    gather_step = jax.jit(lambda state, rows, idx: train_step(state, jnp.take(rows, idx, axis=0)),
                          in_shardings=(state_sharding, repl, batch_sharding),
                          out_shardings=(state_sharding, repl), donate_argnums=0)

    def step_fn(state, idx):
      return gather_step(state, rows_on_device, idx)
  t = config.train
  rows = sharding.local_rows(t.batch_size)
  # A latent-sharded mesh is made current while the step traces, so that top-k selections over
  # latents run shard by shard (`identi.sae.topk.top_k_latents`).
  latent_mesh = sharding.MODEL_AXIS in mesh.axis_names
  t_last, step_last = time.time(), start
  in_flight = []
  for step in range(start, t.num_steps):
    x = sharding.make_global_batch(batch_fn(step, rows), batch_sharding, t.batch_size)
    if latent_mesh:
      with jax.set_mesh(mesh):
        state, metrics = step_fn(state, x)
    else:
      state, metrics = step_fn(state, x)
    # Let the host run at most AHEAD_STEPS steps ahead of the devices: an unbounded queue of
    # dispatched steps made a 2-core CPU run up to 30% slower (host and compute threads compete).
    in_flight.append(jax.tree.leaves(metrics)[0])
    if len(in_flight) > AHEAD_STEPS:
      in_flight.pop(0).block_until_ready()
    done = step + 1
    if done % t.log_every_steps == 0 or done == t.num_steps:
      m = {k: scalar_or_list(v) for k, v in jax.device_get(metrics).items()}
      raise_failure(state, checkpointer)
      now = time.time()
      rate = (done - step_last) * t.batch_size / max(now - t_last, 1e-9)
      eta = (t.num_steps - done) * t.batch_size / max(rate, 1e-9)
      t_last, step_last = now, done
      if lead:
        io.append_jsonl(metrics_path, dict(m, step=done, **{rate_key: rate}))
        mean = {k: float(np.mean(v)) for k, v in m.items()}
        logger.info("%s", progress_line(done, t.num_steps, rate_format.format(rate), eta, mean,
                                        fields))
    if done % config.checkpoint.every_steps == 0 or done == t.num_steps:
      raise_failure(state, checkpointer)
      # Save a copy: the live state's buffers are donated to the next step while orbax writes.
      checkpointer.save(done, jax.tree.map(jnp.copy, state))
  raise_failure(state, checkpointer)
  checkpointer.close()
  return state


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
  state, _ = checkpointer.restore_newest(target)
  checkpointer.close()
  if state is None:
    raise ConfigError(f"{workdir} holds no checkpoint yet; train first with `{command}`")
  return config, state


# The export format of trained subjects.

def write_export(params: Any, config: dict[str, Any], kind: str, path: str,
                 step: int) -> dict[str, Any]:
  """Writes subject `params` of `kind` and their config as one file, atomically.

  The file is EXPORT_MAGIC, one JSON header line (kind, config, step, parameter count, sha256
  and size of the payload), then the payload: `flax.serialization.to_bytes(params)` (msgpack).
  """
  params = jax.device_get(params)
  payload = flax.serialization.to_bytes(params)
  header = {"format": 1, "kind": kind, "config": config, "step": int(step),
            "num_params": param_count(params), "payload_bytes": len(payload),
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
  missing, truncated or corrupted file; for a file of another kind, CheckpointError naming its
  loader (`EXPORT_LOADERS`).
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
