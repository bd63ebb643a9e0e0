"""The steering stage of the pipeline: edit a subject's concepts through its SAE units.

`run(config, workdir)` asks the registry for ``config.subject.kind`` and runs that subject's
steering experiment (which trains or reuses the SAEs and the learned graph of the graph stage).
Each subject scores edits with its own reader: `hsm` against numpyro ``do()`` interventions on the
world, `scenes` with the scene detectors on the steered DDIM samples, `grammar` with the parser on
the steered generations. Writes ``steering.json`` and figures.

Not to be confused with `identi.steer`, the library of code edits (set, scale, ablate, inject a
unit and decode) that every subject's steering uses.
"""

from __future__ import annotations

import os
from typing import Any

import ml_collections

from identi.subjects.base import load_subject_for

STEERING_FILE = "steering.json"


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """The steering stage of ``config.subject.kind``."""
  return load_subject_for(config).run_steering(os.path.abspath(workdir))
