"""The orbax-owning module: round trips, missing and corrupt checkpoints."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from identi.errors import CheckpointError
from identi.train import Checkpointer


def _state(v):
  return {"step": jnp.int32(v), "params": {"w": jnp.full((3, 2), float(v))}}


def test_round_trip_and_latest(tmp_path):
  ckpt = Checkpointer(str(tmp_path), async_save=True)
  ckpt.save(1, _state(1))
  ckpt.save(2, _state(2))
  ckpt.wait()
  assert ckpt.latest_step() == 2 and ckpt.all_steps() == [1, 2]
  restored = ckpt.restore(_state(0))
  np.testing.assert_array_equal(restored["params"]["w"], np.full((3, 2), 2.0))
  restored = ckpt.restore(_state(0), step=1)
  assert int(restored["step"]) == 1
  ckpt.close()


def test_max_to_keep(tmp_path):
  ckpt = Checkpointer(str(tmp_path), max_to_keep=2, async_save=False)
  for s in range(1, 5):
    ckpt.save(s, _state(s))
  ckpt.close()
  assert ckpt.all_steps() == [3, 4]


def test_missing_checkpoint_directory(tmp_path):
  with pytest.raises(CheckpointError, match="no checkpoint directory.*train first"):
    Checkpointer(str(tmp_path / "nothing"), read_only=True)
  ckpt = Checkpointer(str(tmp_path))
  with pytest.raises(CheckpointError, match="no checkpoint in"):
    ckpt.restore(_state(0))


def test_corrupt_checkpoint_names_path_and_fallback(tmp_path):
  ckpt = Checkpointer(str(tmp_path), async_save=False)
  ckpt.save(1, _state(1))
  ckpt.save(2, _state(2))
  ckpt.close()
  step_dir = tmp_path / "checkpoints" / "2"
  for root, _, files in os.walk(step_dir):
    for name in files:
      with open(os.path.join(root, name), "wb") as f:
        f.write(b"garbage")
  ckpt = Checkpointer(str(tmp_path), read_only=True)
  with pytest.raises(CheckpointError, match=r"checkpoints/2 is unreadable.*resume from step 1"):
    ckpt.restore(_state(0))
  np.testing.assert_array_equal(ckpt.restore(_state(0), step=1)["params"]["w"], 1.0)


def test_restore_takes_target_sharding(tmp_path):
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  ckpt = Checkpointer(str(tmp_path), async_save=False)
  ckpt.save(1, _state(1))
  target = jax.device_put(_state(0), sharding)
  restored = ckpt.restore(target)
  assert restored["params"]["w"].sharding == sharding
  ckpt.close()
