"""Trains the diffusion subject: `python -m identi.bin.train_subject
--config=configs/diffusion_scenes.py --workdir=DIR [--export=PATH]`.

Writes DIR/metrics.jsonl, DIR/checkpoints/, DIR/final.json and DIR/samples.png (and .pdf); a
killed run restarted with the same command resumes from its latest checkpoint. With --export, the
EMA params and the config are also written to PATH as one file (read it with
`identi.subjects.training.load_subject`).
"""

from absl import flags
from ml_collections import config_flags

from identi.bin import cli
from identi.subjects.training import default_subject_config, export_subject, train_subject

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, e.g. configs/diffusion_scenes.py:smoke.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (created if missing).")
_EXPORT = flags.DEFINE_string("export", "", "Optional path of the exported subject file.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  final = train_subject(cli.load_config(_CONFIG), _WORKDIR.value)
  row = dict(final)
  if _EXPORT.value:
    shipped = export_subject(_WORKDIR.value, _EXPORT.value)
    row["export_mb"] = shipped["bytes"] / 2**20
  print(cli.format_table([row], [k for k in ("step", "num_params", "coherence_generated",
                                             "coherence_train", "residual_rmse_generated",
                                             "export_mb") if k in row]))
  if _EXPORT.value:
    print(f"subject: {shipped['path']} (sha256 {shipped['sha256'][:16]}...)")


if __name__ == "__main__":
  cli.run(main, schema=default_subject_config)
