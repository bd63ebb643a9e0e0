"""Concept graphs: which lower-level units compose each higher-level unit (parts -> wholes)."""
from identi.concepts.experiment import (assign_levels, default_concept_config, run_concept_graph,
                                        run_steering)
from identi.concepts.graph import (edge_scores, extract_graph, learn_edges, levels_to_square,
                                   presence, presence_thresholds, transitive_reduction)

__all__ = [
    "assign_levels",
    "default_concept_config",
    "run_concept_graph",
    "run_steering",
    "edge_scores",
    "extract_graph",
    "learn_edges",
    "levels_to_square",
    "presence",
    "presence_thresholds",
    "transitive_reduction",
]
