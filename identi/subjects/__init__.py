"""Subjects: generative models with worlds whose concepts we know, behind one protocol.

`Subject` (`identi.subjects.base`) is what the pipeline needs of a subject; `register_subject`
adds one under a name, `get_subject(kind)` returns it (``config.subject.kind``). Shipped kinds:
``hsm`` (`hsm_views`: linear views of a hierarchical selection world), ``scenes``
(`scenes_unet`: a diffusion U-Net, `diffusion`, trained on the scenes world, `scenes`, by
`scenes_training`), ``prompted_scenes`` (`prompted_scenes`: the same U-Net conditioned on
prompts of the scenes world, `prompts`, with classifier-free guidance) and ``grammar`` (`grammar_lm`: a transformer, `transformer`, trained on the
grammar world, `grammar`, by `grammar_training`).
"""
from identi.subjects import (diffusion, grammar, grammar_training, prompts, scenes,
                             scenes_training, transformer)
from identi.subjects.base import Subject, get_subject, register_subject, subject_kinds
from identi.subjects.grammar import (Grammar, GrammarConfig, grammatical_rate, make_grammar,
                                     sample_grammar)
from identi.subjects.grammar_training import export_lm_subject, load_lm_subject, train_lm_subject
from identi.subjects.scenes import (KINDS, Scenes, ScenesConfig, coherence_rate, detect_concepts,
                                    detect_parts, make_scenes, render, sample_scenes, to_ascii)
from identi.subjects.scenes_training import export_subject, load_subject, train_subject

__all__ = [
    "Grammar",
    "GrammarConfig",
    "KINDS",
    "Scenes",
    "ScenesConfig",
    "Subject",
    "coherence_rate",
    "detect_concepts",
    "detect_parts",
    "diffusion",
    "export_lm_subject",
    "export_subject",
    "get_subject",
    "grammar",
    "grammar_training",
    "grammatical_rate",
    "load_lm_subject",
    "load_subject",
    "make_grammar",
    "make_scenes",
    "prompts",
    "register_subject",
    "render",
    "sample_grammar",
    "sample_scenes",
    "scenes",
    "scenes_training",
    "subject_kinds",
    "to_ascii",
    "train_lm_subject",
    "train_subject",
    "transformer",
]
