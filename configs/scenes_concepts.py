"""Concepts of the diffusion subject across timesteps, and steering during sampling (issue 6).

  python -m identi.bin.capture --config=configs/scenes_concepts.py --workdir=runs/scenes
  python -m identi.bin.concept_graph --config=configs/scenes_concepts.py --workdir=runs/scenes
  python -m identi.bin.steer --config=configs/scenes_concepts.py --workdir=runs/scenes

Subject: the shipped U-Net (identi/subjects/assets/diffusion_scenes.bin, trained by
configs/diffusion_scenes.py). 16,384 DDIM trajectories (50 steps); the 'mid' block (4 x 4 x 64,
flattened) is read at t = 0.8, 0.5, 0.2 and 0.05; one BatchTopK SAE per timestep (52 units,
k = 26); the graph links level 1 at t = 0.05, level 2 at t = 0.2 and level 3 at t = 0.5 (rule
'threshold'). Each binary reuses what the previous one wrote in the workdir.
Measured (runs/scenes_v2): MCC of parts / objects / scenes at t = 0.05: 0.880 / 0.806 / 0.868
(t = 0.8: 0.422 / 0.581 / 0.794); graph F1 0.27 (parts -> objects) and 0.29 (objects -> scenes).
Full table and steering: README "A diffusion subject".
Smoke variant for tests: --config=configs/scenes_concepts.py:smoke
"""

from identi.subjects.experiment import (default_subject_experiment_config,
                                        subject_experiment_variant)


def get_config(arg=None):
  return subject_experiment_variant(default_subject_experiment_config(), arg)
