"""paper/make_figures.py in smoke mode writes every figure as PNG, PDF and JSON."""

import os

from conftest import run_module


def test_make_figures_smoke(tmp_path):
  run_module("paper.make_figures", "--smoke", f"--out={tmp_path}")
  out = tmp_path / "superposition_identifiability"
  for name in ("identifiability.png", "identifiability.pdf", "demo.json"):
    assert os.path.getsize(out / name) > 100, name
