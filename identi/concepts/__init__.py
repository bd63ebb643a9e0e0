"""Concept graphs: which lower-level units compose each higher-level unit (parts -> wholes)."""
from identi.concepts.graph import (edge_scores, extract_graph, learn_edges, levels_to_square,
                                   presence, transitive_reduction)

__all__ = [
    "edge_scores",
    "extract_graph",
    "learn_edges",
    "levels_to_square",
    "presence",
    "transitive_reduction",
]
