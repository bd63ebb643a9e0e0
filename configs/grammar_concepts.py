"""Concepts of the transformer subject across layers, and steering during generation (issue 7).

  python -m identi.bin.capture --config=configs/grammar_concepts.py --workdir=runs/grammar
  python -m identi.bin.concept_graph --config=configs/grammar_concepts.py --workdir=runs/grammar
  python -m identi.bin.steer --config=configs/grammar_concepts.py --workdir=runs/grammar

Subject: the shipped transformer (identi/subjects/assets/grammar_lm.bin, configs/grammar_lm.py).
8,192 sequences sampled at temperature 1; the residual stream entering block_0 (embed) and after
block_0 and block_1 is read at every position from BOS to EOS (81,623 rows, 128 dims); 1,024
sequences (10,369 rows) are held out of SAE training for the table, the graph and the steering
values. One BatchTopK SAE per layer (52 units, k = 5, 3,000 steps); the graph links words at
embed to phrases at block_0 and sentence types at block_1 from presence per sequence (encoder
codes at half their typical value, rule 'threshold', candidates ranked by contrast, 0.5).
Steering: 3 modes x 504 generations (84 per phrase, from a pool of 2,048 where the phrase is
absent), raised units set to their 90th-percentile active code; flat = the block_1 SAE.

Measured (runs/grammar_v3; 2 CPU cores): capture 160 s (98.5% of the samples grammatical;
5.40 / 2.54 / 1.17 words / phrases / sentence types per sequence), concept_graph about 150 s,
steer about 150 s.

  MCC    level_1 (words)  level_2 (phrases)  level_3 (sentence types)
  embed       0.907             0.534               0.203
  block_0     0.689             0.644               0.204
  block_1     0.656             0.630               0.217

  graph  1->2 (embed->block_0): precision 1.0, recall 0.556, F1 0.714, AUROC 0.987
         2->3 (block_0->block_1): precision 1.0, recall 0.167, F1 0.286, AUROC 0.583

  steering (success / coherence / preservation), unedited samples 98.6% grammatical:
    phrase  0.357 / 0.740 / 0.780   (the block_0 unit of the phrase)
    parts   0.040 / 0.573 / 0.774   (its learned parents at embed, 3.3 per phrase)
    flat    0.417 / 0.339 / 0.671   (the best-matched block_1 unit)

Words are read best at embed, where they enter; phrases after block_0; sentence types barely per
position. Units of BOS, SEP, EOS and early positions are present in every sequence; ranked by
necessity they crowd the words out of the parent candidates (F1 0.0), ranked by contrast the
graph finds 10 of the 18 word -> phrase edges with no false one.
Smoke variant for tests: --config=configs/grammar_concepts.py:smoke
"""

from identi.subjects.lm_experiment import default_lm_experiment_config, lm_experiment_variant


def get_config(arg=None):
  return lm_experiment_variant(default_lm_experiment_config(), arg)
