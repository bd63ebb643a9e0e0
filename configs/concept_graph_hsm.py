"""The concept graph and steering on the default 3-level selection world (issue 4's experiment).

  python -m identi.bin.concept_graph --config=configs/concept_graph_hsm.py --workdir=runs/concepts
  python -m identi.bin.steer --config=configs/concept_graph_hsm.py --workdir=runs/concepts

World: 48 level-1 parts, 24 level-2 wholes of 2 parts, 6 level-3 wholes of 2 level-2 wholes
(pi = 0.3, leak eps = 0.3; 8.9 / 2.2 / 0.11 active concepts per level), 2^16 samples, observed by
pure level views x_l = A_l z[l] in d = 96, 48, 16. One TopK SAE per view (2 latents per concept,
k = ceil(1.5 x mean active)); minimal codes; 8,192 held-out samples. The two binaries share the
workdir: the second reuses the SAEs the first trained. Measured numbers: README "Concept graphs
and steering". Smoke variant for tests: --config=configs/concept_graph_hsm.py:smoke
"""

from identi.concepts.experiment import concept_variant, default_concept_config


def get_config(arg=None):
  return concept_variant(default_concept_config(), arg)
