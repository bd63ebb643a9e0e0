"""paper/: every figure script in smoke mode writes its PNG, PDF and JSON."""

import json
import os

import pytest

from conftest import run_module


@pytest.mark.parametrize("name", ["superposition_identifiability", "phase_diagram",
                                  "minimality_sweep", "sample_size", "amortisation_gap"])
def test_figure_smoke(tmp_path, name):
  run_module("paper.make_figures", "--smoke", f"--only={name}", f"--out={tmp_path}")
  out = tmp_path / name
  if name == "superposition_identifiability":
    files = ["identifiability.png", "identifiability.pdf", "demo.json"]
  else:
    files = [f"{name}.png", f"{name}.pdf", f"{name}.json"]
  for f in files:
    assert os.path.getsize(out / f) > 100, f
  if name != "superposition_identifiability":
    with open(out / f"{name}.json") as f:
      numbers = json.load(f)
    flat = json.dumps(numbers)
    assert "mcc" in flat and "NaN" not in flat
