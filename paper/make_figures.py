"""Reproduces every figure of the paper from fixed configs and seeds: `make figures`.

Each figure is written as PNG and PDF with its numbers as JSON under paper/figures/<name>/.
`--smoke` runs every figure at toy size (the tests do this). One figure: `--only=NAME`.
"""

from __future__ import annotations

import os

from absl import flags

from identi.bin import cli
from identi.demo import run_demo
from identi.train import load_config
from paper import amortisation_gap, minimality_sweep, phase_diagram, sample_size
from paper.common import OUT, ROOT, SMOKE

_ONLY = flags.DEFINE_string("only", "", "Run only this figure.")


def superposition_identifiability(out: str, smoke: bool) -> list[str]:
  """Per-concept MCC of a TopK SAE on 256 sparse features in d = 64 (configs/demo.py)."""
  config = load_config(os.path.join(ROOT, "configs", "demo.py" + (":smoke" if smoke else "")))
  return [run_demo(config, os.path.join(out, "superposition_identifiability"))["figure"]]


FIGURES = {
    "superposition_identifiability": superposition_identifiability,
    "phase_diagram": phase_diagram.run,
    "minimality_sweep": minimality_sweep.run,
    "sample_size": sample_size.run,
    "amortisation_gap": amortisation_gap.run,
}


def main(argv):
  del argv
  for name, figure in FIGURES.items():
    if _ONLY.value and name != _ONLY.value:
      continue
    for path in figure(OUT.value, SMOKE.value):
      print(f"{name}: {path}")


if __name__ == "__main__":
  cli.run(main)
