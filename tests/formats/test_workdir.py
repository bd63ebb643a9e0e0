"""Export and import between identi workdirs and the formats: exact round trips, atomic outputs,
and one-line errors for malformed files (identi/formats)."""

import json
import os
import shutil

import numpy as np
import pytest

from benchmarks import formats_peer
from identi import formats, io
from identi.dashboard import build_dashboard
from identi.errors import ConfigError, DataError
from identi.train import evaluate_workdir, load_trained, train_and_evaluate

from helpers import smoke_config

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "ecosystem")
ROUND_TRIPS = [("saelens", k) for k in ("relu", "topk", "batchtopk", "jumprelu", "matryoshka")] + [
    ("sparsify", "topk"), ("gemmascope", "jumprelu"), ("gemmascope", "batchtopk"),
    ("gemmascope", "relu")]


def _codes(workdir, x):
  _, model, variables = load_trained(str(workdir))
  return np.asarray(model.apply(variables, x, method="encode"))


@pytest.mark.parametrize("fmt,kind", ROUND_TRIPS, ids=[f"{f}-{k}" for f, k in ROUND_TRIPS])
def test_round_trip_is_bit_identical_and_keeps_the_kind(tmp_path, fmt, kind):
  formats_peer.make_workdir(kind, str(tmp_path / "a"))
  formats.export_sae(str(tmp_path / "a"), fmt, str(tmp_path / "out"))
  assert sorted(os.listdir(tmp_path / "out")) == sorted(
      formats.get_format(fmt).files + (formats.SIDECAR_FILE,))
  record = formats.import_sae(fmt, str(tmp_path / "out"), str(tmp_path / "b"))
  assert record["exact"] and record["kind"] == kind
  x = np.random.default_rng(0).normal(size=(50, 16)).astype(np.float32)
  np.testing.assert_array_equal(_codes(tmp_path / "a", x), _codes(tmp_path / "b", x))
  # An imported workdir exports again, to the same files.
  formats.export_sae(str(tmp_path / "b"), fmt, str(tmp_path / "again"))
  for name in formats.get_format(fmt).files:
    assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "again" / name).read_bytes()


def test_changed_files_are_imported_from_their_own_weights(tmp_path, caplog):
  formats_peer.make_workdir("topk", str(tmp_path / "a"))
  formats.export_sae(str(tmp_path / "a"), "saelens", str(tmp_path / "out"))
  cfg_path = tmp_path / "out" / "cfg.json"
  cfg = json.loads(cfg_path.read_text())
  cfg["k"] = 2  # Edited after export: the exact variables no longer describe these files.
  cfg_path.write_text(json.dumps(cfg))
  record = formats.import_sae("saelens", str(tmp_path / "out"), str(tmp_path / "b"))
  assert not record["exact"] and "does not match" in caplog.text
  codes = _codes(tmp_path / "b", np.ones((3, 16), np.float32))
  assert np.all((codes > 0).sum(axis=1) <= 2)


def test_trained_workdir_exports_and_evaluates_after_import(tmp_path, trained_workdir):
  formats.export_sae(trained_workdir, "saelens", str(tmp_path / "out"),
                     {"hook_name": "blocks.0.hook_resid_post"})
  cfg = json.loads((tmp_path / "out" / "cfg.json").read_text())
  assert cfg["architecture"] == "topk" and cfg["k"] == 4
  assert cfg["metadata"]["hook_name"] == "blocks.0.hook_resid_post"
  os.remove(tmp_path / "out" / formats.SIDECAR_FILE)
  formats.import_sae("saelens", str(tmp_path / "out"), str(tmp_path / "b"))
  x = np.random.default_rng(1).normal(size=(256, 16)).astype(np.float32)
  np.save(tmp_path / "x.npy", x)
  np.testing.assert_allclose(_codes(tmp_path / "b", x), _codes(trained_workdir, x), atol=1e-5)
  with pytest.raises(ConfigError, match="no held-out split; pass --data"):
    evaluate_workdir(str(tmp_path / "b"))
  result = evaluate_workdir(str(tmp_path / "b"), str(tmp_path / "x.npy"))
  assert result["num_tokens"] == 256 and result["l0"] == pytest.approx(4.0)
  with pytest.raises(ConfigError, match="imported SAE, not a training run"):
    train_and_evaluate(smoke_config("sae_topk"), str(tmp_path / "b"))
  summary = build_dashboard(str(tmp_path / "b"), str(tmp_path / "x.npy"), str(tmp_path / "dash"),
                            top_k=3)
  assert summary["units"] == 64 and (tmp_path / "dash" / "index.html").exists()


def _saelens_copy(tmp_path, name="topk"):
  dest = tmp_path / name
  shutil.copytree(os.path.join(FIXTURES, "saelens", name), dest)
  return dest


def _edit_tensors(path, edit):
  tensors, meta = io.read_tensors(str(path))
  edit(tensors)
  io.write_tensors(str(path), tensors, meta)


@pytest.mark.parametrize("edit,message", [
    (lambda t: t.pop("W_dec"), "has no tensor 'W_dec'"),
    (lambda t: t.update(b_enc=np.zeros(7, np.float32)), "'b_enc' has shape (7,); expected (48,)"),
    (lambda t: t["W_enc"].__setitem__((0, 0), np.nan), "'W_enc' holds NaN or Inf"),
])
def test_malformed_tensors_name_file_and_key(tmp_path, edit, message):
  src = _saelens_copy(tmp_path)
  _edit_tensors(src / "sae_weights.safetensors", edit)
  with pytest.raises(DataError, match="sae_weights.safetensors") as e:
    formats.import_sae("saelens", str(src), str(tmp_path / "w"))
  assert message in str(e.value) and "\n" not in str(e.value)
  assert not (tmp_path / "w" / "run.json").exists()


@pytest.mark.parametrize("fmt,setup,message", [
    ("saelens", lambda d: _set_cfg(d, architecture="gated"), "architecture 'gated' is not"),
    ("saelens", lambda d: _set_cfg(d, normalize_activations="layer_norm"),
     "normalize_activations is 'layer_norm'"),
    ("saelens", lambda d: _set_cfg(d, k=0), "k is 0"),
    ("saelens", lambda d: (d / "cfg.json").write_text("{not json"), "cfg.json is not valid JSON"),
    ("saelens", lambda d: os.remove(d / "cfg.json"), "cfg.json does not exist"),
    ("saelens", lambda d: (d / "sae_weights.safetensors").write_bytes(b"\x08" + b"\0" * 7 + b"x"),
     "is not a readable safetensors file"),
    ("sparsify", None, "does not exist"),
    ("gemmascope", lambda d: None, "holds neither params.npz nor params.safetensors"),
])
def test_malformed_files_get_one_line_errors(tmp_path, fmt, setup, message):
  src = _saelens_copy(tmp_path)
  if setup is not None:
    setup(src)
  path = src if setup is not None else tmp_path / "missing"
  with pytest.raises(DataError) as e:
    formats.import_sae(fmt, str(path), str(tmp_path / "w"))
  assert message in str(e.value) and "\n" not in str(e.value)


def _set_cfg(directory, **values):
  cfg = json.loads((directory / "cfg.json").read_text())
  cfg.update(values)
  (directory / "cfg.json").write_text(json.dumps(cfg))


def test_sparsify_run_directory_names_its_hook_points(tmp_path):
  run = tmp_path / "run"
  for hook in ("layers.3", "layers.5"):
    shutil.copytree(os.path.join(FIXTURES, "sparsify", "layers.3"), run / hook)
  with pytest.raises(DataError, match=r"several hook points \(layers.3, layers.5\); pass one"):
    formats.import_sae("sparsify", str(run), str(tmp_path / "w"))
  assert formats.import_sae("sparsify", str(run / "layers.5"), str(tmp_path / "w"))["d_sae"] == 48


def test_impossible_exports_and_occupied_outputs_are_refused(tmp_path):
  formats_peer.make_workdir("jumprelu", str(tmp_path / "a"))
  with pytest.raises(DataError, match="sparsify files hold TopK SAEs"):
    formats.export_sae(str(tmp_path / "a"), "sparsify", str(tmp_path / "out"))
  assert not (tmp_path / "out").exists() and not any(
      p.name.startswith(".tmp-") for p in tmp_path.iterdir())
  (tmp_path / "full").mkdir()
  (tmp_path / "full" / "keep.txt").write_text("mine")
  with pytest.raises(ConfigError, match="already exists and is not empty"):
    formats.export_sae(str(tmp_path / "a"), "saelens", str(tmp_path / "full"))
  assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
  with pytest.raises(ConfigError, match="unknown SAE format 'safetensor'; choose one of"):
    formats.export_sae(str(tmp_path / "a"), "safetensor", str(tmp_path / "o2"))
  formats_peer.make_workdir("mp", str(tmp_path / "mp"))
  with pytest.raises(DataError, match="kind 'mp' has no counterpart in the toolkits' formats"):
    formats.export_sae(str(tmp_path / "mp"), "saelens", str(tmp_path / "o3"))
  with pytest.raises(ConfigError, match="already holds a run"):
    formats.import_sae("saelens", os.path.join(FIXTURES, "saelens", "topk"), str(tmp_path / "a"))
