"""identi.bin.find once, as a subprocess, on the smoke config (units off: tests/find/test_units.py
covers them); a config typo fails in one line."""

import json

from helpers import ROOT, run_module

SMOKE = f"--config={ROOT}/configs/find.py:smoke"


def test_find_binary_writes_results_transcripts_and_figure(tmp_path):
  proc = run_module("identi.bin.find", SMOKE, "--config.units.enabled=False",
                    f"--workdir={tmp_path}")
  assert "numeric/bias" in proc.stdout and "string/reverse" in proc.stdout
  result = json.loads((tmp_path / "results.json").read_text())
  rows = {(r["agent"], r["category"]): r for r in result["rows"]}
  assert rows[("scientist", "numeric/linear")]["success"] == 1.0
  assert {a for a, _ in rows} == {"scientist", "baseline"}
  events = (tmp_path / "transcripts" / "scientist_numeric.jsonl").read_text().splitlines()
  assert json.loads(events[-1])["type"] == "description"
  assert (tmp_path / "find.png").stat().st_size > 1000 and (tmp_path / "find.pdf").exists()


def test_find_binary_config_typo_is_one_line(tmp_path):
  proc = run_module("identi.bin.find", SMOKE, "--config.num_numerc=3", f"--workdir={tmp_path}",
                    check=False)
  assert proc.returncode != 0
  assert "num_numerc" in proc.stderr
