"""The function-description benchmark: `python -m identi.bin.find --config=configs/find.py --workdir=W`.

Builds the numeric, string and unit black boxes, lets every agent describe each one, scores the
descriptions as FIND does and writes W/results.json, W/transcripts/*.jsonl and W/find.png/.pdf
(`identi.find.benchmark`).
"""

from absl import flags
from ml_collections import config_flags

from identi.bin import cli
from identi.find import benchmark

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config, e.g. configs/find.py.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (created if missing).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  config = cli.load_config(_CONFIG)
  result = benchmark.run(config, _WORKDIR.value)
  cli.print_tables(benchmark.tables(result),
                   f"results: {_WORKDIR.value}/results.json\nfigure: {_WORKDIR.value}/{result['figure'][0]}")


if __name__ == "__main__":
  cli.run(main)
