"""The transformer subject: a small decoder-only transformer trained on the default grammar world.

  python -m identi.bin.train_subject --config=configs/grammar_lm.py \
      --workdir=runs/grammar_lm --export=identi/subjects/assets/grammar_lm.bin

World: identi.subjects.grammar defaults (18 words in 6 phrases of 3 words in 2 sentence types;
tau = 2, pi = 0.3, leak eps = 0.001, groups in random order; 26 tokens, vocabulary 22). Model:
d_model 128, 2 pre-LayerNorm blocks of 4 heads, MLP ratio 4 (405,782 parameters; the export is
1.55 MB); 3,000 steps of 128 sequences, Adam 1e-3 with 200 warm-up steps and linear decay over the
last 30%, EMA 0.999; final samples: 2,048 at temperature 1 from the EMA params.
Results: docs/experiments/grammar_concepts.md.
Smoke variant for tests: --config=configs/grammar_lm.py:smoke
"""

import ml_collections

from identi.subjects.grammar_training import default_lm_subject_config, lm_subject_variant


def get_config(arg=None):
  config = lm_subject_variant(default_lm_subject_config(), arg)
  config.subject = ml_collections.ConfigDict({"kind": "grammar"})  # Which trainer runs.
  return config
