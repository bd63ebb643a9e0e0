"""The demo: `python -m identi.bin.demo --config=configs/demo.py --workdir=runs/demo`.

Trains a TopK SAE on sparse superposition data and prints FVU, L0, dead % and MCC against the true
features; writes the figure WORKDIR/identifiability.png (and .pdf).
"""

from absl import flags
from ml_collections import config_flags

from identi.bin import cli
from identi.demo import run_demo

_CONFIG = config_flags.DEFINE_config_file("config", "configs/demo.py", "Demo config file.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/demo", "Output directory.")


def main(argv):
  del argv
  row = run_demo(cli.load_config(_CONFIG), _WORKDIR.value)
  print()
  print(cli.format_table([row], ["sae", "features", "d", "d_sae", "fvu", "l0", "dead_fraction",
                                 "mcc", "min_concept_corr"]))
  print(f"\nfigure: {row['figure']}")


if __name__ == "__main__":
  cli.run(main)
