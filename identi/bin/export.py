"""Exports a trained SAE to another toolkit's format.

`python -m identi.bin.export --workdir=W --format=saelens --output=DIR [--hook_name=...]`
writes DIR in the format (saelens: cfg.json + sae_weights.safetensors; gemmascope: params.npz;
sparsify: cfg.json + sae.safetensors) with identi's input scale folded into the weights, plus
identi_sae.safetensors, the exact variables, so that importing DIR gives bit-identical codes.
"""

from absl import flags

from identi.bin import cli
from identi.formats import export_sae, format_names

_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir of a training run or an imported SAE.")
_FORMAT = flags.DEFINE_enum("format", "saelens", list(format_names()), "Output format.")
_OUTPUT = flags.DEFINE_string("output", None, "New directory to write.")
_HOOK = flags.DEFINE_string("hook_name", "", "Metadata: the hook point the SAE reads.")
_MODEL = flags.DEFINE_string("model_name", "", "Metadata: the model the SAE reads.")
_DATASET = flags.DEFINE_string("dataset_path", "", "Metadata: the data set it was trained on.")
flags.mark_flags_as_required(["workdir", "output"])


def main(argv):
  del argv
  record = export_sae(_WORKDIR.value, _FORMAT.value, _OUTPUT.value,
                      {"hook_name": _HOOK.value, "model_name": _MODEL.value,
                       "dataset_path": _DATASET.value})
  print(f"wrote the {record['kind']} SAE as {record['format']} ({record['rule']}) to "
        f"{record['output']}: {', '.join(record['files'])}")


if __name__ == "__main__":
  cli.run(main)
