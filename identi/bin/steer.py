"""Steering: `python -m identi.bin.steer --config=configs/concept_graph_hsm.py --workdir=DIR`.

Trains one SAE per level view (or resumes the ones `identi.bin.concept_graph` trained), measures
steering fidelity and specificity per level against numpyro do() interventions, and the emergence
test (HSM against HCM); prints both and writes DIR/steering.json and DIR/steering.png (and .pdf).

With a subject config (configs/scenes_concepts.py) it steers the diffusion subject during sampling
instead (`identi.subjects.steering`) and writes DIR/steering.json and DIR/steering_grid.png.

With an LM-experiment config (configs/grammar_concepts.py) it steers the transformer subject's
phrases during generation (`identi.subjects.lm_steering`) and writes DIR/steering.json and
DIR/steering.png.
"""

from absl import flags
from ml_collections import config_flags

from identi.bin import cli
from identi.concepts import run_steering
from identi.subjects.lm_experiment import is_lm_experiment_config
from identi.subjects.lm_steering import run_lm_steering
from identi.subjects.steering import run_subject_steering

_CONFIG = config_flags.DEFINE_config_file("config", None,
                                          "Config, e.g. configs/concept_graph_hsm.py.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (created if missing).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  config = cli.load_config(_CONFIG)
  if is_lm_experiment_config(config):
    result = run_lm_steering(config, _WORKDIR.value)
    print()
    print(cli.format_table(result["rows"], ["mode", "samples", "success", "coherence",
                                            "preservation", "units_per_edit"]))
    print(f"\nresults: {_WORKDIR.value}/steering.json\nfigure: {result['figure']}")
    return
  if "subject" in config:
    result = run_subject_steering(config, _WORKDIR.value)
    print()
    print(cli.format_table(result["rows"], ["edit", "mode", "samples", "success", "preservation",
                                            "coherence"]))
    print(f"\nresults: {_WORKDIR.value}/steering.json\nfigure: {result['figure']}")
    return
  result = run_steering(config, _WORKDIR.value)
  print()
  print(cli.format_table(result["levels"], ["level", "fidelity", "specificity", "concepts"]))
  e = result["emergence"]
  print()
  print(cli.format_table(
      [{"model": "HSM (selection)", "fire_rate": e["hsm_fire_rate"], "wholes": e["wholes_hsm"]},
       {"model": "HCM (causal)", "fire_rate": e["hcm_fire_rate"], "wholes": e["wholes_hcm"]}],
      ["model", "fire_rate", "wholes"]))
  print(f"\nresults: {_WORKDIR.value}/steering.json\nfigure: {result['figure']}")


if __name__ == "__main__":
  cli.run(main, schema=cli.union_schema)
