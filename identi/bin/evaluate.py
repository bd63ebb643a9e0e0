"""Evaluates a trained SAE: `python -m identi.bin.evaluate --workdir=DIR [--data=SHARD_DIR]`.

Prints the metrics table and writes DIR/eval.json. Without --data it uses the run's held-out split.
"""

from absl import flags

from identi.bin import cli
from identi.train import evaluate_workdir

_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir of a training run.")
_DATA = flags.DEFINE_string("data", "", "Optional shard directory or .npy file to evaluate on.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
  del argv
  result = evaluate_workdir(_WORKDIR.value, _DATA.value or None)
  print(cli.format_table([result], [k for k in ("kind", "num_tokens", "fvu", "mse", "l0",
                                                "dead_fraction", "shrinkage", "cosine", "mcc")
                                    if k in result]))


if __name__ == "__main__":
  cli.run(main)
