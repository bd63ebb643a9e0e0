"""Concepts of the transformer subject across layers, and steering during generation (kind `grammar`).

  python -m identi.bin.capture --config=configs/grammar_concepts.py --workdir=runs/grammar
  python -m identi.bin.concept_graph --config=configs/grammar_concepts.py --workdir=runs/grammar
  python -m identi.bin.steer --config=configs/grammar_concepts.py --workdir=runs/grammar

Subject: the shipped transformer (identi/subjects/assets/grammar_lm.bin, configs/grammar_lm.py).
8,192 sequences sampled at temperature 1; the residual stream entering block_0 (embed) and after
block_0 and block_1 is read at every position from BOS to EOS; 1,024 sequences are held out of SAE
training for the table, the graph and the steering values. One BatchTopK SAE per layer (52 units,
3,000 steps); the graph links words at embed to phrases at block_0 and sentence types at block_1
from presence per sequence (encoder codes at half their typical value, rule 'threshold',
candidates ranked by contrast). Steering: 3 modes x 504 generations (84 per phrase, from a pool
of 2,048 where the phrase is absent), raised units set to their 90th-percentile active code;
flat = the block_1 SAE. Results: docs/experiments/grammar_concepts.md.
Smoke variant for tests: --config=configs/grammar_concepts.py:smoke
"""

from identi.subjects import get_subject


def get_config(arg=None):
  subject = get_subject("grammar")
  return subject.variant(subject.default_config(), arg)
