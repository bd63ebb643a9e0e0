"""paper/: every figure script in smoke mode writes its PNG, PDF and JSON."""

import json
import os

import pytest

from conftest import run_module


@pytest.mark.parametrize("name", ["hsm_identifiability", "phase_diagram", "minimality_sweep",
                                  "sample_size", "amortisation_gap", "leak_sweep",
                                  "concept_graph", "grammar_concepts", "scenes_concepts",
                                  "block_transplant"])
def test_figure_smoke(tmp_path, name):
  run_module("paper.make_figures", "--smoke", f"--only={name}", f"--out={tmp_path}")
  out = tmp_path / name
  if name == "hsm_identifiability":
    files = ["identifiability.png", "identifiability.pdf", "results.json"]
  elif name == "concept_graph":
    files = ["concept_graph.png", "concept_graph.pdf", "steering.png", "steering.pdf",
             "graph.json"]
  elif name == "grammar_concepts":
    files = [f"{stem}.{ext}" for stem in ("layer_mcc", "concept_graph", "steering")
             for ext in ("png", "pdf")] + ["steering.json", "graph.json"]
  elif name == "scenes_concepts":
    files = [f"{stem}.{ext}" for stem in ("samples", "timestep_mcc", "concept_graph",
                                          "concept_nodes", "steering_grid", "steering")
             for ext in ("png", "pdf")] + ["steering.json", "graph.json"]
  else:
    files = [f"{name}.png", f"{name}.pdf", f"{name}.json"]
  for f in files:
    assert os.path.getsize(out / f) > 100, f
  with open(out / files[-1]) as f:
    flat = json.dumps(json.load(f))
  assert ("appears" if name == "block_transplant" else "mcc") in flat and "NaN" not in flat
