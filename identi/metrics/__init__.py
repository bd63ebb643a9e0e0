"""Metrics: SAE reconstruction/sparsity quality, identifiability (MCC, R^2) and graph recovery."""
from identi.metrics.graph import edge_auroc, edge_metrics
from identi.metrics.assignment import Assignment, max_weight_assignment
from identi.metrics.correlation import (CorrelationState, correlation_finalize, correlation_init,
                                        correlation_matrix, correlation_update,
                                        streamed_correlation)
from identi.metrics.mcc import MCCResult, mcc, streamed_mcc
from identi.metrics.quality import (QualityState, cosine_similarity, dead_fraction, dead_mask, fvu,
                                    l0, mse, quality_init, quality_result, quality_update,
                                    shrinkage, update_tokens_since_fired)
from identi.metrics.regression import R2Result, kernel_ridge_r2, linear_r2

__all__ = [
    "Assignment",
    "CorrelationState",
    "MCCResult",
    "QualityState",
    "R2Result",
    "correlation_finalize",
    "correlation_init",
    "correlation_matrix",
    "correlation_update",
    "cosine_similarity",
    "dead_fraction",
    "dead_mask",
    "edge_auroc",
    "edge_metrics",
    "fvu",
    "kernel_ridge_r2",
    "l0",
    "linear_r2",
    "max_weight_assignment",
    "mcc",
    "mse",
    "quality_init",
    "quality_result",
    "quality_update",
    "shrinkage",
    "streamed_correlation",
    "streamed_mcc",
    "update_tokens_since_fired",
]
