"""Encodes activations with a trained SAE.

`python -m identi.bin.encode --workdir=DIR --input=X.npy --output=CODES.npy [--mode=minimal]`
writes the codes (examples x d_sae, float32) of every row of X.npy (a .npy file or a shard
directory): the encoder's, or with --mode=minimal the sparsest codes over the SAE's decoder.
"""

from absl import flags

from identi.bin import cli
from identi.train import encode_file

_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir of a training run.")
_INPUT = flags.DEFINE_string("input", None, "Activations: a .npy file or a shard directory.")
_OUTPUT = flags.DEFINE_string("output", None, "Output .npy file for the codes.")
_MODE = flags.DEFINE_enum("mode", "encoder", ["encoder", "minimal"],
                          "encoder: the SAE's codes; minimal: sparsest codes over its decoder.")
flags.mark_flags_as_required(["workdir", "input", "output"])


def main(argv):
  del argv
  shape = encode_file(_WORKDIR.value, _INPUT.value, _OUTPUT.value, _MODE.value)
  print(f"wrote codes of shape {shape} to {_OUTPUT.value}")


if __name__ == "__main__":
  cli.run(main)
