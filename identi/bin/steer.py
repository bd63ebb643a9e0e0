"""Steering: `python -m identi.bin.steer --config=configs/concept_graph_hsm.py --workdir=DIR`.

Runs the steering stage of the subject the config names (``subject.kind``;
`identi.experiments.steer`): `hsm` compares steering one unit with numpyro do() on its concept and
runs the emergence test (HSM against HCM); `scenes` edits parts and objects during DDIM sampling;
`grammar` edits phrases during generation. Prints the scores and writes DIR/steering.json and the
figures (it reuses the SAEs and graph.json of `identi.bin.concept_graph` in the same workdir).
"""

from absl import flags
from ml_collections import config_flags

from identi.bin import cli
from identi.experiments import steer
from identi.subjects.base import config_kind, get_subject

_CONFIG = config_flags.DEFINE_config_file("config", None,
                                          "Config, e.g. configs/concept_graph_hsm.py.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (created if missing).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  config = cli.load_config(_CONFIG)
  result = steer.run(config, _WORKDIR.value)
  cli.print_tables(get_subject(config_kind(config)).tables("steer", result),
                   f"results: {_WORKDIR.value}/{result.get('results_file', 'steering.json')}"
                   f"\nfigure: {result['figure']}")


if __name__ == "__main__":
  cli.run(main)
