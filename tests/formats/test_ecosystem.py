"""identi against the ecosystem's own code, without torch: the committed fixture holds SAEs that
SAELens, sparsify and the Gemma Scope layout wrote, identi's exports of its own SAEs, and each
library's codes of the same rows (made by `python -m benchmarks.formats_peer --write_native`)."""

import json
import os
import shutil

import numpy as np
import pytest

from benchmarks import formats_peer
from helpers import ROOT
from identi import formats, io
from identi.train import load_trained

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "ecosystem")
TOL = 1e-5


def _inputs():
  return np.load(os.path.join(FIXTURES, "inputs.npy"))


def _codes(workdir, x):
  _, model, variables = load_trained(str(workdir))
  return np.asarray(model.apply(variables, x, method="encode"))


@pytest.mark.parametrize("fmt,rel", formats_peer.NATIVE, ids=[r for _, r in formats_peer.NATIVE])
def test_import_gives_the_library_codes(tmp_path, fmt, rel):
  path = os.path.join(FIXTURES, rel)
  record = formats.import_sae(fmt, path, str(tmp_path / "w"))
  assert not record["exact"] and record["d_in"] == 16 and record["d_sae"] == 48
  expected = np.load(os.path.join(path, "codes.npy"))
  codes = _codes(tmp_path / "w", _inputs())
  assert np.mean(expected > 0) > 0.05  # The rows really fire latents.
  np.testing.assert_allclose(codes, expected, rtol=0, atol=TOL)
  np.testing.assert_array_equal(codes > 0, expected > 0)
  if fmt == "saelens" and not rel.endswith("_trained"):  # Its metadata comes across.
    assert record["metadata"]["hook_name"] == "blocks.3.hook_resid_post"


@pytest.mark.parametrize("fmt,kind", formats_peer.EXPORTS,
                         ids=[f"{f}-{k}" for f, k in formats_peer.EXPORTS])
def test_library_reads_identi_exports_as_identi_encodes(tmp_path, fmt, kind):
  """The library's codes of identi's files (peer_codes.npy) equal identi's codes of the SAE,
  and identi's export of that SAE today writes exactly the committed files."""
  committed = os.path.join(FIXTURES, "identi", f"{fmt}_{kind}")
  formats_peer.make_workdir(kind, str(tmp_path / "orig"))
  formats.export_sae(str(tmp_path / "orig"), fmt, str(tmp_path / "out"),
                     {"hook_name": "blocks.3.hook_resid_post", "model_name": "fixture-model"})
  for name in formats.get_format(fmt).files:
    fresh, old = tmp_path / "out" / name, os.path.join(committed, name)
    if name.endswith(".json"):
      assert json.loads(fresh.read_text()) == json.load(open(old))
    else:
      a, _ = io.read_tensors(str(fresh))
      b, _ = io.read_tensors(old)
      assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
  x = _inputs()
  original = _codes(tmp_path / "orig", x)
  peer = np.load(os.path.join(committed, "peer_codes.npy"))
  np.testing.assert_allclose(original, peer, rtol=0, atol=TOL)
  np.testing.assert_array_equal(original > 0, peer > 0)
  # Without identi's exact variables the format's own weights give the library's codes too.
  weights_only = tmp_path / "weights_only"
  shutil.copytree(committed, weights_only,
                  ignore=shutil.ignore_patterns(formats.SIDECAR_FILE, "*.npy"))
  formats.import_sae(fmt, str(weights_only), str(tmp_path / "w"))
  np.testing.assert_allclose(_codes(tmp_path / "w", x), peer, rtol=0, atol=TOL)


def test_results_json_is_what_the_fixture_gives():
  with open(os.path.join(FIXTURES, "results.json")) as f:
    result = json.load(f)
  rows = {(r["format"], r["sae"]): r for r in result["rows"]}
  assert len(rows) == len(formats_peer.EXPORTS) + len(formats_peer.NATIVE)
  for r in rows.values():
    assert r["max_abs_diff_weights_only"] < TOL
    if r["direction"] == "export":
      assert r["round_trip_bit_identical"] and r["max_abs_diff"] < TOL
