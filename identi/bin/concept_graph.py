"""Concept graph: `python -m identi.bin.concept_graph --config=configs/concept_graph_hsm.py
--workdir=DIR`.

Runs the graph stage of the subject the config names (``subject.kind``; `identi.experiments.graph`):
captures and trains one SAE per site where missing, prints the MCC table and the edge precision /
recall / F1 / SHD / AUROC of every level pair against the true graph, and writes DIR/graph.json
and the figures.
"""

from absl import flags
from ml_collections import config_flags

from identi.bin import cli
from identi.experiments import graph
from identi.subjects.base import config_kind, get_subject

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config, e.g. configs/concept_graph_hsm.py or configs/scenes_concepts.py.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (created if missing).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  config = cli.load_config(_CONFIG)
  result = graph.run(config, _WORKDIR.value)
  figures = result.get("figures") or [result["figure"]]
  cli.print_tables(get_subject(config_kind(config)).tables("graph", result),
                   f"graph: {_WORKDIR.value}/graph.json\nfigures: {', '.join(figures)}")


if __name__ == "__main__":
  cli.run(main)
