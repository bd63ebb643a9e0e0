"""Sharding over all devices of all processes, and multi-host start-up.

By default identi trains data-parallel: parameters and optimiser state are replicated, the batch
is split along its first axis over a one-axis mesh named 'data' that spans every device of every
process (`jax.make_mesh`). Each process reads only its own rows of a global batch.

With `mesh.model` = m > 1 the mesh has two axes, ('data', 'model') of shape (devices / m, m):
the batch is split over 'data', and the SAE's latent axis over 'model' (`latent_shardings`):
W_enc's columns, b_enc, W_dec's rows, the JumpReLU thresholds, their Adam moments and the
dead-latent counters, so each device holds 1/m of the dictionary and its optimiser state. XLA's
SPMD partitioner inserts the collectives; top-k selections over latents stay exact.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from identi.errors import ConfigError

DATA_AXIS = "data"
MODEL_AXIS = "model"
#: State leaves (by their name in the pytree) whose axis `LATENT_AXES[name]` is the latent axis.
LATENT_AXES = {"W_enc": 1, "b_enc": 0, "W_dec": 0, "log_threshold": 0, "tokens_since_fired": 0}


def initialize_distributed(coordinator_address: str, num_processes: int, process_id: int) -> None:
  """Joins a multi-process JAX run (`jax.distributed`); on CPU the collectives use gloo.

  Call before any other JAX call. With num_processes <= 1 this does nothing.
  """
  if num_processes <= 1:
    return
  if not 0 <= process_id < num_processes:
    raise ConfigError(
        f"process_id {process_id} is outside [0, {num_processes}); give each process a distinct "
        "id from 0 to num_processes - 1")
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id)


def data_mesh() -> Mesh:
  """A one-axis mesh over every device of every process."""
  return jax.make_mesh((jax.device_count(),), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def training_mesh(model: int = 1) -> Mesh:
  """The ('data', 'model') mesh with `model` devices per latent shard; `data_mesh()` for 1."""
  n = jax.device_count()
  if isinstance(model, bool) or not isinstance(model, int) or model < 1 or n % model:
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    raise ConfigError(f"config key 'mesh.model' is {model!r}; it must divide the {n} devices: "
                      f"use one of {', '.join(map(str, divisors))}")
  if model == 1:
    return data_mesh()
  return jax.make_mesh((n // model, model), (DATA_AXIS, MODEL_AXIS),
                       axis_types=(AxisType.Auto, AxisType.Auto))


def latent_shardings(tree, mesh: Mesh):
  """A pytree of NamedShardings for `tree` (arrays or ShapeDtypeStructs): the leaves named in
  LATENT_AXES split along their latent axis over 'model' when the mesh has that axis (and the axis
  divides evenly), every other leaf replicated."""
  repl = NamedSharding(mesh, P())
  if MODEL_AXIS not in mesh.axis_names:
    return jax.tree.map(lambda _: repl, tree)
  shards = mesh.shape[MODEL_AXIS]

  def rule(path, leaf):
    name = next((getattr(k, "key", None) for k in reversed(path)
                 if isinstance(getattr(k, "key", None), str)), None)
    axis = LATENT_AXES.get(name)
    shape = getattr(leaf, "shape", ())
    if axis is None or len(shape) <= axis or shape[axis] % shards:
      return repl
    spec = [None] * len(shape)
    spec[axis] = MODEL_AXIS
    return NamedSharding(mesh, P(*spec))

  return jax.tree_util.tree_map_with_path(rule, tree)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(batch_size: int, key: str) -> None:
  """Raises ConfigError unless the batch splits evenly over devices and processes."""
  n = jax.device_count()
  if batch_size % n:
    raise ConfigError(
        f"config key '{key}' is {batch_size}, not divisible by the {n} devices; "
        f"use a multiple of {n}, e.g. {max(n, batch_size // n * n)}")


def local_rows(global_batch_size: int) -> slice:
  """The rows of a global batch that this process feeds to its local devices."""
  per_process = global_batch_size // jax.process_count()
  start = jax.process_index() * per_process
  return slice(start, start + per_process)


def make_global_batch(local: np.ndarray, sharding: NamedSharding, global_rows: int) -> jax.Array:
  """Assembles a batch sharded over all devices from this process's rows."""
  if jax.process_count() == 1:  # The same array; device_put costs a fraction of the general path.
    return jax.device_put(local, sharding)
  return jax.make_array_from_process_local_data(
      sharding, local, (global_rows,) + tuple(local.shape[1:]))
