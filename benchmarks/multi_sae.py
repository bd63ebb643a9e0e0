"""Many SAEs in one pass against the same SAEs one after another.

`python -m benchmarks.multi_sae [--preset=quick|smoke] [--saes=8] [--repeats=10] [--output=F]`

For each size, `--saes` TopK SAEs that differ only in their initialisation (a sweep over init
seeds, `identi.train.train_sweep`) train on the same batches: vmapped, one jitted step updates all
of them; sequential, one jitted step per SAE, called for each SAE in turn, as separate runs would.
Both use the trainer's own step (`make_train_step`) with donated state on the default devices.
Reports the median steady-state time of one step of all SAEs, tokens/s per SAE and in total, and
the speed-up; compile time is reported apart. CPU numbers here; run the same command on an
accelerator.
"""

from __future__ import annotations

import os
import tempfile
import time

import jax
import jax.numpy as jnp
import ml_collections
from absl import flags

from benchmarks.timing import median_seconds
from identi import io
from identi import sae as sae_lib
from identi.bin import cli
from identi.sae.topk import SWEEP_AXIS
from identi.train import default_config, sharding, train_and_evaluate, train_sweep
from identi.train.optimizer import make_optimizer
from identi.train.trainer import build_model, init_state, make_train_step

#: (d_in, d_sae, k, batch) per preset: the small size of the sweep docs and a larger one.
PRESETS = {"smoke": [(16, 64, 4, 64)],
           "quick": [(64, 512, 8, 1024), (256, 4096, 32, 1024)]}
_PRESET = flags.DEFINE_enum("preset", "quick", list(PRESETS), "Size grid.")
_SAES = flags.DEFINE_integer("saes", 8, "SAEs per sweep.")
_REPEATS = flags.DEFINE_integer("repeats", 10, "Timed steps (median reported).")
_OUTPUT = flags.DEFINE_string("output", "", "Optional JSON output.")
_RUN_STEPS = flags.DEFINE_integer("run_steps", 300, "Steps of the whole-run comparison (0: skip).")


def measure(d_in: int, d_sae: int, k: int, batch: int, saes: int, repeats: int) -> dict:
  config = default_config()
  config.sae.kind, config.sae.d_sae, config.sae.k = "topk", d_sae, k
  config.train.batch_size, config.train.num_steps = batch, 1000
  model = build_model(config, d_in)
  tx = make_optimizer(config)
  repl = sharding.replicated(sharding.data_mesh())
  batch_sh = sharding.batch_sharded(sharding.data_mesh())
  x = jax.device_put(jax.random.normal(jax.random.key(0), (batch, d_in)), batch_sh)
  states = [init_state(sae_lib.init_sae(model, jax.random.key(s), x[:512]), tx, d_sae)
            for s in range(saes)]
  step = make_train_step(model, config)

  single = jax.jit(step, in_shardings=(repl, batch_sh), out_shardings=(repl, repl),
                   donate_argnums=0)
  t0 = time.perf_counter()
  seq = [jax.device_put(jax.tree.map(jnp.copy, s), repl) for s in states]  # Donated below.
  seq = [single(s, x)[0] for s in seq]
  jax.block_until_ready(seq)
  compile_seq = time.perf_counter() - t0

  def sequential():
    for i in range(saes):
      seq[i] = single(seq[i], x)[0]
    return seq

  vstep = jax.jit(jax.vmap(step, in_axes=(0, None), axis_name=SWEEP_AXIS),
                  in_shardings=(repl, batch_sh),
                  out_shardings=(repl, repl), donate_argnums=0)
  stacked = [jax.device_put(jax.tree.map(lambda *l: jnp.stack(l), *states), repl)]
  t0 = time.perf_counter()
  stacked[0] = vstep(stacked[0], x)[0]
  jax.block_until_ready(stacked)
  compile_vmap = time.perf_counter() - t0

  def vmapped():
    stacked[0] = vstep(stacked[0], x)[0]
    return stacked

  seq_s = median_seconds(sequential, repeats)
  vmap_s = median_seconds(vmapped, repeats)
  return {"d_in": d_in, "d_sae": d_sae, "k": k, "batch": batch, "saes": saes,
          "sequential_step_s": seq_s, "vmapped_step_s": vmap_s,
          "sequential_tokens_per_s_per_sae": batch / seq_s,
          "vmapped_tokens_per_s_per_sae": batch / vmap_s,
          "vmapped_tokens_per_s_total": saes * batch / vmap_s,
          "speedup": seq_s / vmap_s, "compile_s_sequential": compile_seq,
          "compile_s_vmapped": compile_vmap, "devices": jax.device_count(),
          "platform": jax.devices()[0].platform}


def whole_runs(d_in: int, d_sae: int, k: int, batch: int, saes: int, steps: int) -> dict:
  """Wall time of `saes` whole training runs (`train_and_evaluate`: compile, steps, checkpoints,
  evaluation), one after another, against one sweep (`train_sweep`) of the same SAEs."""
  config = default_config()
  config.sae.kind, config.sae.d_sae, config.sae.k = "topk", d_sae, k
  config.data.superposition.d, config.data.superposition.num_features = d_in, d_sae // 2
  config.train.batch_size, config.train.num_steps = batch, steps
  config.train.log_every_steps = config.checkpoint.every_steps = steps
  with tempfile.TemporaryDirectory() as tmp:
    t0 = time.perf_counter()
    for seed in range(saes):
      one = ml_collections.ConfigDict(config.to_dict())
      one.train.init_seed = seed
      train_and_evaluate(one, os.path.join(tmp, f"run_{seed}"))
    sequential = time.perf_counter() - t0
    config.sweep.init_seeds = ",".join(map(str, range(saes)))
    t0 = time.perf_counter()
    train_sweep(config, os.path.join(tmp, "sweep"))
    swept = time.perf_counter() - t0
  return {"d_in": d_in, "d_sae": d_sae, "k": k, "batch": batch, "saes": saes, "steps": steps,
          "sequential_runs_s": sequential, "sweep_s": swept, "speedup": sequential / swept}


def main(argv):
  del argv
  rows = [measure(*size, _SAES.value, _REPEATS.value) for size in PRESETS[_PRESET.value]]
  print(cli.format_table(rows, ["d_in", "d_sae", "k", "batch", "saes", "sequential_step_s",
                                "vmapped_step_s", "vmapped_tokens_per_s_per_sae", "speedup"]))
  runs = []
  if _RUN_STEPS.value:
    runs = [whole_runs(*PRESETS[_PRESET.value][0], _SAES.value, _RUN_STEPS.value)]
    print(cli.format_table(runs, ["d_in", "d_sae", "saes", "steps", "sequential_runs_s",
                                  "sweep_s", "speedup"]))
  if _OUTPUT.value:
    io.write_json(_OUTPUT.value, {"preset": _PRESET.value, "rows": rows, "runs": runs})


if __name__ == "__main__":
  cli.run(main)
