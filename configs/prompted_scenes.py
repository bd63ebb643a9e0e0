"""The prompted (text-to-image) diffusion subject: a U-Net conditioned on prompts of the scenes
world.

  python -m identi.bin.train_subject --config=configs/prompted_scenes.py \
      --workdir=runs/prompted_scenes --export=runs/prompted_scenes/subject.bin

World: identi.subjects.scenes defaults (as configs/diffusion_scenes.py). Prompts
(identi.subjects.prompts): every present object, each present scene type with probability 0.5 and
each present part with probability 0.1, in random order with filler words; 20% under-specified
(only the scene types); 10% dropped to the empty prompt for classifier-free guidance. Model: the
U-Net of configs/diffusion_scenes.py plus a prompt encoder (token embeddings, one self-attention
layer, width 64) whose attention-pooled summary joins the time embedding and which the 'mid' and
'up_1' stages cross-attend to (500,129 parameters; the export is about 2 MB). Training starts from
the shipped unconditional U-Net (identi/subjects/assets/diffusion_scenes.bin; the prompt's output
layers start at zero): 2,000 steps of 64 images with their prompts, Adam 5e-4 with 100 warm-up
steps and linear decay over the last 30%, EMA 0.995. Final samples: 1,024, each prompted with the
prompt of one world image, 50 DDIM steps, eta = 1 (and eta = 0), guidance 3.
Results: docs/experiments/prompted_unlearning.md.
Smoke variant for tests: --config=configs/prompted_scenes.py:smoke
"""

import ml_collections

from identi.subjects.scenes_training import default_subject_config, subject_variant


def get_config(arg=None):
  config = default_subject_config(prompted=True)
  config.model.init_from = "diffusion_scenes"  # Fine-tune the shipped unconditional U-Net.
  config.train.num_steps = 2000
  config.train.learning_rate = 5e-4
  config.train.warmup_steps = 100
  config.train.ema_decay = 0.995
  config = subject_variant(config, arg)
  config.subject = ml_collections.ConfigDict({"kind": "prompted_scenes"})  # Which trainer runs.
  return config
