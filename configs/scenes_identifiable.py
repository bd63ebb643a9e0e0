"""The diffusion subject with the identifiable recipe at every timestep and a sign-aware graph.

  python -m identi.bin.capture --config=configs/scenes_identifiable.py --workdir=runs/scenes_id
  python -m identi.bin.concept_graph --config=configs/scenes_identifiable.py \
      --workdir=runs/scenes_id
  python -m paper.make_figures --only=scenes_identifiable   # both, and the figures

configs/scenes_concepts.py (same capture: its `capture/` may be copied into the workdir) with each
timestep's SAE trained as in configs/sae_identifiable.py: BatchTopK with twice the width, then the
minimality stage, which keeps at most 52 atoms and codes with at most k = 26 of them.
Results: docs/experiments/scenes_concepts.md. Smoke variant: configs/scenes_identifiable.py:smoke
"""

from identi.experiments.saes import identifiable_sites
from identi.subjects import get_subject


def get_config(arg=None):
  subject = get_subject("scenes")
  config = identifiable_sites(subject.variant(subject.default_config(), arg))
  # At most k = 26 atoms per code of the stage instead of 2k: the cost of each code's
  # non-negative least squares grows with the cube of its atoms.
  config.minimality.max_atoms = 26
  return config
