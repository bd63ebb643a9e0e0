"""Identifiability: `python -m identi.bin.identify --config=configs/identify_hsm.py --workdir=DIR`.

Trains every SAE variant and every minimality-free baseline on the HSM superposition view (or on
external data: --config.data.path=DIR with x.npy and z.npy), prints the method table and writes
DIR/results.json and DIR/identifiability.png. `make demo` runs it on configs/identify_hsm.py.
"""

from absl import flags
from ml_collections import config_flags

from identi.bin import cli
from identi.experiments import identify

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config, e.g. configs/identify_hsm.py.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (created if missing).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  records = identify.run(cli.load_config(_CONFIG), _WORKDIR.value)
  print()
  print(cli.format_table(records, ["name", "mcc", "mcc_minimal", "fvu", "l0", "dead_fraction",
                                   "seconds"]))
  print(f"\nresults: {_WORKDIR.value}/results.json")
  print(f"figure:  {_WORKDIR.value}/identifiability.png (and .pdf)")


if __name__ == "__main__":
  cli.run(main)
