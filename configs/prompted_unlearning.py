"""Concepts of the prompted diffusion subject, and concept removal that holds under prompting
(kind `prompted_scenes`).

  python -m identi.bin.capture --config=configs/prompted_unlearning.py --workdir=runs/prompted
  python -m identi.bin.concept_graph --config=configs/prompted_unlearning.py --workdir=runs/prompted
  python -m identi.bin.steer --config=configs/prompted_unlearning.py --workdir=runs/prompted

  python -m paper.make_figures --only=prompted_unlearning   # all three, and every figure

Subject: the shipped prompted U-Net (identi/subjects/assets/prompted_scenes.bin, trained by
configs/prompted_scenes.py), sampled with classifier-free guidance 3. 4,096 prompted DDIM
trajectories (50 steps); the 'up_1' block (8 x 8 x 64, flattened) is read at t = 0.8, 0.5, 0.2 and
0.05; one BatchTopK SAE per timestep (1,000 steps); a sign-aware graph (level 1 at t = 0.05, level
2 at t = 0.2, level 3 at t = 0.5). Removal benchmark: every object and scene type, prompts that
name or only imply it, 32 prompts each, methods none / negative prompt / flat ablation /
hierarchical removal on the same noise; SAE edits at every step with t <= 0.6, strength 9,
the hierarchical one only where the target's units write (unlearn.region 0.3). Writes
WORKDIR/unlearning.json. Each binary reuses what the previous one wrote in the workdir.
Results: docs/experiments/prompted_unlearning.md.
Smoke variant for tests: --config=configs/prompted_unlearning.py:smoke
"""

from identi.subjects import get_subject


def get_config(arg=None):
  subject = get_subject("prompted_scenes")
  return subject.variant(subject.default_config(), arg)
