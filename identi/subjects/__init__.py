"""Subjects: generative worlds whose concepts we know, models trained on them, and the pipeline
that identifies, graphs and steers their concepts (`scenes`, `diffusion`, `training`,
`experiment`, `steering`; `grammar`, `transformer`, `lm_training`, `lm_experiment`,
`lm_steering`)."""
from identi.subjects import (diffusion, experiment, grammar, lm_experiment, lm_steering,
                             lm_training, steering, training, transformer)
from identi.subjects.experiment import capture_subject, run_subject_graph
from identi.subjects.grammar import (Grammar, GrammarConfig, grammatical_rate, make_grammar,
                                     sample_grammar)
from identi.subjects.lm_experiment import capture_lm_subject, run_lm_graph
from identi.subjects.lm_steering import run_lm_steering
from identi.subjects.lm_training import export_lm_subject, load_lm_subject, train_lm_subject
from identi.subjects.scenes import (KINDS, Scenes, ScenesConfig, coherence_rate, detect_concepts,
                                    detect_parts, make_scenes, render, sample_scenes, to_ascii)
from identi.subjects.steering import run_subject_steering
from identi.subjects.training import export_subject, load_subject, train_subject

__all__ = [
    "Grammar",
    "GrammarConfig",
    "KINDS",
    "Scenes",
    "ScenesConfig",
    "capture_lm_subject",
    "capture_subject",
    "coherence_rate",
    "detect_concepts",
    "detect_parts",
    "diffusion",
    "experiment",
    "export_lm_subject",
    "export_subject",
    "grammar",
    "grammatical_rate",
    "lm_experiment",
    "lm_steering",
    "lm_training",
    "load_lm_subject",
    "load_subject",
    "make_grammar",
    "make_scenes",
    "render",
    "run_lm_graph",
    "run_lm_steering",
    "run_subject_graph",
    "run_subject_steering",
    "sample_grammar",
    "sample_scenes",
    "steering",
    "to_ascii",
    "train_lm_subject",
    "train_subject",
    "training",
    "transformer",
]
