"""Feature dashboards: a static site per SAE, viewable offline from the file system.

One SAE:
`python -m identi.bin.dashboard --workdir=SAE_DIR --data=SHARDS [--contexts=FILE.npz]
[--graph=graph.json] --output=DIR` writes DIR/index.html (`identi.dashboard.build_dashboard`).

Every SAE of a subject pipeline (after `identi.bin.concept_graph`), with the subject's contexts:
`python -m identi.bin.dashboard --config=configs/grammar_concepts.py --workdir=DIR
[--output=DIR/dashboard]` (`identi.experiments.dashboard.run`).
"""

from absl import flags
from ml_collections import config_flags

from identi.bin import cli
from identi.dashboard import build_dashboard
from identi.errors import ConfigError

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "A subject pipeline's config (e.g. configs/grammar_concepts.py): build the "
    "dashboard of every site SAE in --workdir.")
_WORKDIR = flags.DEFINE_string("workdir", None, "An SAE training workdir, or with --config the "
                               "subject pipeline's workdir.")
_DATA = flags.DEFINE_string("data", None, "Activations: a .npy file or a shard directory.")
_CONTEXTS = flags.DEFINE_string("contexts", None, "Optional .npz of contexts aligned with the data "
                                "rows: tokens, vocab, positions [, seq_id] or images.")
_GRAPH = flags.DEFINE_string("graph", None, "Optional graph.json of identi.bin.concept_graph.")
_GRAPH_LEVEL = flags.DEFINE_integer("graph_level", None, "Level (1 = lowest) of this SAE's units "
                                    "in --graph; found from the workdir name sae_<site> if unset.")
_OUTPUT = flags.DEFINE_string("output", None, "Output directory of the site (with --config: "
                              "default WORKDIR/dashboard).")
_TOP_K = flags.DEFINE_integer("top_k", 10, "Top-activating examples per unit.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
  del argv
  if _CONFIG.value is not None:
    from identi.experiments import dashboard  # pylint: disable=import-outside-toplevel

    config = cli.load_config(_CONFIG)
    result = dashboard.run(config, _WORKDIR.value, output=_OUTPUT.value, top_k=_TOP_K.value)
    print(cli.format_table(result["sites"], ["site", "units", "rows", "mcc", "contexts"]))
    print(f"\ndashboard: {result['index']}")
    return
  if not _DATA.value or not _OUTPUT.value:
    raise ConfigError("pass --data=SHARDS and --output=DIR with an SAE --workdir (or --config "
                      "with a subject pipeline's --workdir)")
  summary = build_dashboard(_WORKDIR.value, _DATA.value, _OUTPUT.value, contexts=_CONTEXTS.value,
                            graph=_GRAPH.value, graph_level=_GRAPH_LEVEL.value, top_k=_TOP_K.value)
  print(cli.format_table([summary], ["units", "rows", "dead", "mcc", "contexts"]))
  print(f"\ndashboard: {_OUTPUT.value}/index.html")


if __name__ == "__main__":
  cli.run(main)
