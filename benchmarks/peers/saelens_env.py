"""The peers' own virtual environment (CPU torch, sae-lens, eai-sparsify), apart from identi's.

identi must never depend on torch, so the peer lives in `benchmarks/peers/.venv`, created on first
use. A stamp file records the installed versions; while it exists the environment is reused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from identi import allocator

#: The CPU build of torch (a bare `torch` requirement would pull a multi-GB CUDA build).
TORCH = "torch==2.13.0"
VENV = os.path.join("benchmarks", "peers", ".venv")
STAMP = ".saelens-installed"
#: A python that already has torch and sae-lens (e.g. a GPU machine's own, with CUDA torch), used
#: instead of the peer venv when set.
PYTHON_ENV = "IDENTI_PEER_PYTHON"


def _run(cmd: list[str], root: str) -> str:
  """Runs an install command; a failure raises a RuntimeError that says how to retry."""
  proc = subprocess.run(cmd, capture_output=True, text=True)
  if proc.returncode != 0:
    raise RuntimeError(
        f"SAELens peer environment: `{' '.join(cmd)}` failed ({proc.returncode}):\n"
        f"{proc.stderr[-2000:]}\nRetry by deleting {os.path.join(root, VENV)} and rerunning the "
        "benchmark, or run the command above by hand.")
  return proc.stdout


def ensure_env(root: str) -> str:
  """Creates (once) the peer venv under `root` and returns the path of its python."""
  venv = os.path.join(root, VENV)
  python = os.path.join(venv, "bin", "python")
  stamp = os.path.join(venv, STAMP)
  if os.path.exists(stamp) and os.access(python, os.X_OK):
    return python
  if not os.access(python, os.X_OK):
    print(f"creating the SAELens peer environment in {venv} (once; a few minutes)",
          file=sys.stderr)
    _run(["python3", "-m", "venv", venv], root)
  pip = [python, "-m", "pip", "install", "--quiet"]
  _run(pip + [TORCH], root)
  _run(pip + [TORCH, "sae-lens", "eai-sparsify"], root)
  versions = _run([python, "-c", "import importlib.metadata as m; "
                   "print(f\"torch=={m.version('torch')} sae-lens=={m.version('sae-lens')} "
                   "eai-sparsify=={m.version('eai-sparsify')}\")"],
                  root)
  with open(stamp, "w", encoding="utf-8") as f:
    f.write(versions)
  return python


def run_json(cmd: list[str]) -> dict:
  """Runs a peer script and returns the JSON object on the last line of its stdout.

  The peer gets the malloc settings that identi's side runs with (`identi.allocator`), so that
  both allocate their per-step scratch memory under one policy.
  """
  proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                        env=dict(os.environ, **allocator.environment()))
  if proc.returncode != 0:
    raise RuntimeError(f"`{' '.join(cmd)}` failed ({proc.returncode}): {proc.stderr[-2000:]}")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def warn(message: str) -> None:
  """A one-line warning that the benchmark goes on without the SAELens columns."""
  print(f"warning: {message.splitlines()[0]}; the SAELens columns are left empty",
        file=sys.stderr)


def peer_python(peer: str, preset: str, root: str) -> str | None:
  """The peer venv's python for --peer (auto: saelens except for the smoke preset), or None
  (with a warning) when the peer is off or cannot be set up. `$IDENTI_PEER_PYTHON`, when set,
  names the python to use instead of the venv."""
  if peer == "auto":
    peer = "none" if preset == "smoke" else "saelens"
  if peer == "none":
    return None
  python = os.environ.get(PYTHON_ENV)
  if python:
    if not os.access(python, os.X_OK):
      raise ValueError(f"${PYTHON_ENV}={python!r} is not an executable python; unset it to use "
                       f"the peer venv {os.path.join(root, VENV)}")
    return python
  try:
    return ensure_env(root)
  except (RuntimeError, OSError) as e:
    warn(f"SAELens peer environment unavailable: {e}")
    return None
