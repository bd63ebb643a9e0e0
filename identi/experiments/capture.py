"""The capture stage of the pipeline: activations at a subject's sites, labelled by its world.

`run(config, workdir)` asks the registry for ``config.subject.kind`` and runs that subject's
capture, which writes one `identi.data` shard directory per site (``capture/<site>``: the
activations, with the ground-truth latents of every level as the shards' latents) and
``capture/labels.npz`` (what the subject's reader found in each sample). A finished capture is
reused: the stage is skipped when ``labels.npz`` exists.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import ml_collections
import numpy as np

from identi import data as data_lib
from identi import io
from identi.errors import DataError
from identi.subjects.base import load_subject_for

CAPTURE_DIR = "capture"
LABELS_FILE = "labels.npz"
logger = logging.getLogger(__name__)


def capture_dir(workdir: str) -> str:
  """Where the capture of `workdir` lives."""
  return os.path.join(os.path.abspath(workdir), CAPTURE_DIR)


def labels_path(workdir: str) -> str:
  return os.path.join(capture_dir(workdir), LABELS_FILE)


def write_capture(workdir: str, acts: dict[str, np.ndarray], z: np.ndarray,
                  labels: dict[str, np.ndarray]) -> None:
  """Writes the shards of every site (activations `acts[site]`, latents `z`) and then, last and
  atomically, ``labels.npz`` (so a killed capture is redone, never half reused)."""
  out = capture_dir(workdir)
  for site, x in acts.items():
    data_lib.write_shards(os.path.join(out, site), x, z=z)
  with io.atomic_path(labels_path(workdir)) as tmp:
    np.savez(tmp, **labels)


def read_labels(workdir: str, command: str = "--config=...") -> dict[str, np.ndarray]:
  """Every array of ``capture/labels.npz``; DataError saying how to capture when it is missing."""
  path = labels_path(workdir)
  if not os.path.exists(path):
    raise DataError(f"no captured activations at {path}; run `python -m identi.bin.capture "
                    f"{command} --workdir={workdir}` first")
  with np.load(path) as f:
    return {k: f[k] for k in f.files}


def levels_of(labels: dict[str, np.ndarray]) -> list[np.ndarray]:
  """The per-level arrays ``a1, a2, ...`` of a labels file, in level order."""
  names = sorted((k for k in labels if k[0] == "a" and k[1:].isdigit()), key=lambda k: int(k[1:]))
  return [labels[k] for k in names]


class Progress:
  """A progress line with rate and ETA for `total` items of a stage (default: a capture)."""

  def __init__(self, total: int, unit: str, stage: str = "capture"):
    self.total, self.unit, self.stage = total, unit, stage
    self.start = time.perf_counter()

  def update(self, done: int) -> None:
    rate = done / max(time.perf_counter() - self.start, 1e-9)
    eta = time.strftime("%H:%M:%S", time.gmtime((self.total - done) / max(rate, 1e-9)))
    logger.info("%s %d/%d %s | %.3g %s/s | ETA %s", self.stage, done, self.total, self.unit, rate,
                self.unit, eta)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """The capture stage of ``config.subject.kind`` (skipped when already captured)."""
  return load_subject_for(config).run_capture(os.path.abspath(workdir))
