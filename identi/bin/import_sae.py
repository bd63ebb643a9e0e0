"""Imports an SAE from another toolkit into an identi workdir.

`python -m identi.bin.import_sae --format=saelens|gemmascope|sparsify --input=PATH --workdir=W`
creates W, which `encode`, `evaluate --data=...`, `export` and `dashboard` accept like a training
workdir. PATH: a SAELens directory (cfg.json + sae_weights.safetensors), a Gemma Scope params.npz
or params.safetensors (or its directory), or a sparsify hook-point directory.
"""

from absl import flags

from identi.bin import cli
from identi.formats import format_names, import_sae

_FORMAT = flags.DEFINE_enum("format", None, list(format_names()), "Input format.")
_INPUT = flags.DEFINE_string("input", None, "The SAE's directory or params file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "New workdir to create.")
flags.mark_flags_as_required(["format", "input", "workdir"])


def main(argv):
  del argv
  record = import_sae(_FORMAT.value, _INPUT.value, _WORKDIR.value)
  how = "exact identi variables" if record["exact"] else f"{record['format']} weights"
  print(f"imported a {record['kind']} SAE (d_in={record['d_in']}, d_sae={record['d_sae']}) from "
        f"{record['path']} ({how}) into {_WORKDIR.value}")


if __name__ == "__main__":
  cli.run(main)
