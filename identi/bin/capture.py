"""Activation capture: `python -m identi.bin.capture --config=configs/scenes_concepts.py
--workdir=DIR`.

Runs the capture stage of the subject the config names (``subject.kind``): reads the subject's
activations at its sites, labels them with the concepts its world's reader finds, and writes
DIR/capture/<site>/ (identi.data shards with latents) and DIR/capture/labels.npz
(`identi.experiments.capture`).
"""

from absl import flags
from ml_collections import config_flags

from identi.bin import cli
from identi.experiments import capture
from identi.subjects.base import config_kind, get_subject

_CONFIG = config_flags.DEFINE_config_file("config", None,
                                          "Config, e.g. configs/scenes_concepts.py.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (created if missing).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  config = cli.load_config(_CONFIG)
  result = capture.run(config, _WORKDIR.value)
  cli.print_tables(get_subject(config_kind(config)).tables("capture", result))


if __name__ == "__main__":
  cli.run(main)
