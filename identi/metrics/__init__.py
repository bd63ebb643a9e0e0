"""Metrics: SAE reconstruction/sparsity quality and identifiability (MCC)."""
from identi.metrics.mcc import MCCResult, correlation_matrix, mcc
from identi.metrics.quality import (QualityState, cosine_similarity, dead_fraction, dead_mask, fvu,
                                    l0, mse, quality_init, quality_result, quality_update,
                                    shrinkage, update_tokens_since_fired)

__all__ = [
    "MCCResult",
    "QualityState",
    "correlation_matrix",
    "cosine_similarity",
    "dead_fraction",
    "dead_mask",
    "fvu",
    "l0",
    "mcc",
    "mse",
    "quality_init",
    "quality_result",
    "quality_update",
    "shrinkage",
    "update_tokens_since_fired",
]
