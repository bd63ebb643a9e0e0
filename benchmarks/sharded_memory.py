"""Per-device memory of the SAE training step with the latents sharded over a 'model' axis.

`python -m benchmarks.sharded_memory [--kind=topk] [--d_in=512] [--d_sae=16384,65536,262144]
[--models=1,2,4,8] [--devices=8] [--output=FILE.json]` compiles (never runs) the training step of a
TopK (or `--kind=batchtopk`) SAE on
`--devices` forced CPU devices for each mesh (data = devices / model, model) and reports XLA's
planned memory per device (`Compiled.memory_analysis()`): the step's arguments (the state it is
handed: parameters, Adam moments, counters, the batch), and its temporaries. Compiling needs no
memory for the state, so sizes far beyond this machine's memory are measured too.
"""

from __future__ import annotations

import os
import sys


def _force_devices(argv) -> None:
  n = next((a.split("=", 1)[1] for a in argv if a.startswith("--devices=")), "8")
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             f" --xla_force_host_platform_device_count={n}").strip()


_force_devices(sys.argv)

import jax  # noqa: E402  (after the device count is set)
from absl import flags  # noqa: E402

from identi import io  # noqa: E402
from identi.bin import cli  # noqa: E402
from identi.train import default_config, sharding  # noqa: E402
from identi.train.trainer import abstract_state, build_model, make_train_step  # noqa: E402

_KIND = flags.DEFINE_enum("kind", "topk", ["topk", "batchtopk"], "SAE kind.")
_D_IN = flags.DEFINE_integer("d_in", 512, "Activation width.")
_D_SAE = flags.DEFINE_list("d_sae", ["16384", "65536", "262144"], "Dictionary sizes.")
_MODELS = flags.DEFINE_list("models", ["1", "2", "4", "8"], "Devices per latent shard.")
_K = flags.DEFINE_integer("k", 32, "Active latents per sample.")
_BATCH = flags.DEFINE_integer("batch", 4096, "Global batch (rows).")
flags.DEFINE_integer("devices", 8, "Forced CPU devices (read before JAX starts).")
_OUTPUT = flags.DEFINE_string("output", "", "Optional JSON output.")

MIB = 2 ** 20


def step_memory(d_in: int, d_sae: int, model: int, k: int, batch: int,
                kind: str = "topk") -> dict:
  """XLA's planned per-device memory of one training step (bytes), compiled, not run."""
  config = default_config()
  config.sae.kind, config.sae.d_sae, config.sae.k, config.mesh.model = kind, d_sae, k, model
  config.train.batch_size = batch
  mesh = sharding.training_mesh(model)
  abstract = abstract_state(config, d_in)
  shardings = sharding.latent_shardings(abstract, mesh)
  state = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                       abstract, shardings)
  x = jax.ShapeDtypeStruct((batch, d_in), jax.numpy.float32,
                           sharding=sharding.batch_sharded(mesh))
  step = jax.jit(make_train_step(build_model(config, d_in), config),
                 in_shardings=(shardings, sharding.batch_sharded(mesh)),
                 out_shardings=(shardings, sharding.replicated(mesh)), donate_argnums=0)
  with jax.set_mesh(mesh):
    mem = step.lower(state, x).compile().memory_analysis()
  dictionary = 4 * (2 * d_in * d_sae + d_sae + d_in)
  return {"kind": kind, "d_in": d_in, "d_sae": d_sae, "model": model, "data": jax.device_count() // model,
          "argument_bytes": int(mem.argument_size_in_bytes),
          "temp_bytes": int(mem.temp_size_in_bytes),
          "output_bytes": int(mem.output_size_in_bytes),
          "alias_bytes": int(mem.alias_size_in_bytes),
          "dictionary_bytes": dictionary, "state_bytes": 3 * dictionary}


def main(argv):
  del argv
  rows = []
  for d_sae in map(int, _D_SAE.value):
    for model in map(int, _MODELS.value):
      r = step_memory(_D_IN.value, d_sae, model, _K.value, _BATCH.value, _KIND.value)
      rows.append(r)
      print(f"d_sae {d_sae:>8,}  mesh (data {r['data']}, model {model})  arguments "
            f"{r['argument_bytes'] / MIB:9.1f} MiB  temporaries {r['temp_bytes'] / MIB:9.1f} MiB "
            f"per device  (dictionary {r['dictionary_bytes'] / MIB:.1f} MiB, with Adam "
            f"{r['state_bytes'] / MIB:.1f} MiB)", flush=True)
  if _OUTPUT.value:
    io.write_json(_OUTPUT.value, {"devices": jax.device_count(), "k": _K.value,
                                  "batch": _BATCH.value, "rows": rows})


if __name__ == "__main__":
  cli.run(main)
