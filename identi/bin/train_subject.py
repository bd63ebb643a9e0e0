"""Trains a subject: `python -m identi.bin.train_subject --config=CONFIG --workdir=DIR
[--export=PATH]`.

The config's ``subject.kind`` picks the subject from the registry (`identi.subjects.get_subject`):
`scenes` (configs/diffusion_scenes.py) trains the diffusion U-Net and writes DIR/samples.png (and
.pdf); `grammar` (configs/grammar_lm.py) trains the transformer and writes DIR/samples.txt. Both
write DIR/metrics.jsonl, DIR/checkpoints/ and DIR/final.json; a killed run restarted with the same
command resumes from its latest checkpoint. With --export, the EMA params and the config are also
written to PATH as one file (what ``subject.checkpoint`` of the experiment configs reads).
"""

from absl import flags
from ml_collections import config_flags

from identi.bin import cli
from identi.errors import ConfigError
from identi.subjects.base import config_kind, get_subject

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, e.g. configs/diffusion_scenes.py:smoke.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (created if missing).")
_EXPORT = flags.DEFINE_string("export", "", "Optional path of the exported subject file.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  config = cli.load_config(_CONFIG)
  kind = config_kind(config)
  subject = get_subject(kind)
  if not hasattr(subject, "train"):
    raise ConfigError(f"subject kind {kind!r} is not trained by identi; train_subject trains "
                      "'scenes' and 'grammar'")
  final = subject.train(config, _WORKDIR.value)
  row = dict(final)
  if _EXPORT.value:
    shipped = subject.export(_WORKDIR.value, _EXPORT.value)
    row["export_mb"] = shipped["bytes"] / 2**20
  print(cli.format_table([row], [k for k in subject.TRAINING_COLUMNS if k in row]))
  if _EXPORT.value:
    print(f"subject: {shipped['path']} (sha256 {shipped['sha256'][:16]}...)")


if __name__ == "__main__":
  cli.run(main)
