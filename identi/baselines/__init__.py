"""Minimality-free baselines: PCA, a dense linear autoencoder and FastICA.

Each ``fit_<name>(key_or_seed, x, width, **kw)`` returns a :class:`Baseline` with ``encode(x)`` and
``decode(codes)``, so the baselines run through the same evaluation path as SAEs. None has a
sparsity constraint, so on data in superposition they set the floor an identifiable method must
beat.
"""
from identi.baselines.base import Baseline
from identi.baselines.ica import fit_ica
from identi.baselines.linear_ae import fit_linear_ae
from identi.baselines.pca import fit_pca

BASELINES = {"pca": fit_pca, "linear_ae": fit_linear_ae, "ica": fit_ica}

__all__ = ["BASELINES", "Baseline", "fit_ica", "fit_linear_ae", "fit_pca"]
