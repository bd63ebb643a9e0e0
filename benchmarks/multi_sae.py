"""Many SAEs in one pass against the same SAEs one after another, and against SAELens's.

`python -m benchmarks.multi_sae [--preset=quick|smoke] [--saes=8] [--repeats=10]
[--peer=auto|saelens|none] [--output=F]`

For each size, `--saes` TopK SAEs that differ only in their initialisation (a sweep over init
seeds, `identi.train.train_sweep`) train on the same fixed batch: vmapped, one jitted step updates
all of them at once; loop, one jitted step runs them one after another (`lax.map`, what a sweep
does on CPU); sequential, one jitted step per SAE, called for each SAE in turn, as separate runs
would. Both use the trainer's own step (`make_train_step`) with donated state on the default
devices. In the same run, SAELens's multi-SAE trainer (`MultiSAETrainer`, the engine of its
`MultiSAETrainingRunner`) trains the same number of TopK SAEs of the same size on the same batch
in the peer's own venv (`benchmarks/peers/saelens_multi.py`). Reports the median steady-state time
of one step of all SAEs, tokens/s per SAE, and the speed-ups; compile time is reported apart. CPU
numbers here; run the same command on an accelerator.
"""

from __future__ import annotations

import os
import tempfile
import time

import jax
import jax.numpy as jnp
import ml_collections
from absl import flags

import numpy as np

from benchmarks.peers import saelens_env
from benchmarks.timing import benchmark_batch, median_seconds
from identi import io
from identi import sae as sae_lib
from identi.bin import cli
from identi.train import default_config, sharding, train_and_evaluate, train_sweep
from identi.train.sweep import resolve_batching, sweep_step
from identi.train.optimizer import make_optimizer
from identi.train.trainer import build_model, init_state, make_train_step

#: (d_in, d_sae, k, batch) per preset: the small size of the sweep docs and the reference size
#: of `make bench`.
PRESETS = {"smoke": [(16, 64, 4, 64)],
           "quick": [(64, 512, 8, 1024), (512, 8192, 32, 4096)]}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_SCRIPT = os.path.join(ROOT, "benchmarks", "peers", "saelens_multi.py")
_PRESET = flags.DEFINE_enum("preset", "quick", list(PRESETS), "Size grid.")
_SAES = flags.DEFINE_integer("saes", 8, "SAEs per sweep.")
_REPEATS = flags.DEFINE_integer("repeats", 10, "Timed steps (median reported).")
_OUTPUT = flags.DEFINE_string("output", "", "Optional JSON output.")
_PEER = flags.DEFINE_enum("peer", "auto", ["auto", "saelens", "none"],
                          "SAELens's multi-SAE trainer beside it; auto: except for the smoke preset.")
_RUN_STEPS = flags.DEFINE_integer("run_steps", 300, "Steps of the whole-run comparison (0: skip).")


def measure(d_in: int, d_sae: int, k: int, batch: int, saes: int, repeats: int) -> dict:
  config = default_config()
  config.sae.kind, config.sae.d_sae, config.sae.k = "topk", d_sae, k
  config.train.batch_size, config.train.num_steps = batch, 1000
  model = build_model(config, d_in)
  tx = make_optimizer(config)
  repl = sharding.replicated(sharding.data_mesh())
  batch_sh = sharding.batch_sharded(sharding.data_mesh())
  x = jax.device_put(jnp.asarray(benchmark_batch(batch, d_in)), batch_sh)
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

  def stacked_step(batching: str):
    """The compiled sweep step of `batching`, its compile seconds and a call of it."""
    fn = jax.jit(sweep_step(step, batching), in_shardings=(repl, batch_sh),
                 out_shardings=(repl, repl), donate_argnums=0)
    holder = [jax.device_put(jax.tree.map(lambda *l: jnp.stack(l), *states), repl)]
    t0 = time.perf_counter()
    holder[0] = fn(holder[0], x)[0]
    jax.block_until_ready(holder)
    compile_s = time.perf_counter() - t0

    def call():
      holder[0] = fn(holder[0], x)[0]
      return holder
    return compile_s, call

  compile_vmap, vmapped = stacked_step("vmap")
  compile_loop, looped = stacked_step("loop")
  seq_s = median_seconds(sequential, repeats)
  vmap_s = median_seconds(vmapped, repeats)
  loop_s = median_seconds(looped, repeats)
  return {"d_in": d_in, "d_sae": d_sae, "k": k, "batch": batch, "saes": saes,
          "sequential_step_s": seq_s, "vmapped_step_s": vmap_s, "loop_step_s": loop_s,
          "sequential_tokens_per_s_per_sae": batch / seq_s,
          "vmapped_tokens_per_s_per_sae": batch / vmap_s,
          "loop_tokens_per_s_per_sae": batch / loop_s,
          "vmapped_tokens_per_s_total": saes * batch / vmap_s,
          "speedup": seq_s / vmap_s, "speedup_loop": seq_s / loop_s,
          "compile_s_sequential": compile_seq, "compile_s_vmapped": compile_vmap,
          "compile_s_loop": compile_loop, "devices": jax.device_count(),
          "platform": jax.devices()[0].platform, "device_kind": jax.devices()[0].device_kind}


def peer_command(python: str, d_in: int, d_sae: int, k: int, batch: int, saes: int,
                 repeats: int, data: str) -> list[str]:
  """The command line that times SAELens's multi-SAE trainer with the peer venv's python:
  identi's default learning rate, all CPU threads."""
  return [python, PEER_SCRIPT, f"--d_in={d_in}", f"--d_sae={d_sae}", f"--k={k}",
          f"--batch={batch}", f"--saes={saes}", f"--repeats={repeats}",
          f"--lr={default_config().train.learning_rate!r}", f"--data={data}",
          f"--threads={os.cpu_count() or 1}"]


def time_saelens(python: str, d_in: int, d_sae: int, k: int, batch: int, saes: int,
                 repeats: int) -> dict:
  """SAELens's multi-SAE trainer on `benchmark_batch`: `saes` TopK SAEs of the size."""
  with tempfile.TemporaryDirectory() as tmp:
    data = os.path.join(tmp, "batch.npy")
    np.save(data, benchmark_batch(batch, d_in))
    return saelens_env.run_json(peer_command(python, d_in, d_sae, k, batch, saes, repeats,
                                             data))


def whole_runs(d_in: int, d_sae: int, k: int, batch: int, saes: int, steps: int) -> dict:
  """Wall time of `saes` whole training runs (`train_and_evaluate`: compile, steps, checkpoints,
  evaluation), one after another, against one sweep (`train_sweep`) of the same SAEs, vmapped and
  looped. JAX's caches are cleared before each run and each sweep, so that every one compiles
  from cold, as a separate process would."""
  config = default_config()
  config.sae.kind, config.sae.d_sae, config.sae.k = "topk", d_sae, k
  config.data.superposition.d, config.data.superposition.num_features = d_in, d_sae // 2
  config.train.batch_size, config.train.num_steps = batch, steps
  config.train.log_every_steps = config.checkpoint.every_steps = steps
  swept = {}
  with tempfile.TemporaryDirectory() as tmp:
    t0 = time.perf_counter()
    for seed in range(saes):
      one = ml_collections.ConfigDict(config.to_dict())
      one.train.init_seed = seed
      jax.clear_caches()
      train_and_evaluate(one, os.path.join(tmp, f"run_{seed}"))
    sequential = time.perf_counter() - t0
    config.sweep.init_seeds = ",".join(map(str, range(saes)))
    for batching in ("vmap", "loop"):
      config.sweep.batching = batching
      jax.clear_caches()
      t0 = time.perf_counter()
      train_sweep(config, os.path.join(tmp, f"sweep_{batching}"))
      swept[batching] = time.perf_counter() - t0
  auto = resolve_batching("auto")
  return {"d_in": d_in, "d_sae": d_sae, "k": k, "batch": batch, "saes": saes, "steps": steps,
          "sequential_runs_s": sequential, "sweep_s": swept[auto],
          "speedup": sequential / swept[auto], "sweep_batching": auto,
          "sweep_vmap_s": swept["vmap"], "sweep_loop_s": swept["loop"],
          "speedup_vmap": sequential / swept["vmap"], "speedup_loop": sequential / swept["loop"]}


def main(argv):
  del argv
  python = saelens_env.peer_python(_PEER.value, _PRESET.value, ROOT)
  rows, peer = [], None
  for size in PRESETS[_PRESET.value]:
    row = measure(*size, _SAES.value, _REPEATS.value)
    if python is not None:
      try:
        peer = time_saelens(python, *size, _SAES.value, _REPEATS.value)
      except RuntimeError as e:
        saelens_env.warn(f"SAELens multi-SAE trainer failed on {size}: {e}")
      else:
        row.update(saelens_step_s=peer["step_s"],
                   saelens_tokens_per_s_per_sae=peer["tokens_per_s_per_sae"],
                   speedup_vs_saelens=peer["step_s"] / row["vmapped_step_s"],
                   speedup_loop_vs_saelens=peer["step_s"] / row["loop_step_s"])
    rows.append(row)
  print(cli.format_table(rows, ["d_in", "d_sae", "k", "batch", "saes", "sequential_step_s",
                                "vmapped_step_s", "loop_step_s", "saelens_step_s", "speedup",
                                "speedup_loop", "speedup_vs_saelens",
                                "speedup_loop_vs_saelens"]))
  if peer is not None:
    print(f"peer: SAELens {peer['saelens_version']} MultiSAETrainer, torch "
          f"{peer['torch_version']}, {peer['threads']} threads")
  runs = []
  if _RUN_STEPS.value:
    runs = [whole_runs(*PRESETS[_PRESET.value][0], _SAES.value, _RUN_STEPS.value)]
    print(cli.format_table(runs, ["d_in", "d_sae", "saes", "steps", "sequential_runs_s",
                                  "sweep_vmap_s", "sweep_loop_s", "speedup_vmap",
                                  "speedup_loop", "sweep_batching"]))
  if _OUTPUT.value:
    io.write_json(_OUTPUT.value, {"preset": _PRESET.value, "rows": rows, "runs": runs,
                                  "peer": None if peer is None else {
                                      k: peer[k] for k in ("saelens_version", "torch_version",
                                                           "threads")}})


if __name__ == "__main__":
  cli.run(main)
