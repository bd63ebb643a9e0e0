"""Checkpointing: the one module of identi that calls orbax.

A checkpoint is the whole training state pytree (step, parameters, statistics, optimiser state,
dead-latent counters), saved under `WORKDIR/checkpoints/<step>`. Orbax writes each checkpoint to a
temporary directory and renames it when complete, so a run killed mid-save leaves the previous
checkpoint as the latest valid one. A checkpoint damaged after it was written (a truncated or
corrupt array file) is skipped by `restore_newest`: the run resumes from the newest readable one,
and the damaged one is moved to `WORKDIR/checkpoints_unreadable/` (kept, never deleted).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from identi.errors import CheckpointError

CHECKPOINT_SUBDIR = "checkpoints"
UNREADABLE_SUBDIR = "checkpoints_unreadable"
logger = logging.getLogger(__name__)


def _item_handler() -> ocp.PyTreeCheckpointHandler:
  """The handler of `ocp.StandardSave` (same files), except that a replicated array is written
  whole from one device. Orbax's default on CPU and TPU cuts it into one slice per replica, each an
  eagerly dispatched op: thousands of them per save of a state replicated over 8 CPU devices."""
  registry = ocp.type_handlers.create_type_handler_registry(
      (jax.Array, ocp.type_handlers.ArrayHandler(use_replica_parallel=False)),
      *((ty, ocp.type_handlers.get_type_handler(ty))
        for ty in (int, float, bytes, np.number, np.ndarray, str)))
  return ocp.PyTreeCheckpointHandler(type_handler_registry=registry)


class Checkpointer:
  """Saves and restores training-state pytrees in `workdir/checkpoints`."""

  def __init__(self, workdir: str, *, max_to_keep: int = 3, async_save: bool = True,
               read_only: bool = False):
    self.directory = os.path.join(os.path.abspath(workdir), CHECKPOINT_SUBDIR)
    if read_only and not os.path.isdir(self.directory):
      raise CheckpointError(
          f"no checkpoint directory at {self.directory}; train first with "
          f"`python -m identi.bin.train --config=... --workdir={workdir}`")
    # A reader never saves, so it needs no read_only flag (which only makes orbax warn).
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep,
        enable_async_checkpointing=async_save and not read_only,
        create=not read_only,
    )
    self._manager = ocp.CheckpointManager(self.directory, options=options,
                                          item_handlers=_item_handler())
    self._read_only = read_only

  def latest_step(self) -> int | None:
    """The step of the newest complete checkpoint, or None."""
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any) -> None:
    """Saves `state` at `step` (asynchronously if configured); an existing step is kept."""
    if step in self._manager.all_steps():
      return
    self._manager.save(step, args=ocp.args.PyTreeSave(state), force=True)

  def restore(self, abstract_state: Any, step: int | None = None) -> Any:
    """Restores the checkpoint at `step` (default: latest) into the structure of `abstract_state`.

    `abstract_state` is a pytree of arrays or `jax.ShapeDtypeStruct`s with shardings, e.g. a freshly
    initialised state; restored arrays take its shardings.
    """
    if step is None:
      step = self.latest_step()
    if step is None:
      raise CheckpointError(
          f"no checkpoint in {self.directory}; train first with `python -m identi.bin.train`")
    target = jax.tree.map(_abstract, abstract_state)
    path = os.path.join(self.directory, str(step))
    try:
      return self._manager.restore(step, args=ocp.args.PyTreeRestore(
          target, restore_args=ocp.checkpoint_utils.construct_restore_args(target)))
    except Exception as e:  # orbax raises many types for unreadable data.
      first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
      older = [s for s in self.all_steps() if s < step]
      fallback = (f"delete {path} to resume from step {max(older)}" if older
                  else f"delete {path} to start over")
      raise CheckpointError(
          f"checkpoint {path} is unreadable or does not match the config "
          f"({type(e).__name__}: {first_line[:200]}); {fallback}, or use a new workdir") from e

  def restore_newest(self, abstract_state: Any) -> tuple[Any, int | None]:
    """(state, step) of the newest checkpoint that restores, or (None, None) when there is none.

    A newer checkpoint that fails while an older one restores is damaged, not of another config:
    it is logged with the reason, and (unless read-only) moved to `checkpoints_unreadable/` so the
    run can save that step again. When no checkpoint restores, the newest one's CheckpointError
    is raised and nothing is moved.
    """
    steps = sorted(self.all_steps(), reverse=True)
    failures = []
    for step in steps:
      try:
        state = self.restore(abstract_state, step)
      except CheckpointError as e:
        failures.append((step, e))
        continue
      for bad, error in failures:
        logger.warning("skipped the unreadable checkpoint at step %d (%s); resuming from step %d",
                       bad, str(error.__cause__ or error).strip().splitlines()[0][:200], step)
        self._set_aside(bad)
      if failures and not self._read_only:
        self._manager.reload()
      return state, step
    if failures:
      raise failures[0][1]
    return None, None

  def _set_aside(self, step: int) -> None:
    if self._read_only:
      return
    dest = os.path.join(os.path.dirname(self.directory), UNREADABLE_SUBDIR,
                        f"{step}-{time.strftime('%Y%m%dT%H%M%S')}")
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    shutil.move(os.path.join(self.directory, str(step)), dest)
    logger.warning("moved the unreadable checkpoint of step %d to %s", step, dest)

  def wait(self) -> None:
    """Blocks until pending asynchronous saves are on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def _abstract(x: Any) -> Any:
  if isinstance(x, jax.Array):
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
  return x
