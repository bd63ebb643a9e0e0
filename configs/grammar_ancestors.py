"""Grammar subject, identifiable recipe with shared ancestors at every site (kind `grammar`).

  python -m identi.bin.capture --config=configs/grammar_ancestors.py --workdir=runs/grammar_anc
  python -m identi.bin.concept_graph --config=configs/grammar_ancestors.py \
      --workdir=runs/grammar_anc
  python -m paper.make_figures --only=grammar_ancestors   # both, and the figures

configs/grammar_identifiable.py with `minimality.ancestors = 'always'`: each site's stage also
adds the directions its atoms share as units (`identi.infer.ancestors`), not only on the refined
route, so a phrase shared by its words' units at a layer becomes a unit of that layer.
Docs: docs/experiments/grammar_concepts.md.
Smoke variant for tests: --config=configs/grammar_ancestors.py:smoke
"""

from identi.experiments.saes import identifiable_sites
from identi.subjects import get_subject


def get_config(arg=None):
  subject = get_subject("grammar")
  config = identifiable_sites(subject.variant(subject.default_config(), arg))
  config.minimality.ancestors = "always"
  return config
