"""The diffusion subject with the identifiable recipe and shared ancestors at every timestep.

  python -m identi.bin.capture --config=configs/scenes_ancestors.py --workdir=runs/scenes_anc
  python -m identi.bin.concept_graph --config=configs/scenes_ancestors.py \
      --workdir=runs/scenes_anc
  python -m paper.make_figures --only=scenes_ancestors   # both, and the figures

configs/scenes_identifiable.py with `minimality.ancestors = 'always'`: each timestep's stage also
adds the directions its atoms share as units (`identi.infer.ancestors`), not only on the refined
route. Results: docs/experiments/scenes_concepts.md. Smoke variant:
configs/scenes_ancestors.py:smoke
"""

from identi.experiments.saes import identifiable_sites
from identi.subjects import get_subject


def get_config(arg=None):
  subject = get_subject("scenes")
  config = identifiable_sites(subject.variant(subject.default_config(), arg))
  config.minimality.max_atoms = 26  # As configs/scenes_identifiable.py.
  config.minimality.ancestors = "always"
  return config
