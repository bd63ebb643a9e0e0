"""Trains a subject: `python -m identi.bin.train_subject --config=CONFIG --workdir=DIR
[--export=PATH]`.

With configs/diffusion_scenes.py it trains the diffusion subject (`identi.subjects.training`) and
writes DIR/samples.png (and .pdf); with a config holding a `grammar` section
(configs/grammar_lm.py) the transformer subject (`identi.subjects.lm_training`) and writes
DIR/samples.txt. Both write DIR/metrics.jsonl, DIR/checkpoints/ and DIR/final.json; a killed run
restarted with the same command resumes from its latest checkpoint. With --export, the EMA params
and the config are also written to PATH as one file (read it with
`identi.subjects.training.load_subject` or `identi.subjects.lm_training.load_lm_subject`).
"""

from absl import flags
from ml_collections import config_flags

from identi.bin import cli
from identi.subjects.lm_training import (default_lm_subject_config, export_lm_subject,
                                         train_lm_subject)
from identi.subjects.training import default_subject_config, export_subject, train_subject

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, e.g. configs/diffusion_scenes.py:smoke.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (created if missing).")
_EXPORT = flags.DEFINE_string("export", "", "Optional path of the exported subject file.")
flags.mark_flags_as_required(["config", "workdir"])

_COLUMNS = {
    "diffusion": ("step", "num_params", "coherence_generated", "coherence_train",
                  "residual_rmse_generated", "export_mb"),
    "lm": ("step", "num_params", "grammatical_rate", "world_grammatical_rate", "loss_train",
           "export_mb"),
}


def _schema():
  return cli.merge_schemas(default_subject_config, default_lm_subject_config)


def main(argv):
  del argv
  config = cli.load_config(_CONFIG)
  kind = "lm" if "grammar" in config else "diffusion"
  train, export = ((train_lm_subject, export_lm_subject) if kind == "lm"
                   else (train_subject, export_subject))
  final = train(config, _WORKDIR.value)
  row = dict(final)
  if _EXPORT.value:
    shipped = export(_WORKDIR.value, _EXPORT.value)
    row["export_mb"] = shipped["bytes"] / 2**20
  print(cli.format_table([row], [k for k in _COLUMNS[kind] if k in row]))
  if _EXPORT.value:
    print(f"subject: {shipped['path']} (sha256 {shipped['sha256'][:16]}...)")


if __name__ == "__main__":
  cli.run(main, schema=_schema)
