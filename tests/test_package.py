"""`import identi` changes no global state and loads no optional or heavy library."""

import json
import subprocess
import sys

from helpers import ROOT


def test_import_identi_is_side_effect_free():
  code = ("import json, sys, os; import identi; "
          "print(json.dumps({'loaded': [m for m in ('matplotlib', 'matplotlib.pyplot', 'torch', "
          "'tokenizers', 'safetensors', 'sae_lens') if m in sys.modules], "
          "'malloc': [k for k in os.environ if k.startswith('MALLOC_')]}))")
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       check=True, timeout=120, env={"PATH": "/usr/bin:/bin"}).stdout
  result = json.loads(out.strip().splitlines()[-1])
  assert result == {"loaded": [], "malloc": []}
