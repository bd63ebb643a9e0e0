"""Concept graph: `python -m identi.bin.concept_graph --config=configs/concept_graph_hsm.py
--workdir=DIR`.

Trains one SAE per level view (or resumes), extracts the hierarchical concept graph from the units,
prints MCC per level and edge precision / recall / F1 / SHD / AUROC per level pair against the
true graph, and writes DIR/graph.json and DIR/concept_graph.png (and .pdf).
"""

from absl import flags
from ml_collections import config_flags

from identi.bin import cli
from identi.concepts import run_concept_graph

_CONFIG = config_flags.DEFINE_config_file("config", None,
                                          "Config, e.g. configs/concept_graph_hsm.py.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (created if missing).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  result = run_concept_graph(cli.load_config(_CONFIG), _WORKDIR.value)
  print()
  print(cli.format_table(result["levels"], ["level", "units", "mcc", "min_concept_corr"]))
  print()
  rows = [dict(r, levels=f"{r['levels'][0]}->{r['levels'][1]}") for r in result["pairs"]]
  print(cli.format_table(rows, ["levels", "precision", "recall", "f1", "shd", "auroc",
                                "learned_edges", "true_edges", "edges_off_matching"]))
  print(f"\ngraph: {_WORKDIR.value}/graph.json\nfigure: {result['figure']}")


if __name__ == "__main__":
  cli.run(main)
