"""The transformer subject: a small decoder-only transformer trained on the default grammar world.

  python -m identi.bin.train_subject --config=configs/grammar_lm.py \
      --workdir=runs/grammar_lm --export=identi/subjects/assets/grammar_lm.bin

World: identi.subjects.grammar defaults (18 words in 6 phrases of 3 words in 2 sentence types;
tau = 2, pi = 0.3, leak eps = 0.001, groups in random order; 26 tokens, vocabulary 22). Model:
d_model 128, 2 pre-LayerNorm blocks of 4 heads, MLP ratio 4 (405,782 parameters; the export is
1.55 MB); 3,000 steps of 128 sequences, Adam 1e-3 with 200 warm-up steps and linear decay over the
last 30%, EMA 0.999; final samples: 2,048 at temperature 1 from the EMA params.
Time on 2 CPU cores shared with other jobs (load 5-9): 675 s of training (about 0.22 s a step,
450-800 sequences/s), 33 s of sampling, 735 s for the whole command.
Measured (final.json of the shipped checkpoint identi/subjects/assets/grammar_lm.bin): grammatical
rate of samples 0.9858 (gate >= 0.95) against 0.9951 for the world's own sequences; words /
phrases / sentence types per sequence 5.49 / 2.58 / 1.18 against 5.54 / 2.61 / 1.19 in training;
mean absolute gap of the per-concept frequencies 0.014 / 0.016 / 0.017; next-token loss on world
sequences 0.911 nats.
Smoke variant for tests: --config=configs/grammar_lm.py:smoke
"""

from identi.subjects.lm_training import default_lm_subject_config, lm_subject_variant


def get_config(arg=None):
  return lm_subject_variant(default_lm_subject_config(), arg)
