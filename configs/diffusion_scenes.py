"""The diffusion subject: a small U-Net trained on the default scenes world (16 x 16 images).

  python -m identi.bin.train_subject --config=configs/diffusion_scenes.py \
      --workdir=runs/diffusion_scenes --export=runs/diffusion_scenes/subject.bin

World: identi.subjects.scenes defaults (18 parts in 6 objects of 3 parts in 2 scene types;
tau = 2, pi = 0.3, leak eps = 0.01, fixed placement). Model: epsilon-prediction U-Net, widths
(32, 64, 64), one residual block per stage (423,009 parameters; the export is about 1.7 MB),
cosine schedule in continuous time; 8,000 steps of 64 images, Adam 1e-3 with 200 warm-up steps
and linear decay over the last 30%, EMA 0.999; final samples: 1,024 with 50 DDIM steps, eta = 1.
Results: docs/experiments/scenes_concepts.md.
Smoke variant for tests: --config=configs/diffusion_scenes.py:smoke
"""

import ml_collections

from identi.subjects.scenes_training import default_subject_config, subject_variant


def get_config(arg=None):
  config = subject_variant(default_subject_config(), arg)
  config.subject = ml_collections.ConfigDict({"kind": "scenes"})  # Which trainer runs.
  return config
