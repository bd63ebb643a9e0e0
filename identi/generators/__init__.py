"""Synthetic data with known ground-truth latents."""
from identi.generators.hcm import HCM, HCMConfig, hcm_model, intervene_hcm, make_hcm, sample_hcm
from identi.generators.hsm import HSM, HSMConfig, default_world
from identi.generators.hsm_graph import make_hsm
from identi.generators.hsm_interventions import intervene
from identi.generators.hsm_model import hsm_model
from identi.generators.hsm_sampler import almost_complete_samples, generate_hsm, sample_hsm
from identi.generators.superposition import sparse_superposition
from identi.generators.views import (invert_nonlinear_view, level_view, nonlinear_view,
                                     superposition_view)

__all__ = [
    "HCM",
    "HCMConfig",
    "HSM",
    "HSMConfig",
    "almost_complete_samples",
    "default_world",
    "generate_hsm",
    "hcm_model",
    "hsm_model",
    "intervene",
    "intervene_hcm",
    "invert_nonlinear_view",
    "level_view",
    "make_hcm",
    "make_hsm",
    "nonlinear_view",
    "sample_hcm",
    "sample_hsm",
    "sparse_superposition",
    "superposition_view",
]
