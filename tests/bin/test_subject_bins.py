"""identi.bin.capture, concept_graph and steer on the subject smoke config, sharing one workdir."""

import json

from conftest import ROOT, run_module

CONFIG = f"--config={ROOT}/configs/scenes_concepts.py:smoke"


def test_capture_then_graph_then_steer(tmp_path):
  workdir = f"--workdir={tmp_path}"
  proc = run_module("identi.bin.capture", CONFIG, workdir)
  assert "coherence" in proc.stdout and "0.8,0.5,0.2" in proc.stdout
  proc = run_module("identi.bin.concept_graph", CONFIG, workdir)
  assert "level_3" in proc.stdout and "1->2" in proc.stdout and "0.05->0.2" in proc.stdout
  graph = json.loads((tmp_path / "graph.json").read_text())
  assert len(graph["table"]) == 4
  assert (tmp_path / "timestep_mcc.png").stat().st_size > 100
  proc = run_module("identi.bin.steer", CONFIG, workdir)
  assert "inject_part" in proc.stdout and "hierarchical" in proc.stdout
  assert (tmp_path / "steering_grid.pdf").stat().st_size > 100


def test_subject_config_typo_is_a_one_line_error(tmp_path):
  proc = run_module("identi.bin.capture", CONFIG, "--config.capture.blok=mid",
                    f"--workdir={tmp_path}", check=False)
  assert proc.returncode != 0 and "capture.blok" in proc.stderr and "Traceback" not in proc.stderr


LM_CONFIG = f"--config={ROOT}/configs/grammar_concepts.py:smoke"


def test_lm_capture_then_graph_then_steer(tmp_path):
  workdir = f"--workdir={tmp_path}"
  proc = run_module("identi.bin.capture", LM_CONFIG, workdir)
  assert "grammatical" in proc.stdout and "embed,block_0,block_1" in proc.stdout
  proc = run_module("identi.bin.concept_graph", LM_CONFIG, workdir)
  assert "level_3" in proc.stdout and "embed->block_0" in proc.stdout
  graph = json.loads((tmp_path / "graph.json").read_text())
  assert [r["layer"] for r in graph["table"]] == ["embed", "block_0", "block_1"]
  assert (tmp_path / "layer_mcc.png").stat().st_size > 100
  proc = run_module("identi.bin.steer", LM_CONFIG, workdir)
  assert all(mode in proc.stdout for mode in ("phrase", "parts", "flat"))
  assert (tmp_path / "steering.png").stat().st_size > 100


def test_lm_config_typo_is_a_one_line_error(tmp_path):
  proc = run_module("identi.bin.capture", LM_CONFIG, "--config.capture.layer=block_0",
                    f"--workdir={tmp_path}", check=False)
  assert proc.returncode != 0 and "capture.layer" in proc.stderr and "Traceback" not in proc.stderr
