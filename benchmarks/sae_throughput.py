"""SAE training-step throughput: `python -m benchmarks.sae_throughput --preset=quick`.

For every SAE kind and size in the preset, times the jitted, donated training step that
`identi.train` runs (compile time separately; steady state as the median of repeats after warm-up,
each ended by `block_until_ready`), and reports tokens/s, the step's peak memory as XLA plans it
(state, batch, temps and non-donated outputs: per step and on every backend, where the devices'
own peak counters span the whole process) and the fraction of the measured dense matmul FLOP/s
that the step's necessary work reaches (4 * batch * d_in * d_sae FLOPs per step: the encoder
matmul forward and its weight gradient). Results go to stdout and --output (JSON).

`--dtypes=float32,bfloat16` also times every row with `sae.compute_dtype='bfloat16'` (bf16
matmuls, float32 master weights); each row's roofline fraction is taken against the peak measured
with a matmul of its dtype (bfloat16 operands, float32 accumulation, for the bfloat16 rows).

TopK rows are also timed with the peer SAELens (`--peer`) on the same sizes, batch and learning
rate, in its own torch environment (`benchmarks/peers/.venv`, created on first use), and the table
gives identi's tokens/s over SAELens's as `ratio` (float32 rows only).
"""

from __future__ import annotations

import os
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from benchmarks.peers import saelens_env
from benchmarks.timing import benchmark_batch, matmul_flops_per_s, median_seconds
from identi import io
from identi.bin import cli
from identi.errors import ConfigError
from identi.train import default_config, make_optimizer, make_train_step
from identi.train import sharding
from identi.train.trainer import build_model, init_state

PRESETS = {
    # (d_in, d_sae, k, batch)
    "smoke": [(16, 64, 4, 64)],
    "quick": [(256, 4096, 32, 1024), (512, 8192, 32, 4096)],
    "full": [(512, 8192, 32, 4096), (768, 16384, 32, 4096), (1024, 32768, 64, 4096)],
}
KINDS = ("topk", "batchtopk", "jumprelu", "relu")
DTYPES = ("float32", "bfloat16")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_SCRIPT = os.path.join(ROOT, "benchmarks", "peers", "saelens_step.py")

_PRESET = flags.DEFINE_enum("preset", "quick", list(PRESETS), "Size grid.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed repeats (median reported).")
_KINDS = flags.DEFINE_list("kinds", list(KINDS), "SAE kinds to time.")
_OUTPUT = flags.DEFINE_string("output", "", "Optional JSON output path.")
_DECODERS = flags.DEFINE_list("decoders", ["auto"],
                              "TopK decoders to time: auto, dense, sparse (e.g. dense,sparse).")
_DTYPES = flags.DEFINE_list("dtypes", ["float32"],
                            "Compute dtypes to time: float32, bfloat16 (e.g. float32,bfloat16).")
_PEER = flags.DEFINE_enum("peer", "auto", ["auto", "saelens", "none"],
                          "Peer timed on the TopK rows; auto: saelens except for the smoke preset.")


def time_train_step(kind: str, d_in: int, d_sae: int, k: int, batch: int,
                    repeats: int, decoder: str = "auto", dtype: str = "float32") -> dict:
  """Compile time and steady-state time of one training step with `dtype` matmuls."""
  config = default_config()
  config.sae.kind, config.sae.d_sae, config.sae.k = kind, d_sae, k
  config.sae.decoder, config.sae.compute_dtype = decoder, dtype
  config.train.batch_size = batch
  model = build_model(config, d_in)
  mesh = sharding.data_mesh()
  repl, batch_sharding = sharding.replicated(mesh), sharding.batch_sharded(mesh)
  x = jax.device_put(jnp.asarray(benchmark_batch(batch, d_in)), batch_sharding)
  variables = model.init(jax.random.key(0), x[:1])
  state = jax.device_put(init_state(variables, make_optimizer(config), d_sae), repl)
  step = jax.jit(make_train_step(model, config), in_shardings=(repl, batch_sharding),
                 out_shardings=(repl, repl), donate_argnums=0)
  t0 = time.perf_counter()
  compiled = step.lower(state, x).compile()
  compile_s = time.perf_counter() - t0
  memory = step_memory_bytes(compiled)
  holder = [state]

  def run():
    holder[0], metrics = compiled(holder[0], x)
    return metrics

  for _ in range(2):
    jax.block_until_ready(run())
  seconds = median_seconds(run, repeats)
  sparse = getattr(model, "sparse_decoder", False)
  return {"kind": kind, "decoder": "sparse" if sparse else "dense", "dtype": dtype, "d_in": d_in,
          "d_sae": d_sae, "k": k, "batch": batch,
          "compile_s": compile_s, "step_ms": 1e3 * seconds, "tokens_per_s": batch / seconds,
          "necessary_flops": 4 * batch * d_in * d_sae,
          "step_memory_mb": None if memory is None else memory / 2**20}


def step_memory_bytes(compiled) -> int | None:
  """The step's peak memory as XLA plans it: arguments (state and batch), temps and the outputs
  that do not reuse a donated argument; None where the backend gives no analysis."""
  analysis = compiled.memory_analysis()
  if analysis is None:
    return None
  return (analysis.argument_size_in_bytes + analysis.temp_size_in_bytes
          + analysis.output_size_in_bytes - analysis.alias_size_in_bytes)


def peer_command(python: str, d_in: int, d_sae: int, k: int, batch: int, repeats: int,
                 lr: float, data: str, threads: int) -> list[str]:
  """The command line that times SAELens's TopK training step with the peer venv's python."""
  return [python, PEER_SCRIPT, f"--d_in={d_in}", f"--d_sae={d_sae}", f"--k={k}",
          f"--batch={batch}", f"--repeats={repeats}", f"--lr={lr!r}", f"--data={data}",
          f"--threads={threads}"]


def time_saelens(python: str, d_in: int, d_sae: int, k: int, batch: int,
                 repeats: int) -> dict:
  """SAELens's step on `benchmark_batch` with identi's default learning rate, all CPU threads."""
  with tempfile.TemporaryDirectory() as tmp:
    data = os.path.join(tmp, "batch.npy")
    np.save(data, benchmark_batch(batch, d_in))
    cmd = peer_command(python, d_in, d_sae, k, batch, repeats,
                       default_config().train.learning_rate, data, os.cpu_count() or 1)
    return saelens_env.run_json(cmd)


def _check_dtypes(dtypes: list[str]) -> None:
  bad = [d for d in dtypes if d not in DTYPES]
  if bad or not dtypes:
    raise ConfigError(f"--dtypes is {','.join(dtypes)!r}; use one or more of "
                      f"{', '.join(DTYPES)}, e.g. --dtypes=float32,bfloat16")


def main(argv):
  del argv
  _check_dtypes(_DTYPES.value)
  peer_python = saelens_env.peer_python(_PEER.value, _PRESET.value, ROOT) if "float32" in _DTYPES.value else None
  peaks = {d: matmul_flops_per_s(dtype=d) for d in dict.fromkeys(["float32", *_DTYPES.value])}
  rows, peers = [], {}
  for d_in, d_sae, k, batch in PRESETS[_PRESET.value]:
    for kind in _KINDS.value:
      for decoder in (_DECODERS.value if kind == "topk" else ["auto"]):
        for dtype in _DTYPES.value:
          row = time_train_step(kind, d_in, d_sae, k, batch, _REPEATS.value, decoder, dtype)
          row["matmul_peak_flops_per_s"] = peaks[dtype]
          row["roofline_fraction"] = row["necessary_flops"] / (row["step_ms"] / 1e3) / peaks[dtype]
          row["saelens_tokens_per_s"] = row["ratio"] = None
          shape = (d_in, d_sae, k, batch)
          if kind == "topk" and dtype == "float32" and peer_python is not None:
            if shape not in peers:
              try:
                peers[shape] = time_saelens(peer_python, *shape, _REPEATS.value)
              except (RuntimeError, ValueError, OSError) as e:
                saelens_env.warn(f"SAELens peer failed on {shape}: {e}")
                peers[shape] = None
            if peers[shape] is not None:
              row["saelens_tokens_per_s"] = peers[shape]["tokens_per_s"]
              row["ratio"] = row["tokens_per_s"] / row["saelens_tokens_per_s"]
          rows.append(row)
  peak_text = ", ".join(f"{d} {p / 1e9:.1f}" for d, p in peaks.items())
  print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, "
        f"measured matmul peak (GFLOP/s) {peak_text}")
  peer = next((p for p in peers.values() if p is not None), None)
  if peer is not None:
    print(f"peer: SAELens {peer['saelens_version']}, torch {peer['torch_version']}, "
          f"{peer['threads']} threads, aux {peer['aux']}")
  print(cli.format_table(rows, ["kind", "decoder", "dtype", "d_in", "d_sae", "k", "batch",
                                "compile_s", "step_ms", "tokens_per_s", "step_memory_mb",
                                "roofline_fraction",
                                "saelens_tokens_per_s", "ratio"]))
  if _OUTPUT.value:
    io.write_json(_OUTPUT.value, {
        "device": jax.devices()[0].device_kind, "matmul_flops_per_s": peaks["float32"],
        "matmul_flops_per_s_by_dtype": peaks, "rows": rows,
        "saelens": [dict(p, d_in=s[0], d_sae=s[1], k=s[2], batch=s[3])
                    for s, p in peers.items() if p is not None]})


if __name__ == "__main__":
  cli.run(main)
