"""Many SAEs in one pass: `train_sweep(config, workdir)` trains one SAE per seed of
`sweep.init_seeds`, or one per activation directory of `sweep.data_paths`, all updated by one
jitted step: `jax.vmap` over the SAE axis, or a `lax.map` loop over it on CPU
(`sweep.batching`).

A seed sweep's SAEs differ only in their initialisation (`train.init_seed`); every other setting
and the batches are shared, so the sweep is what cross-seed consistency needs. A data sweep's
SAEs read one directory each (e.g. the activations of one layer per directory, captured from the
same inputs): each step takes the same rows of every directory, so the directories must hold the
same number of rows of one width; `train_sweep(..., sources={name: source})` does the same
over sources in memory (the subject pipelines' sites). The stacked state (a
leading SAE axis on every leaf) is checkpointed in `workdir/checkpoints` and resumes as a whole;
metrics.jsonl holds one value per SAE for each metric. At the end every SAE gets a training
workdir of its own, `workdir/seed_<s>` (or `workdir/<directory name>`): run.json with its config
(`train.init_seed` = s, or `data.path` = its directory), its
metrics, a checkpoint at the last step, its minimality stage's output when the config has the
stage, and final.json, so `encode`, `evaluate`, `export` and the dashboards use it like any run, and `identi.bin.train` with that config trains the same SAE one
by one (to float tolerance: a vmapped step rounds like the plain one up to summation order).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from identi import data as data_lib
from identi import io
from identi import sae as sae_lib
from identi.errors import ConfigError, DataError
from identi.train import minimality, runtime, sharding
from identi.sae.topk import SWEEP_AXIS
from identi.train.checkpoint import Checkpointer
from identi.train.config import init_seed, sweep_paths, sweep_seeds, validate_config
from identi.train.evaluation import evaluate
from identi.train.optimizer import make_optimizer
from identi.train.trainer import (DEVICE_ROWS_MAX_BYTES, PROGRESS, abstract_state, build_model,
                                  build_sources, init_state, make_train_step, start_sae_run)

logger = logging.getLogger(__name__)


def is_sweep(config: ml_collections.ConfigDict) -> bool:
  """Whether `config` trains a sweep (`sweep.init_seeds` or `sweep.data_paths` set)."""
  return bool(sweep_seeds(config.sweep.init_seeds) or sweep_paths(config.sweep.data_paths))


def member_config(config: ml_collections.ConfigDict, seed: int | None = None,
                  path: str | None = None) -> ml_collections.ConfigDict:
  """The config of one SAE of the sweep: `train.init_seed` = seed, or `data.path` = path."""
  member = ml_collections.ConfigDict(config.to_dict())
  member.sweep.init_seeds = member.sweep.data_paths = ""
  if seed is not None:
    member.train.init_seed = seed
  if path is not None:
    member.data.path = path
  return member


def member_dir(workdir: str, seed: int) -> str:
  """The workdir of a seed sweep's SAE with init seed `seed`."""
  return os.path.join(workdir, f"seed_{seed}")


def members(config: ml_collections.ConfigDict) -> list[tuple[str, ml_collections.ConfigDict]]:
  """(workdir name, config) of each SAE of the sweep, in order."""
  seeds = sweep_seeds(config.sweep.init_seeds)
  if seeds:
    return [(f"seed_{s}", member_config(config, seed=s)) for s in seeds]
  return [(os.path.basename(os.path.normpath(p)), member_config(config, path=p))
          for p in sweep_paths(config.sweep.data_paths)]


def data_sources(named) -> list[tuple[Any, Any]]:
  """(train, eval) sources of each SAE of a data sweep, from its directory; DataError unless the
  directories hold the same number of rows of one width."""
  return check_same_rows([build_sources(member) for _, member in named],
                         [member.data.path for _, member in named])


def check_same_rows(splits, labels) -> list[tuple[Any, Any]]:
  """`splits`, the (train, eval) sources of a data sweep's SAEs; DataError (naming each by its
  label) unless they hold the same number of rows of one width."""
  shapes = [(train.num_examples + ev.num_examples, train.dim) for train, ev in splits]
  if len(set(shapes)) != 1:
    listing = ", ".join(f"{label}: {n} rows x {d}" for label, (n, d) in zip(labels, shapes))
    raise DataError(f"the data of the sweep's SAEs differ in rows or width ({listing}); a data "
                    "sweep reads the same rows of each, so capture them from the same inputs at "
                    "sites of one width")
  return splits


def resolve_batching(batching: str) -> str:
  """'vmap' or 'loop' for config key 'sweep.batching' ('auto': loop on CPU, else vmap)."""
  if batching == "auto":
    return "loop" if jax.default_backend() == "cpu" else "vmap"
  return batching


def sweep_step(step, batching: str, by_data: bool = False):
  """The step of a sweep's stacked state from the step of one SAE `step(state, x)`: vmapped over
  the SAE axis ('vmap') or a `lax.map` loop over it inside the one program ('loop'; 'auto' picks
  loop on CPU). The batch is shared (rows, d_in), or (rows, SAEs, d_in) for a data sweep."""
  if resolve_batching(batching) == "vmap":
    return jax.vmap(step, in_axes=(0, 1 if by_data else None), axis_name=SWEEP_AXIS)

  def loop(state, x):
    if by_data:
      return jax.lax.map(lambda args: step(*args), (state, jnp.moveaxis(x, 1, 0)))
    return jax.lax.map(lambda one: step(one, x), state)

  return loop


def train_sweep(config: ml_collections.ConfigDict, workdir: str, source: Any = None, *,
                sources: dict[str, Any] | None = None,
                members_dir: str | None = None) -> list[dict[str, Any]]:
  """Trains the SAEs of `config.sweep` together in `workdir` (resuming from its latest
  checkpoint); returns their final metrics, in sweep order (each also in <member>/final.json).

  Args:
    config: a training config with `sweep.init_seeds` or `sweep.data_paths` set, or neither when
      `sources` is given.
    workdir: the sweep's directory (stacked checkpoints, metrics.jsonl, run.json).
    source: optional activation source that replaces the configured data of a seed sweep.
    sources: a data sweep over activation sources in memory, one SAE per entry, named by its key
      (e.g. the sites of a model, as `sweep.data_paths` names directories); same rows, one width.
    members_dir: where the SAEs' own workdirs go, `members_dir/<name>` (default `workdir`).
  """
  validate_config(config)
  if sources is not None:
    if is_sweep(config) or source is not None:
      raise ConfigError("train_sweep got `sources` and a config sweep or a `source`; `sources` "
                        "are the sweep: leave sweep.init_seeds, sweep.data_paths and source unset")
    if len(sources) < 2:
      raise ConfigError(f"train_sweep got {len(sources)} source(s); a data sweep needs two or "
                        "more: train one SAE with train_and_evaluate")
    named = [(name, member_config(config)) for name in sources]
  else:
    named = members(config)
  if not named:
    raise ConfigError("the config sets no sweep; set sweep.init_seeds or sweep.data_paths, or "
                      "train one SAE with train_and_evaluate")
  by_data = sources is not None or bool(sweep_paths(config.sweep.data_paths))
  if by_data and source is not None:
    raise ConfigError("sweep.data_paths is set, so its directories are the data; call "
                      "train_sweep without a source")
  if sources is not None:
    splits = check_same_rows(
        [data_lib.train_eval_split(src, config.data.num_eval, config.data.split_seed)
         for src in sources.values()], list(sources))
    first = next(iter(sources.values()))
  else:
    splits = data_sources(named) if by_data else None
    first = data_lib.open_source(named[0][1].data.path) if by_data else source
  workdir, train_src, eval_src = start_sae_run(config, workdir, first,
                                               {"config": config.to_dict(),
                                                "sweep": [name for name, _ in named]})
  if not by_data:  # One data stream, shared.
    splits = [(train_src, eval_src)] * len(named)
  d_in = train_src.dim

  mesh = sharding.data_mesh()
  repl = sharding.replicated(mesh)
  model = build_model(config, d_in)
  tx = make_optimizer(config)
  one = abstract_state(config, d_in)
  stacked = jax.tree.map(
      lambda a: jax.ShapeDtypeStruct((len(named),) + a.shape, a.dtype, sharding=repl), one)
  checkpointer = Checkpointer(workdir, max_to_keep=config.checkpoint.max_to_keep,
                              async_save=config.checkpoint.async_save)
  state, start = checkpointer.restore_newest(stacked)
  if start is None:
    n_init = min(config.sae.init_sample_size, train_src.num_examples)
    rows = data_lib.batch_indices(train_src.num_examples, n_init, 0, config.train.seed + 1)
    states = [init_state(sae_lib.init_sae(model, jax.random.key(init_seed(member)),
                                          train.get(rows)), tx, model.d_sae)
              for (_, member), (train, _) in zip(named, splits)]
    state = jax.device_put(jax.tree.map(lambda *leaves: jnp.stack(leaves), *states), repl)
    start = 0
  else:
    logger.info("resumed the sweep from checkpoint at step %d in %s", start, workdir)
  logger.info("training %d %s SAEs (d_in=%d, d_sae=%d: %s) in one step (sweep.batching %s) on "
              "%d devices, steps %d-%d", len(named), config.sae.kind, d_in, model.d_sae,
              ", ".join(name for name, _ in named), config.sweep.batching, jax.device_count(),
              start, config.train.num_steps)
  t = config.train

  # As for a single run, training rows that fit stay on the devices (each SAE's own table under
  # the single run's bound) and each step gathers its batch there.
  table = None
  if train_src.num_examples * d_in * 4 <= DEVICE_ROWS_MAX_BYTES:
    every = np.arange(train_src.num_examples)
    table = (np.stack([train.get(every) for train, _ in splits], axis=1) if by_data
             else train_src.get(every))

  def batch(step: int, rows: slice) -> np.ndarray:
    idx = data_lib.batch_indices(train_src.num_examples, t.batch_size, step, t.seed)[rows]
    if table is not None:
      return idx.astype(np.int32)
    if by_data:  # (rows, SAEs, d_in): the batch axis stays first, for the data mesh.
      return np.stack([train.get(idx) for train, _ in splits], axis=1)
    return train_src.get(idx)

  step_fn = sweep_step(make_train_step(model, config), config.sweep.batching, by_data)
  state = runtime.run_steps(
      state, step_fn, batch, config, start, checkpointer, workdir, rate_key="tokens_per_s",
      rate_format="{:,.0f} tok/s per SAE", fields=PROGRESS, table=table)
  members_dir = workdir if members_dir is None else members_dir
  return [write_member(member, os.path.join(members_dir, name), workdir, i, state, d_in, model,
                       *splits[i]) for i, (name, member) in enumerate(named)]


def write_member(member: ml_collections.ConfigDict, path: str, workdir: str, index: int, state,
                 d_in: int, model, train_src, eval_src) -> dict[str, Any]:
  """Writes SAE `index` of the stacked `state` as the training workdir `path` with config
  `member`, runs its minimality stage when the config has one (as `train_and_evaluate` does for
  a single run); returns its final metrics."""
  path = runtime.prepare_workdir(path)
  own = jax.tree.map(lambda a: a[index], state)
  step = int(jax.device_get(own["step"]))
  lead = jax.process_index() == 0
  if lead:
    io.write_json(os.path.join(path, runtime.RUN_FILE), {"config": member.to_dict(), "d_in": d_in})
    records = io.read_jsonl(os.path.join(workdir, runtime.METRICS_FILE))
    io.write_jsonl(os.path.join(path, runtime.METRICS_FILE), [
        {k: (v[index] if isinstance(v, list) else v) for k, v in r.items()} for r in records])
  checkpointer = Checkpointer(path, max_to_keep=1, async_save=False)
  checkpointer.save(step, own)
  checkpointer.close()
  variables = {"params": own["params"], "stats": own["stats"]}
  if member.minimality.enabled:  # The minimal dictionary and its encoder replace the SAE.
    model, variables = minimality.run_stage(model, variables, train_src, member, path)
  final = evaluate(model, variables, eval_src, member.eval.batch_size,
                   mcc_method=member.eval.mcc_method)
  final.update(step=step, kind=minimality.final_kind(member), d_in=d_in, d_sae=model.d_sae,
               init_seed=init_seed(member), member=os.path.basename(path))
  if lead:
    io.write_json(os.path.join(path, runtime.FINAL_FILE), final)
  return final
