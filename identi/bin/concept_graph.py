"""Concept graph: `python -m identi.bin.concept_graph --config=configs/concept_graph_hsm.py
--workdir=DIR`.

With an HSM config (configs/concept_graph_hsm.py): trains one SAE per level view (or resumes),
extracts the hierarchical concept graph from the units, prints MCC per level and edge precision /
recall / F1 / SHD / AUROC per level pair against the true graph, and writes DIR/graph.json and
DIR/concept_graph.png (and .pdf).

With a subject config (configs/scenes_concepts.py): captures the subject's activations (or reuses
DIR/capture), trains one SAE per timestep, prints the timestep x level MCC table and the graph
across timesteps scored against the world's true graph, and writes DIR/graph.json,
DIR/timestep_mcc.png and DIR/concept_graph.png.

With an LM-experiment config (configs/grammar_concepts.py): the same across the transformer's
layers (`identi.subjects.lm_experiment`): the layer x level MCC table, the graph from presence
per sequence, DIR/graph.json, DIR/layer_mcc.png and DIR/concept_graph.png.
"""

from absl import flags
from ml_collections import config_flags

from identi.bin import cli
from identi.concepts import run_concept_graph
from identi.subjects.experiment import run_subject_graph
from identi.subjects.lm_experiment import is_lm_experiment_config, run_lm_graph

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config, e.g. configs/concept_graph_hsm.py or configs/scenes_concepts.py.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (created if missing).")
flags.mark_flags_as_required(["config", "workdir"])


def _pairs(result):
  return [dict(r, levels=f"{r['levels'][0]}->{r['levels'][1]}") for r in result["pairs"]]


def main(argv):
  del argv
  config = cli.load_config(_CONFIG)
  if is_lm_experiment_config(config):
    result = run_lm_graph(config, _WORKDIR.value)
    print()
    print(cli.format_table(result["table"], ["layer", "units"] +
                           [f"level_{l + 1}" for l in range(len(result["level_layers"]))]))
    print()
    rows = [dict(r, layers="->".join(r["layers"])) for r in _pairs(result)]
    print(cli.format_table(rows, ["levels", "layers", "precision", "recall", "f1", "shd",
                                  "auroc", "learned_edges", "true_edges"]))
    print(f"\ngraph: {_WORKDIR.value}/graph.json\nfigures: {', '.join(result['figures'])}")
    return
  if "subject" in config:
    result = run_subject_graph(config, _WORKDIR.value)
    levels = len(result["level_timesteps"])
    print()
    print(cli.format_table(result["table"], ["timestep", "units"] +
                           [f"level_{l + 1}" for l in range(levels)]))
    print()
    rows = [dict(r, timesteps="->".join(f"{t:g}" for t in r["timesteps"]))
            for r in _pairs(result)]
    print(cli.format_table(rows, ["levels", "timesteps", "precision", "recall", "f1",
                                            "shd", "auroc", "learned_edges", "true_edges"]))
    print(f"\ngraph: {_WORKDIR.value}/graph.json\nfigures: {', '.join(result['figures'])}")
    return
  result = run_concept_graph(config, _WORKDIR.value)
  print()
  print(cli.format_table(result["levels"], ["level", "units", "mcc", "min_concept_corr"]))
  print()
  print(cli.format_table(_pairs(result), ["levels", "precision", "recall", "f1", "shd", "auroc",
                                          "learned_edges", "true_edges", "edges_off_matching"]))
  print(f"\ngraph: {_WORKDIR.value}/graph.json\nfigure: {result['figure']}")


if __name__ == "__main__":
  cli.run(main, schema=cli.union_schema)
