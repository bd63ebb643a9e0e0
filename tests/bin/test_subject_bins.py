"""identi.bin.capture, concept_graph and steer: each binary once, as a subprocess, on a copy of a
session pipeline's workdir (they reuse what is there, as they do for users); config typos and
unknown subject kinds fail in one line."""

import json
import shutil

import pytest

from helpers import ROOT, run_module

SCENES = f"--config={ROOT}/configs/scenes_concepts.py:smoke"
HSM = f"--config={ROOT}/configs/concept_graph_hsm.py:smoke"
GRAMMAR = f"--config={ROOT}/configs/grammar_concepts.py:smoke"
WORDNET = f"--config={ROOT}/configs/minilm_wordnet.py:smoke"


@pytest.mark.xdist_group("scenes")
def test_capture_on_the_scenes_subject(scenes_run, tmp_path):
  workdir = tmp_path / "w"
  shutil.copytree(scenes_run.workdir, workdir)
  proc = run_module("identi.bin.capture", SCENES, f"--workdir={workdir}")
  assert "coherence" in proc.stdout and "0.8,0.5,0.2" in proc.stdout


@pytest.mark.xdist_group("grammar")
def test_concept_graph_on_the_grammar_subject(grammar_run, tmp_path):
  workdir = tmp_path / "w"
  shutil.copytree(grammar_run.workdir, workdir)
  (workdir / "layer_mcc.png").unlink()
  proc = run_module("identi.bin.concept_graph", GRAMMAR, f"--workdir={workdir}")
  assert "level_3" in proc.stdout and "1->2" in proc.stdout and "precision" in proc.stdout
  graph = json.loads((workdir / "graph.json").read_text())
  assert graph["table"] == grammar_run.graph["table"]  # The binary reproduces the library run.
  assert (workdir / "layer_mcc.png").stat().st_size > 100


@pytest.mark.xdist_group("hsm")
def test_steer_on_the_hsm_subject(hsm_run, tmp_path):
  workdir = tmp_path / "w"
  shutil.copytree(hsm_run.workdir, workdir)
  proc = run_module("identi.bin.steer", HSM, f"--workdir={workdir}")
  assert "HSM (selection)" in proc.stdout and "specificity" in proc.stdout
  steering = json.loads((workdir / "steering.json").read_text())
  assert steering["levels"] == hsm_run.steering["levels"]
  assert (workdir / "steering.pdf").stat().st_size > 100


@pytest.mark.parametrize("module,config,override", [
    ("identi.bin.capture", SCENES, "capture.blok=mid"),
    ("identi.bin.capture", GRAMMAR, "capture.layer=block_0"),
    ("identi.bin.concept_graph", HSM, "graph.precison=0.5"),
    ("identi.bin.capture", WORDNET, "world.templtes=4"),
])
def test_config_typo_is_a_one_line_error(tmp_path, module, config, override):
  proc = run_module(module, config, f"--config.{override}", f"--workdir={tmp_path}", check=False)
  key = override.split("=")[0]
  assert proc.returncode != 0 and f"unknown config key '{key}'" in proc.stderr
  assert "Traceback" not in proc.stderr


def test_unknown_subject_kind_is_a_one_line_error(tmp_path):
  proc = run_module("identi.bin.steer", HSM, "--config.subject.kind=hsn", f"--workdir={tmp_path}",
                    check=False)
  assert proc.returncode == 2 and "'subject.kind' is 'hsn'" in proc.stderr
  assert "grammar, hsm, minilm_wordnet, prompted_scenes, scenes" in proc.stderr and "Traceback" not in proc.stderr
