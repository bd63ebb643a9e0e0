"""Concepts of the diffusion subject across timesteps, and steering during sampling (issue 6).

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
Measured (runs/scenes_v3 = paper/figures/scenes_concepts): MCC of parts / objects / scenes at
t = 0.05: 0.889 / 0.758 / 0.873 (t = 0.8: 0.459 / 0.577 / 0.814); graph F1 0.667 (parts ->
objects) and 0 (objects -> scenes); hierarchical steering (noise seed 2): part injection
success 0.952 with preservation 0.945, object removal 0.845, object injection 0.795 (flat
baseline 0.767 / 0.612 / 0.574).
Full table and steering: README "A diffusion subject".
Smoke variant for tests: --config=configs/scenes_concepts.py:smoke
"""

from identi.subjects.experiment import (default_subject_experiment_config,
                                        subject_experiment_variant)


def get_config(arg=None):
  return subject_experiment_variant(default_subject_experiment_config(), arg)
