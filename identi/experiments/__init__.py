"""The pipeline over any subject: identify -> capture -> graph -> steer.

- `identify`: train every SAE variant and baseline on data with known concepts and score how well
  their units recover them (MCC of encoder codes and of minimal codes).
- `capture`: read a subject's activations at its sites, labelled by its world.
- `graph`: one SAE per site, MCC per level, the concept graph between levels.
- `steer`: edit concepts through the SAE units and score the edits with the world's reader.

Each stage's `run(config, workdir)` picks the subject by ``config.subject.kind`` from the registry
in `identi.subjects` (identify needs no subject: it reads a world or data files).
"""
from identi.experiments import capture, graph, identify, saes, steer

__all__ = ["capture", "graph", "identify", "saes", "steer"]
