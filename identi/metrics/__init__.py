"""Metrics: SAE reconstruction/sparsity quality, identifiability (MCC, R^2) and graph recovery."""
from identi.metrics.graph import edge_auroc, edge_metrics
from identi.metrics.mcc import MCCResult, correlation_matrix, mcc
from identi.metrics.quality import (QualityState, cosine_similarity, dead_fraction, dead_mask, fvu,
                                    l0, mse, quality_init, quality_result, quality_update,
                                    shrinkage, update_tokens_since_fired)
from identi.metrics.regression import R2Result, kernel_ridge_r2, linear_r2

__all__ = [
    "MCCResult",
    "QualityState",
    "R2Result",
    "correlation_matrix",
    "cosine_similarity",
    "dead_fraction",
    "dead_mask",
    "edge_auroc",
    "edge_metrics",
    "fvu",
    "kernel_ridge_r2",
    "l0",
    "linear_r2",
    "mcc",
    "mse",
    "quality_init",
    "quality_result",
    "quality_update",
    "shrinkage",
    "update_tokens_since_fired",
]
