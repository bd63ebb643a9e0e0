"""identi.bin.dashboard: writes the site that identi.dashboard builds (its errors: tests/test_dashboard.py)."""

import json

import numpy as np

from helpers import run_module


def test_dashboard_writes_a_site(tmp_path, trained_workdir):
  x = np.abs(np.random.default_rng(5).normal(size=(50, 16))).astype(np.float32)
  np.save(tmp_path / "x.npy", x)
  np.savez(tmp_path / "c.npz", images=np.zeros((50, 4, 4), np.uint8))
  proc = run_module("identi.bin.dashboard", f"--workdir={trained_workdir}",
                    f"--data={tmp_path / 'x.npy'}", f"--contexts={tmp_path / 'c.npz'}",
                    f"--output={tmp_path / 'site'}", "--top_k=2")
  assert f"dashboard: {tmp_path / 'site'}/index.html" in proc.stdout
  summary = json.loads((tmp_path / "site" / "dashboard.json").read_text())
  assert summary["units"] == 64 and summary["rows"] == 50 and summary["contexts"] == "image"
  assert (tmp_path / "site" / "index.html").exists()

