"""The diffusion subject: a small U-Net trained on the default scenes world (16 x 16 images).

  python -m identi.bin.train_subject --config=configs/diffusion_scenes.py \
      --workdir=runs/diffusion_scenes --export=runs/diffusion_scenes/subject.bin

World: identi.subjects.scenes defaults (18 parts in 6 objects of 3 parts in 2 scene types;
tau = 2, pi = 0.3, leak eps = 0.02, fixed placement). Model: epsilon-prediction U-Net, widths
(32, 64, 64), one residual block per stage (423,009 parameters; the export is about 1.7 MB),
cosine schedule in continuous time; 8,000 steps of 64 images, Adam 1e-3 with 200 warm-up steps
and linear decay over the last 30%, EMA 0.999; final samples: 1,024 with 50 DDIM steps, eta = 1.
Time on 2 CPU cores: about 0.13 s a step on an idle machine (500 images/s, 18 min in all),
2-4 times slower while other jobs share the cores.
Expected result (final.json): coherence_train about 0.94; coherence_generated about 0.87-0.9
(eta = 1) and coherence_generated_eta0 about 0.8 (deterministic DDIM), with about 5.5 detected
parts per image against 5.4 in training. Measured at 4,000 steps: 0.87 (eta = 1), 0.78 (eta = 0).
Smoke variant for tests: --config=configs/diffusion_scenes.py:smoke
"""

from identi.subjects.training import default_subject_config, subject_variant


def get_config(arg=None):
  return subject_variant(default_subject_config(), arg)
