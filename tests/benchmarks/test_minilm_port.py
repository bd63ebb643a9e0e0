"""The MiniLM port check's peer script parses its command line without torch (identi's port is
checked against its committed reference by tests/models/test_bert.py)."""

import subprocess
import sys

from helpers import ROOT


def test_peer_script_help_needs_no_torch():
  proc = subprocess.run([sys.executable, "benchmarks/peers/minilm_reference.py", "--help"],
                        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
  assert "--model_dir" in proc.stdout and "--output" in proc.stdout
