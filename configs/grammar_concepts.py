"""Concepts of the transformer subject across layers, and steering during generation (issue 7).

  python -m identi.bin.capture --config=configs/grammar_concepts.py --workdir=runs/grammar
  python -m identi.bin.concept_graph --config=configs/grammar_concepts.py --workdir=runs/grammar
  python -m identi.bin.steer --config=configs/grammar_concepts.py --workdir=runs/grammar

Subject: the shipped transformer (identi/subjects/assets/grammar_lm.bin, configs/grammar_lm.py).
8,192 sequences sampled at temperature 1; the residual stream after block_0 and block_1 is read at
every position from BOS to EOS (81,623 rows, 128 dims); 1,024 sequences (10,369 rows) are held out
of SAE training for the table, the graph and the steering values. One BatchTopK SAE per layer (52
units, k = 5, 3,000 steps); the graph links words at block_0 to phrases and sentence types at
block_1 from presence per sequence (encoder codes, rule 'threshold', necessity 0.5). Steering:
3 modes x 258 generations (43 per phrase, from a pool of 2,048 where the phrase is absent), raised
units set to their 90th-percentile active code.

Measured (runs/grammar; 2 CPU cores shared with other jobs): capture 159 s (98.5% of the
samples grammatical; 5.40 / 2.54 / 1.17 words / phrases / sentence types per sequence, 2.84
active latents per position), concept_graph 171 s, steer 79 s.

  MCC    level_1 (words)  level_2 (phrases)  level_3 (sentence types)
  block_0     0.689             0.644               0.204
  block_1     0.656             0.630               0.217

  graph  1->2 (block_0->block_1): precision 0.25, recall 0.056, F1 0.091, AUROC 0.742
         (77 learned edges, 18 true); 2->3 (block_1->block_1): F1 0.0, AUROC 0.819 (96 learned
         edges among all units, none between matched units; 6 true).

  steering (success / coherence / preservation), unedited samples 98.6% grammatical:
    phrase  0.399 / 0.341 / 0.705   (strength 0.5: 0.283 / 0.787 / 0.860)
    parts   0.085 / 0.609 / 0.833   (1.8 learned parents per phrase unit; 0.043 / 0.938 / 0.938)
    flat    0.357 / 0.721 / 0.780   (block_0's best unit; 0.124 / 0.961 / 0.925)

Words and phrases are read per position with MCC about 0.65; sentence types, a property of the
whole sequence, are barely readable per position in a causal model. Units fire in about half the
sequences, so presence per sequence is noisy and the extracted graph has many spurious edges
(the edge scores still rank true edges above chance: AUROC 0.74-0.82). Raising a phrase unit
makes the phrase appear in 40% of the generations, often by repeating one of its words, which
breaks the grammar; raising the learned parts rarely builds the phrase.
Smoke variant for tests: --config=configs/grammar_concepts.py:smoke
"""

from identi.subjects.lm_experiment import default_lm_experiment_config, lm_experiment_variant


def get_config(arg=None):
  return lm_experiment_variant(default_lm_experiment_config(), arg)
