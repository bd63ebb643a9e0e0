"""The orbax-owning module: round trips, missing and corrupt checkpoints."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import damage_checkpoint
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


def test_restore_newest_skips_a_damaged_checkpoint_and_keeps_it(tmp_path, caplog):
  ckpt = Checkpointer(str(tmp_path), async_save=False)
  for s in (1, 2, 3):
    ckpt.save(s, _state(s))
  ckpt.close()
  assert damage_checkpoint(tmp_path / "checkpoints" / "3")
  assert damage_checkpoint(tmp_path / "checkpoints" / "2")
  ckpt = Checkpointer(str(tmp_path), async_save=False)
  state, step = ckpt.restore_newest(_state(0))
  assert step == 1 and int(state["step"]) == 1
  assert "skipped the unreadable checkpoint at step 3" in caplog.text
  assert ckpt.all_steps() == [1]  # Steps 2 and 3 can be saved again...
  kept = sorted(p.name.split("-")[0] for p in (tmp_path / "checkpoints_unreadable").iterdir())
  assert kept == ["2", "3"]  # ...and their files are kept aside, not deleted.
  ckpt.save(2, _state(2))
  ckpt.close()
  assert Checkpointer(str(tmp_path), read_only=True).restore_newest(_state(0))[1] == 2


def test_restore_newest_moves_nothing_when_no_checkpoint_fits(tmp_path):
  ckpt = Checkpointer(str(tmp_path), async_save=False)
  ckpt.save(1, _state(1))
  ckpt.save(2, _state(2))
  ckpt.close()
  other = {"step": jnp.int32(0), "params": {"w": jnp.zeros((5, 5))}}  # Another config's shapes.
  ckpt = Checkpointer(str(tmp_path), async_save=False)
  with pytest.raises(CheckpointError, match="checkpoints/2 is unreadable or does not match"):
    ckpt.restore_newest(other)
  assert ckpt.all_steps() == [1, 2] and not (tmp_path / "checkpoints_unreadable").exists()
  assert ckpt.restore_newest(_state(0))[1] == 2
  assert Checkpointer(str(tmp_path / "new"), async_save=False).restore_newest(_state(0)) == (
      None, None)


def test_a_replicated_state_round_trips_and_older_standard_checkpoints_restore(tmp_path):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  from identi.train import sharding  # pylint: disable=g-import-not-at-top
  repl = sharding.replicated(sharding.data_mesh())
  state = jax.device_put(_state(7), repl)
  assert len(state["params"]["w"].addressable_shards) == 8
  # A checkpoint as orbax's StandardSave writes it (identi's format before it saved replicas whole).
  manager = ocp.CheckpointManager(os.path.join(tmp_path, "old", "checkpoints"))
  manager.save(7, args=ocp.args.StandardSave(state), force=True)
  manager.wait_until_finished()
  manager.close()
  ckpt = Checkpointer(str(tmp_path / "new"), async_save=False)
  ckpt.save(7, state)
  ckpt.close()
  for workdir in ("old", "new"):
    restored = Checkpointer(str(tmp_path / workdir), read_only=True).restore(_state(0))
    np.testing.assert_array_equal(restored["params"]["w"], np.full((3, 2), 7.0))
    assert int(restored["step"]) == 7
