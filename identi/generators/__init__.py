"""Synthetic data with known ground-truth latents."""
from identi.generators.superposition import sparse_superposition

__all__ = ["sparse_superposition"]
