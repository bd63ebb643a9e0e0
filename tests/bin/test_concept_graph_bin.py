"""identi.bin.concept_graph and identi.bin.steer on the smoke config, sharing one workdir."""

import json

from conftest import ROOT, run_module


def test_concept_graph_then_steer_binaries(tmp_path):
  config = f"--config={ROOT}/configs/concept_graph_hsm.py:smoke"
  proc = run_module("identi.bin.concept_graph", config, f"--workdir={tmp_path}")
  assert "precision" in proc.stdout and "1->2" in proc.stdout and "2->3" in proc.stdout
  graph = json.loads((tmp_path / "graph.json").read_text())
  assert {n["level"] for n in graph["nodes"]} == {1, 2, 3}
  assert all(e["from"].startswith(("L1:", "L2:")) for e in graph["edges"])
  assert (tmp_path / "concept_graph.png").stat().st_size > 100
  proc = run_module("identi.bin.steer", config, f"--workdir={tmp_path}")
  assert "HSM (selection)" in proc.stdout and "specificity" in proc.stdout
  steering = json.loads((tmp_path / "steering.json").read_text())
  assert len(steering["levels"]) == 3
  assert (tmp_path / "steering.pdf").stat().st_size > 100


def test_config_typo_is_a_one_line_error(tmp_path):
  proc = run_module("identi.bin.concept_graph", f"--config={ROOT}/configs/concept_graph_hsm.py",
                    "--config.graph.precison=0.5", f"--workdir={tmp_path}", check=False)
  assert proc.returncode != 0 and "graph.precison" in proc.stderr
