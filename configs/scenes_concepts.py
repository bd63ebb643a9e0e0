"""Concepts of the diffusion subject across timesteps, and steering during sampling (kind `scenes`).

  python -m identi.bin.capture --config=configs/scenes_concepts.py --workdir=runs/scenes
  python -m identi.bin.concept_graph --config=configs/scenes_concepts.py --workdir=runs/scenes
  python -m identi.bin.steer --config=configs/scenes_concepts.py --workdir=runs/scenes

  python -m paper.make_figures --only=scenes_concepts   # all three, and every figure

Subject: the shipped U-Net (identi/subjects/assets/diffusion_scenes.bin, trained by
configs/diffusion_scenes.py). 16,384 DDIM trajectories (50 steps); the 'up_1' block (8 x 8 x 64,
flattened) is read at t = 0.8, 0.5, 0.2 and 0.05; one BatchTopK SAE per timestep (52 units,
k = 26); the graph links level 1 at t = 0.05, level 2 at t = 0.2 and level 3 at t = 0.5 (rule
'threshold', contrast-ranked candidates); steering edits every DDIM step with t <= 0.6.
Each binary reuses what the previous one wrote in the workdir.
Results: docs/experiments/scenes_concepts.md.
Smoke variant for tests: --config=configs/scenes_concepts.py:smoke
"""

from identi.subjects import get_subject


def get_config(arg=None):
  subject = get_subject("scenes")
  return subject.variant(subject.default_config(), arg)
