"""paper/: every figure script in smoke mode writes its PNG, PDF and JSON.

The six pipeline figures are the session's pipeline runs (tests/conftest.py runs them through
paper.make_figures in-process); the other figures run here in-process, and one through the binary.
seed_consistency is the exception: its smoke run is three trainings with the minimality stage
(90 s of one core), whose parts the identify and stage tests run already; here only its
matching is tested.
"""

import json
import os

import numpy as np
import pytest

from helpers import run_module
from paper import make_figures

PIPELINE_FILES = {
    "identify_run": ["identifiability.png", "identifiability.pdf", "results.json"],
    "hsm_run": ["concept_graph.png", "concept_graph.pdf", "steering.png", "steering.pdf",
                "graph.json", "steering.json"],
    "grammar_run": [f"{stem}.{ext}" for stem in ("layer_mcc", "concept_graph", "steering")
                    for ext in ("png", "pdf")] + ["steering.json", "graph.json"],
    "scenes_run": [f"{stem}.{ext}" for stem in ("samples", "timestep_mcc", "concept_graph",
                                                "concept_nodes", "steering_grid", "steering")
                   for ext in ("png", "pdf")] + ["steering.json", "graph.json"],
    "prompted_run": [f"{stem}.{ext}" for stem in ("samples", "timestep_mcc", "concept_graph",
                                                  "concept_nodes", "unlearning_grid",
                                                  "unlearning_tradeoff")
                     for ext in ("png", "pdf")] + ["unlearning.json", "graph.json"],
    "wordnet_run": [f"{stem}.{ext}" for stem in ("layer_mcc", "layer_floors", "concept_graph",
                                                 "ablation") for ext in ("png", "pdf")]
                   + ["graph.json", "steering.json", "summary.json"],
}
GROUPS = {"identify_run": "identify", "hsm_run": "hsm", "grammar_run": "grammar",
          "scenes_run": "scenes", "prompted_run": "prompted", "wordnet_run": "minilm_wordnet"}


@pytest.mark.parametrize("fixture", [
    pytest.param(name, marks=pytest.mark.xdist_group(GROUPS[name])) for name in PIPELINE_FILES])
def test_pipeline_figure_smoke(request, fixture):
  run = request.getfixturevalue(fixture)
  for f in PIPELINE_FILES[fixture]:
    path = os.path.join(run.workdir, f)
    assert os.path.getsize(path) > 100, f
  with open(os.path.join(run.workdir, PIPELINE_FILES[fixture][-1])) as f:
    flat = json.dumps(json.load(f))
  assert "mcc" in flat and "NaN" not in flat


def _check_outputs(out, name):
  files = [f"{name}.png", f"{name}.pdf", f"{name}.json"]
  for f in files:
    assert os.path.getsize(out / f) > 100, f
  with open(out / files[-1]) as f:
    flat = json.dumps(json.load(f))
  assert ("appears" if name == "block_transplant" else "mcc") in flat and "NaN" not in flat


@pytest.mark.parametrize("name", ["phase_diagram", "minimality_sweep", "leak_sweep",
                                  "amortisation_gap", "block_transplant"])
def test_figure_smoke(tmp_path, name):
  paths = make_figures.FIGURES[name](str(tmp_path), True)
  assert sorted(os.path.basename(p) for p in paths) == sorted(
      f"{name}.{ext}" for ext in ("json", "pdf", "png"))
  _check_outputs(tmp_path / name, name)


def test_make_figures_binary_runs_one_figure(tmp_path):
  proc = run_module("paper.make_figures", "--smoke", "--only=sample_size", f"--out={tmp_path}")
  assert f"sample_size: {tmp_path}/sample_size/sample_size.png" in proc.stdout
  _check_outputs(tmp_path / "sample_size", "sample_size")


def test_decoder_pw_mcc_matches_atoms_up_to_order_sign_and_dropped_rows():
  from paper.seed_consistency import decoder_pw_mcc  # pylint: disable=g-import-not-at-top
  w = np.random.default_rng(0).normal(size=(12, 8))
  other = -w[np.random.default_rng(1).permutation(12)] * 3.0
  other = np.concatenate([other, np.zeros((4, 8))])  # Atoms the stage dropped.
  assert decoder_pw_mcc(w, other) == pytest.approx(1.0)
  assert decoder_pw_mcc(w, np.random.default_rng(2).normal(size=(12, 8))) < 0.9


def test_a_seed_variant_runs_its_config_with_the_override_into_its_own_workdir(tmp_path,
                                                                              monkeypatch):
  seen = []
  monkeypatch.setattr(make_figures.graph, "run",
                      lambda config, workdir: seen.append((config, workdir)))
  paths = make_figures.FIGURES["scenes_identifiable_seed1"](str(tmp_path), True)
  (config, workdir), = seen
  assert workdir == str(tmp_path / "scenes_identifiable_seed1")
  assert config.train.seed == 1 and config.minimality.enabled
  assert os.path.join(workdir, "graph.json") in paths
