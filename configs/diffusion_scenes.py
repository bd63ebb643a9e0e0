"""The diffusion subject: a small U-Net trained on the default scenes world (16 x 16 images).

  python -m identi.bin.train_subject --config=configs/diffusion_scenes.py \
      --workdir=runs/diffusion_scenes --export=runs/diffusion_scenes/subject.bin

World: identi.subjects.scenes defaults (18 parts in 6 objects of 3 parts in 2 scene types;
tau = 2, pi = 0.3, leak eps = 0.01, fixed placement). Model: epsilon-prediction U-Net, widths
(32, 64, 64), one residual block per stage (423,009 parameters; the export is about 1.7 MB),
cosine schedule in continuous time; 8,000 steps of 64 images, Adam 1e-3 with 200 warm-up steps
and linear decay over the last 30%, EMA 0.999; final samples: 1,024 with 50 DDIM steps, eta = 1.
Time on 2 CPU cores: about 0.13 s a step on an idle machine (500 images/s, 18 min in all),
2-4 times slower while other jobs share the cores.
Measured (final.json of the shipped checkpoint identi/subjects/assets/diffusion_scenes.bin, 1,024
samples): coherence_generated 0.908 (eta = 1; gate >= 0.9), coherence_generated_eta0 0.839
(deterministic DDIM), coherence_train 0.947; detected parts / objects / scenes per image 5.65 /
2.60 / 1.16 against 5.41 / 2.53 / 1.16 in training. Resuming a killed run gives the same losses.
Smoke variant for tests: --config=configs/diffusion_scenes.py:smoke
"""

from identi.subjects.training import default_subject_config, subject_variant


def get_config(arg=None):
  return subject_variant(default_subject_config(), arg)
