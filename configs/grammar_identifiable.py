"""Grammar subject, identifiable recipe per layer, sign-aware graph (kind `grammar`).

  python -m identi.bin.capture --config=configs/grammar_identifiable.py --workdir=runs/grammar_id
  python -m identi.bin.concept_graph --config=configs/grammar_identifiable.py \
      --workdir=runs/grammar_id
  python -m paper.make_figures --only=grammar_identifiable   # both, and the figures

The capture of configs/grammar_concepts.py; every layer's SAE as configs/sae_identifiable.py
trains it (at most 52 atoms kept). Docs: docs/experiments/grammar_concepts.md.
Smoke variant for tests: --config=configs/grammar_identifiable.py:smoke
"""

from identi.experiments.saes import identifiable_sites
from identi.subjects import get_subject


def get_config(arg=None):
  subject = get_subject("grammar")
  return identifiable_sites(subject.variant(subject.default_config(), arg))
