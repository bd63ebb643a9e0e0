"""Subjects: generative worlds whose concepts we know, models trained on them, and the pipeline
that identifies, graphs and steers their concepts (`scenes`, `diffusion`, `training`,
`experiment`, `steering`)."""
from identi.subjects import diffusion, experiment, steering, training
from identi.subjects.experiment import capture_subject, run_subject_graph
from identi.subjects.scenes import (KINDS, Scenes, ScenesConfig, coherence_rate, detect_concepts,
                                    detect_parts, make_scenes, render, sample_scenes, to_ascii)
from identi.subjects.steering import run_subject_steering
from identi.subjects.training import export_subject, load_subject, train_subject

__all__ = [
    "KINDS",
    "Scenes",
    "ScenesConfig",
    "capture_subject",
    "coherence_rate",
    "detect_concepts",
    "detect_parts",
    "diffusion",
    "experiment",
    "export_subject",
    "load_subject",
    "make_scenes",
    "render",
    "run_subject_graph",
    "run_subject_steering",
    "sample_scenes",
    "steering",
    "to_ascii",
    "train_subject",
    "training",
]
