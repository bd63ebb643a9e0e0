"""Many SAEs in one pass: `train_sweep(config, workdir)` trains one SAE per seed of
`sweep.init_seeds`, all on the same data stream, with `jax.vmap` over the SAE axis inside the one
jitted step.

The SAEs differ only in their initialisation (`train.init_seed`); every other setting and the
batches are shared, so the sweep is what cross-seed consistency needs. The stacked state (a
leading SAE axis on every leaf) is checkpointed in `workdir/checkpoints` and resumes as a whole;
metrics.jsonl holds one value per SAE for each metric. At the end every SAE gets a training
workdir of its own, `workdir/seed_<s>`: run.json with its config (`train.init_seed` = s), its
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

from identi import data as data_lib
from identi import io
from identi import sae as sae_lib
from identi.train import minimality, runtime, sharding
from identi.sae.topk import SWEEP_AXIS
from identi.train.checkpoint import Checkpointer
from identi.train.config import sweep_seeds
from identi.train.evaluation import evaluate
from identi.train.optimizer import make_optimizer
from identi.train.trainer import (PROGRESS, abstract_state, build_model, init_state,
                                  make_train_step, start_sae_run)

logger = logging.getLogger(__name__)


def member_config(config: ml_collections.ConfigDict, seed: int) -> ml_collections.ConfigDict:
  """The config of the sweep's SAE with init seed `seed`: one SAE, `train.init_seed` = seed."""
  member = ml_collections.ConfigDict(config.to_dict())
  member.sweep.init_seeds = ""
  member.train.init_seed = seed
  return member


def member_dir(workdir: str, seed: int) -> str:
  return os.path.join(workdir, f"seed_{seed}")


def train_sweep(config: ml_collections.ConfigDict, workdir: str,
                source: Any = None) -> list[dict[str, Any]]:
  """Trains the SAEs of `config.sweep.init_seeds` together in `workdir` (resuming from its latest
  checkpoint); returns their final metrics, in seed order (each also in seed_<s>/final.json)."""
  seeds = sweep_seeds(config.sweep.init_seeds)
  workdir, train_src, eval_src = start_sae_run(config, workdir, source,
                                               {"config": config.to_dict(), "sweep": list(seeds)})
  d_in = train_src.dim

  mesh = sharding.data_mesh()
  repl = sharding.replicated(mesh)
  model = build_model(config, d_in)
  tx = make_optimizer(config)
  one = abstract_state(config, d_in)
  stacked = jax.tree.map(
      lambda a: jax.ShapeDtypeStruct((len(seeds),) + a.shape, a.dtype, sharding=repl), one)
  checkpointer = Checkpointer(workdir, max_to_keep=config.checkpoint.max_to_keep,
                              async_save=config.checkpoint.async_save)
  state, start = checkpointer.restore_newest(stacked)
  if start is None:
    n_init = min(config.sae.init_sample_size, train_src.num_examples)
    sample = train_src.get(data_lib.batch_indices(train_src.num_examples, n_init, 0,
                                                  config.train.seed + 1))
    members = [init_state(sae_lib.init_sae(model, jax.random.key(s), sample), tx,
                          config.sae.d_sae) for s in seeds]
    state = jax.device_put(jax.tree.map(lambda *leaves: jnp.stack(leaves), *members), repl)
    start = 0
  else:
    logger.info("resumed the sweep from checkpoint at step %d in %s", start, workdir)
  logger.info("training %d %s SAEs (d_in=%d, d_sae=%d, init seeds %s) vmapped on %d devices, "
              "steps %d-%d", len(seeds), config.sae.kind, d_in, config.sae.d_sae,
              ",".join(map(str, seeds)), jax.device_count(), start, config.train.num_steps)
  t = config.train
  state = runtime.run_steps(
      state, jax.vmap(make_train_step(model, config), in_axes=(0, None), axis_name=SWEEP_AXIS),
      lambda step, rows: train_src.get(
          data_lib.batch_indices(train_src.num_examples, t.batch_size, step, t.seed)[rows]),
      config, start, checkpointer, workdir, rate_key="tokens_per_s",
      rate_format="{:,.0f} tok/s per SAE", fields=PROGRESS)
  return [write_member(config, workdir, i, seed, state, d_in, model, train_src, eval_src)
          for i, seed in enumerate(seeds)]


def write_member(config, workdir: str, index: int, seed: int, state, d_in: int, model,
                 train_src, eval_src) -> dict[str, Any]:
  """Writes SAE `index` of the stacked `state` as the training workdir seed_<seed>, runs its
  minimality stage when the config has one (as `train_and_evaluate` does for a single run);
  returns its final metrics."""
  member = member_config(config, seed)
  path = runtime.prepare_workdir(member_dir(workdir, seed))
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
  final = evaluate(model, variables, eval_src, config.eval.batch_size,
                   mcc_method=config.eval.mcc_method)
  final.update(step=step, kind=minimality.final_kind(config), d_in=d_in, d_sae=config.sae.d_sae,
               init_seed=seed)
  if lead:
    io.write_json(os.path.join(path, runtime.FINAL_FILE), final)
  return final

