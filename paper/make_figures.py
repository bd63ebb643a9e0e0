"""Reproduces the paper's figures from fixed configs and seeds: `make figures`.

Each figure is written as PNG and PDF, with its numbers as JSON, under paper/figures/<name>/.
`--smoke` runs every figure at toy size (the tests do this).
"""

from __future__ import annotations

import os

from absl import app, flags

from identi.demo import run_demo
from identi.train import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_SMOKE = flags.DEFINE_bool("smoke", False, "Toy sizes, for tests.")
_OUT = flags.DEFINE_string("out", os.path.join(ROOT, "paper", "figures"), "Output directory.")


def superposition_identifiability(out: str, smoke: bool) -> dict:
  """Per-concept MCC of a TopK SAE on 256 sparse features in d = 64 (configs/demo.py)."""
  config = load_config(os.path.join(ROOT, "configs", "demo.py" + (":smoke" if smoke else "")))
  return run_demo(config, os.path.join(out, "superposition_identifiability"))


FIGURES = (superposition_identifiability,)


def main(argv):
  del argv
  for figure in FIGURES:
    row = figure(_OUT.value, _SMOKE.value)
    print(f"{figure.__name__}: {row['figure']}")


if __name__ == "__main__":
  app.run(main)
