"""Concept graphs: which lower-level units compose each higher-level unit (parts -> wholes)."""
from identi.concepts.graph import (assign_levels, edge_scores, extract_graph, learn_edges,
                                   levels_to_square, presence, presence_thresholds,
                                   split_presence, split_thresholds, transitive_reduction)

__all__ = [
    "assign_levels",
    "edge_scores",
    "extract_graph",
    "learn_edges",
    "levels_to_square",
    "presence",
    "presence_thresholds",
    "split_presence",
    "split_thresholds",
    "transitive_reduction",
]
