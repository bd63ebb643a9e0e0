"""The formats benchmark's peer script parses its command line without torch (the comparison
itself is checked through its committed fixture, tests/formats/test_ecosystem.py)."""

import subprocess
import sys

from helpers import ROOT


def test_peer_script_help_needs_no_torch():
  proc = subprocess.run([sys.executable, "benchmarks/peers/formats_codes.py", "--help"], cwd=ROOT,
                        capture_output=True, text=True, timeout=60, check=True)
  assert "--fixtures" in proc.stdout and "--write_native" in proc.stdout
