"""The concept graph and steering on the default 3-level selection world (subject kind `hsm`).

  python -m identi.bin.concept_graph --config=configs/concept_graph_hsm.py --workdir=runs/concepts
  python -m identi.bin.steer --config=configs/concept_graph_hsm.py --workdir=runs/concepts

World: 48 level-1 parts, 24 level-2 wholes of 2 parts, 6 level-3 wholes of 2 level-2 wholes
(pi = 0.3, leak eps = 0.3), 2^16 samples, observed by pure level views x_l = A_l z[l] in d = 96,
48, 16. One TopK SAE per view (2 latents per concept, k = ceil(1.5 x mean active)); minimal codes;
8,192 held-out samples. The two binaries share the workdir: the second reuses the SAEs the first
trained. Results: docs/experiments/concept_graph_hsm.md.
Smoke variant for tests: --config=configs/concept_graph_hsm.py:smoke
"""

from identi.subjects import get_subject


def get_config(arg=None):
  subject = get_subject("hsm")
  return subject.variant(subject.default_config(), arg)
