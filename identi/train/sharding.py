"""Data-parallel sharding over all devices of all processes, and multi-host start-up.

identi trains data-parallel: parameters and optimiser state are replicated, the batch is split
along its first axis over a one-axis mesh named 'data' that spans every device of every process
(`jax.make_mesh`). Each process reads only its own rows of a global batch.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from identi.errors import ConfigError

DATA_AXIS = "data"


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
  return jax.make_array_from_process_local_data(
      sharding, local, (global_rows,) + tuple(local.shape[1:]))
