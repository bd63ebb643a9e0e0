"""identi.bin.encode: writes the codes that the library computes for the same rows."""

import numpy as np

from helpers import run_module
from identi import infer
from identi.train import load_trained


def test_encode_matches_library(tmp_path, trained_workdir):
  x = np.random.default_rng(2).normal(size=(77, 16)).astype(np.float32)
  np.save(tmp_path / "x.npy", x)
  proc = run_module("identi.bin.encode", f"--workdir={trained_workdir}",
                    f"--input={tmp_path / 'x.npy'}", f"--output={tmp_path / 'codes.npy'}")
  assert "(77, 64)" in proc.stdout
  codes = np.load(tmp_path / "codes.npy")
  _, model, variables = load_trained(trained_workdir)
  expected = np.asarray(model.apply(variables, x, method="encode"))
  np.testing.assert_allclose(codes, expected, rtol=1e-5, atol=1e-6)
  assert np.all((codes > 0).sum(axis=1) == 4)


def test_encode_rejects_nan_input(tmp_path, trained_workdir):
  x = np.zeros((5, 16), np.float32)
  x[3, 1] = np.nan
  np.save(tmp_path / "x.npy", x)
  proc = run_module("identi.bin.encode", f"--workdir={trained_workdir}",
                    f"--input={tmp_path / 'x.npy'}", f"--output={tmp_path / 'c.npy'}",
                    check=False)
  assert proc.returncode != 0 and "row 3" in proc.stderr and "x.npy" in proc.stderr
  assert not (tmp_path / "c.npy").exists()


def test_encode_minimal_mode_matches_library(tmp_path, trained_workdir):
  x = np.random.default_rng(3).normal(size=(40, 16)).astype(np.float32)
  np.save(tmp_path / "x.npy", x)
  run_module("identi.bin.encode", f"--workdir={trained_workdir}", f"--input={tmp_path / 'x.npy'}",
             f"--output={tmp_path / 'codes.npy'}", "--mode=minimal")
  codes = np.load(tmp_path / "codes.npy")
  _, model, variables = load_trained(trained_workdir)
  np.testing.assert_allclose(codes, infer.minimal_codes(model, variables, x), rtol=1e-4,
                             atol=1e-5)
  assert np.all(codes >= 0) and np.all((codes > 0).sum(axis=1) <= 8)
