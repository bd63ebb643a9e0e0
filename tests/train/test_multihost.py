"""Two processes on localhost (CPU, gloo collectives) train the same run as one process, with
the latents sharded over a 'model' mesh axis."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from helpers import ROOT, xla_flags
from identi.train import load_trained


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def test_two_processes_match_one_process(tmp_path, trained_workdir):
  workdir = str(tmp_path / "multihost")
  port = _free_port()
  env = dict(os.environ, XLA_FLAGS=xla_flags(4), JAX_PLATFORMS="cpu")
  procs = [
      subprocess.Popen(
          [sys.executable, "-m", "identi.bin.train", f"--config={ROOT}/configs/sae_topk.py:smoke",
           f"--workdir={workdir}", f"--coordinator_address=localhost:{port}",
           "--num_processes=2", f"--process_id={i}", "--config.mesh.model=4"],
          cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
      for i in range(2)
  ]
  outputs = [p.communicate(timeout=300)[0] for p in procs]
  for p, out in zip(procs, outputs):
    assert p.returncode == 0, out[-3000:]
  # 2 processes x 4 devices, mesh (data 2, model 4), train the SAE of the single-process
  # data-parallel reference; its checkpoint restores here onto one process's 8 devices.
  _, _, multi = load_trained(workdir)
  _, _, single = load_trained(trained_workdir)
  for a, b in zip(jax.tree.leaves(multi), jax.tree.leaves(single)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
  with open(os.path.join(workdir, "final.json")) as f, \
      open(os.path.join(trained_workdir, "final.json")) as g:
    assert json.load(f)["fvu"] == pytest.approx(json.load(g)["fvu"], rel=1e-4)
