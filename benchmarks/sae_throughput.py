"""SAE training-step throughput: `python -m benchmarks.sae_throughput --preset=quick`.

For every SAE kind and size in the preset, times the jitted, donated training step that
`identi.train` runs (compile time separately; steady state as the median of repeats after warm-up,
each ended by `block_until_ready`), and reports tokens/s and the fraction of the measured dense
matmul FLOP/s that the step's necessary work reaches (4 * batch * d_in * d_sae FLOPs per step: the
encoder matmul forward and its weight gradient). Results go to stdout and --output (JSON).
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from identi import io
from identi.bin import cli
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

_PRESET = flags.DEFINE_enum("preset", "quick", list(PRESETS), "Size grid.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed repeats (median reported).")
_KINDS = flags.DEFINE_list("kinds", list(KINDS), "SAE kinds to time.")
_OUTPUT = flags.DEFINE_string("output", "", "Optional JSON output path.")
_DECODERS = flags.DEFINE_list("decoders", ["auto"],
                              "TopK decoders to time: auto, dense, sparse (e.g. dense,sparse).")


def _median_seconds(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def matmul_flops_per_s(n: int = 2048, repeats: int = 5) -> float:
  """Measured dense fp32 matmul FLOP/s of the default device (the roofline reference)."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  f = jax.jit(lambda a: a @ a)
  jax.block_until_ready(f(a))
  return 2 * n**3 / _median_seconds(lambda: f(a), repeats)


def time_train_step(kind: str, d_in: int, d_sae: int, k: int, batch: int,
                    repeats: int, decoder: str = "auto") -> dict:
  """Compile time and steady-state time of one training step."""
  config = default_config()
  config.sae.kind, config.sae.d_sae, config.sae.k = kind, d_sae, k
  config.sae.decoder = decoder
  config.train.batch_size = batch
  model = build_model(config, d_in)
  mesh = sharding.data_mesh()
  repl, batch_sharding = sharding.replicated(mesh), sharding.batch_sharded(mesh)
  rng = np.random.default_rng(0)
  x = jax.device_put(jnp.asarray(np.abs(rng.normal(size=(batch, d_in))), jnp.float32),
                     batch_sharding)
  variables = model.init(jax.random.key(0), x[:1])
  state = jax.device_put(init_state(variables, make_optimizer(config), d_sae), repl)
  step = jax.jit(make_train_step(model, config), in_shardings=(repl, batch_sharding),
                 out_shardings=(repl, repl), donate_argnums=0)
  t0 = time.perf_counter()
  compiled = step.lower(state, x).compile()
  compile_s = time.perf_counter() - t0
  holder = [state]

  def run():
    holder[0], metrics = compiled(holder[0], x)
    return metrics

  for _ in range(2):
    jax.block_until_ready(run())
  seconds = _median_seconds(run, repeats)
  sparse = getattr(model, "sparse_decoder", False)
  return {"kind": kind, "decoder": "sparse" if sparse else "dense", "d_in": d_in,
          "d_sae": d_sae, "k": k, "batch": batch,
          "compile_s": compile_s, "step_ms": 1e3 * seconds, "tokens_per_s": batch / seconds,
          "necessary_flops": 4 * batch * d_in * d_sae}


def main(argv):
  del argv
  peak = matmul_flops_per_s()
  rows = []
  for d_in, d_sae, k, batch in PRESETS[_PRESET.value]:
    for kind in _KINDS.value:
      for decoder in (_DECODERS.value if kind == "topk" else ["auto"]):
        row = time_train_step(kind, d_in, d_sae, k, batch, _REPEATS.value, decoder)
        row["roofline_fraction"] = row["necessary_flops"] / (row["step_ms"] / 1e3) / peak
        rows.append(row)
  print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, "
        f"measured matmul peak {peak / 1e9:.1f} GFLOP/s")
  print(cli.format_table(rows, ["kind", "decoder", "d_in", "d_sae", "k", "batch", "compile_s",
                                "step_ms", "tokens_per_s", "roofline_fraction"]))
  if _OUTPUT.value:
    io.write_json(_OUTPUT.value, {"device": jax.devices()[0].device_kind,
                                  "matmul_flops_per_s": peak, "rows": rows})


if __name__ == "__main__":
  cli.run(main)
