"""Activation capture: `python -m identi.bin.capture --config=configs/scenes_concepts.py
--workdir=DIR`.

Samples the subject's DDIM trajectories, reads the configured block at the studied timesteps
(`identi.hooks`), labels every trajectory with the concepts the scene detectors find in its final
image, and writes DIR/capture/t<k>/ (identi.data shards with latents) and DIR/capture/labels.npz.

With an LM-experiment config (configs/grammar_concepts.py) it samples sequences from the
transformer subject instead, reads the configured layers at every position up to EOS and labels
the positions by parsing the sequences (`identi.subjects.lm_experiment`): DIR/capture/<layer>/.
"""

from absl import flags
from ml_collections import config_flags

from identi.bin import cli
from identi.subjects.experiment import capture_subject, default_subject_experiment_config
from identi.subjects.lm_experiment import (capture_lm_subject, default_lm_experiment_config,
                                           is_lm_experiment_config)

_CONFIG = config_flags.DEFINE_config_file("config", None,
                                          "Config, e.g. configs/scenes_concepts.py.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (created if missing).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  config = cli.load_config(_CONFIG)
  if is_lm_experiment_config(config):
    summary = capture_lm_subject(config, _WORKDIR.value)
    row = dict(summary, layers=",".join(summary["layers"]),
               active_per_level=",".join(f"{a:.2f}" for a in summary["active_per_level"]))
    print(cli.format_table([row], ["sequences", "rows", "dim", "layers", "grammatical",
                                   "active_per_level", "active_per_position"]))
    return
  summary = capture_subject(config, _WORKDIR.value)
  row = dict(summary, timesteps=",".join(f"{t:g}" for t in summary["timesteps"]),
             steps=",".join(map(str, summary["steps"])),
             active_per_level=",".join(f"{a:.2f}" for a in summary["active_per_level"]))
  print(cli.format_table([row], ["samples", "dim", "timesteps", "steps", "coherence",
                                 "active_per_level"]))


if __name__ == "__main__":
  cli.run(main, schema=lambda: cli.merge_schemas(default_subject_experiment_config,
                                                 default_lm_experiment_config))
