"""The minimality stage of a training run (configs/sae_identifiable.py): outputs, resume, errors."""

import json
import os
import shutil

import jax
import numpy as np
import pytest

from helpers import ROOT, run_module, smoke_config
from identi import data as data_lib
from identi import io
from identi import sae as sae_lib
from identi.errors import CheckpointError, ConfigError
from identi.infer import ancestors
from identi.infer import minimality as minimality_infer
from identi.train import load_config, load_trained, minimality
from identi.train.config import validate_config

# The module's fixtures are expensive: one worker runs all its tests (make test's --dist loadgroup).
pytestmark = pytest.mark.xdist_group("minimality_stage")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """configs/sae_identifiable.py:smoke trained by the binary, as the config's docstring says."""
  workdir = str(tmp_path_factory.mktemp("identifiable"))
  run_module("identi.bin.train", f"--config={ROOT}/configs/sae_identifiable.py:smoke",
             f"--workdir={workdir}")
  with open(os.path.join(workdir, "final.json")) as f:
    return workdir, json.load(f)


def test_shipped_config_validates():
  for variant in ("", ":smoke"):
    config = load_config(f"{ROOT}/configs/sae_identifiable.py{variant}")
    validate_config(config)
    assert config.sae.kind == "batchtopk" and config.minimality.enabled
    assert config.minimality.expansion == minimality.RECIPE_EXPANSION == 2


def test_the_sae_trains_wider_and_the_stage_keeps_at_most_d_sae_atoms(trained):
  from identi.train import sharding  # pylint: disable=g-import-not-at-top
  from identi.train.checkpoint import Checkpointer  # pylint: disable=g-import-not-at-top
  from identi.train.trainer import abstract_state  # pylint: disable=g-import-not-at-top
  workdir, final = trained
  config = load_config(f"{ROOT}/configs/sae_identifiable.py:smoke")
  d_sae, d_in = config.sae.d_sae, final["d_in"]
  repl = sharding.replicated(sharding.data_mesh())
  target = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=repl),
                        abstract_state(config, d_in))
  checkpointer = Checkpointer(workdir, max_to_keep=1, async_save=False)
  state, _ = checkpointer.restore_newest(target)
  checkpointer.close()
  assert state["params"]["W_dec"].shape == (2 * d_sae, d_in)  # The trained SAE.
  _, model, variables = load_trained(workdir)
  assert model.d_sae == final["d_sae"] == d_sae
  assert variables["params"]["W_dec"].shape == (d_sae, d_in)
  assert minimality.report(workdir)[-1]["atoms"] <= d_sae


def test_encode_binary_gives_the_final_codes(trained, tmp_path):
  workdir, _ = trained
  _, model, variables = load_trained(workdir)
  x = np.random.default_rng(1).normal(size=(50, model.d_in)).astype(np.float32)
  np.save(tmp_path / "x.npy", x)
  for mode in ("encoder", "minimal"):
    run_module("identi.bin.encode", f"--workdir={workdir}", f"--input={tmp_path / 'x.npy'}",
               f"--output={tmp_path / mode}.npy", f"--mode={mode}")
  expected = np.asarray(model.apply(variables, x, method="encode"))
  np.testing.assert_allclose(np.load(tmp_path / "encoder.npy"), expected, rtol=1e-5, atol=1e-6)
  minimal = np.load(tmp_path / "minimal.npy")
  atoms = minimality.report(workdir)[-1]["atoms"]
  assert (minimal >= 0).all() and not minimal[:, atoms:].any() and minimal.any()


def test_train_runs_the_stage_and_load_trained_returns_its_variables(trained):
  workdir, final = trained
  path = minimality.path(workdir)
  assert os.path.exists(path)
  report = minimality.report(workdir)
  assert report[0]["step"] == "start" and report[-1]["step"] == "encoder"
  atoms = report[-1]["atoms"]
  _, model, variables = load_trained(workdir)
  assert minimality.ancestor_units(variables).size == 0  # Atoms only: no shared ancestors.
  params = jax.tree.map(np.asarray, variables["params"])
  norms = np.linalg.norm(params["W_dec"], axis=1)
  np.testing.assert_allclose(norms[:atoms], 1.0, atol=1e-5)
  assert not norms[atoms:].any()
  assert (params["b_enc"][atoms:] == minimality.UNUSED_BIAS).all()
  # The evaluation of final.json is of the minimal SAE, and its unused latents never fire.
  source = data_lib.ArraySource(np.random.default_rng(0).normal(size=(256, model.d_in)))
  codes = np.asarray(model.apply(variables, source.get(np.arange(256)), method=model.encode))
  assert (codes >= 0).all() and not codes[:, atoms:].any() and codes.any()
  assert final["dead_fraction"] >= (model.d_sae - atoms) / model.d_sae - 1e-6


def _stage_output(workdir):
  """The stage file's arrays and metadata (safetensors may order its header differently)."""
  variables, spec, metadata = sae_lib.load_variables(minimality.path(workdir))
  return jax.tree.map(np.asarray, variables), spec, metadata


def _assert_same(a, b):
  (va, spec_a, meta_a), (vb, spec_b, meta_b) = a, b
  assert spec_a == spec_b and meta_a == meta_b
  jax.tree.map(np.testing.assert_array_equal, va, vb)


def test_resume_reuses_the_stage_and_a_fresh_run_is_bit_identical(trained, tmp_path):
  workdir, _ = trained
  before = _stage_output(workdir)
  mtime = os.path.getmtime(minimality.path(workdir))
  run_module("identi.bin.train", f"--config={ROOT}/configs/sae_identifiable.py:smoke",
             f"--workdir={workdir}")
  assert os.path.getmtime(minimality.path(workdir)) == mtime  # Reused, not rewritten.
  run_module("identi.bin.train", f"--config={ROOT}/configs/sae_identifiable.py:smoke",
             f"--workdir={tmp_path}")
  _assert_same(_stage_output(str(tmp_path)), before)


def test_a_run_without_its_stage_output_says_how_to_finish(trained, tmp_path):
  workdir, _ = trained
  copy = tmp_path / "copy"
  shutil.copytree(workdir, copy)
  os.remove(minimality.path(str(copy)))
  with pytest.raises(CheckpointError, match="rerun"):
    load_trained(str(copy))


@pytest.mark.parametrize("overrides,match", [
    ({"sae__kind": "relu"}, "k-sparse"),
    ({"minimality__tol": 0.0}, "minimality.tol"),
    ({"minimality__enabled": False}, "minimality.expansion"),
    ({"minimality__expansion": 0}, "minimality.expansion"),
    ({"minimality__dictionary": "refind"}, "minimality.dictionary"),
    ({"minimality__refine_rounds": 0}, "minimality.refine_rounds"),
    ({"minimality__ancestors": "yes"}, "minimality.ancestors"),
    ({"minimality__ancestor_codes": "nest"}, "minimality.ancestor_codes"),
    ({"minimality__unit_rounds": 0}, "minimality.unit_rounds"),
    ({"minimality__fit_floor": 1.0}, "minimality.fit_floor"),
    ({"minimality__code_floor": -0.1}, "minimality.code_floor"),
    ({"minimality__fit_floor": 0.25, "minimality__ancestor_codes": "fitted"}, "only 'nested'"),
    ({"minimality__code_floor": 0.15}, "not fitted"),
    ({"minimality__prune_codes": True, "minimality__ancestors": "never"}, "ancestor map reads"),
    ({"minimality__ancestor_selection": "remainder"}, "ancestor_input to 'profiles'"),
    ({"minimality__ancestor_selection": "remainder", "minimality__ancestor_input": "profiles"},
     "ancestor_codes to 'fitted'"),
    ({"minimality__merge_units": True}, "merge_units' is True"),
    ({"minimality__merge_units": True, "minimality__ancestor_codes": "fitted",
      "minimality__ancestors": "never"}, "ancestors to 'refined'"),
])
def test_impossible_settings_are_refused(overrides, match):
  with pytest.raises(ConfigError, match=match):
    validate_config(smoke_config("sae_identifiable", **overrides))


def test_a_sweep_runs_the_stage_for_every_seed(tmp_path):
  from identi.train import train_sweep  # pylint: disable=g-import-not-at-top
  finals = train_sweep(smoke_config("sae_identifiable", sweep__init_seeds="0,3"), str(tmp_path))
  assert [f["init_seed"] for f in finals] == [0, 3]
  for final, seed in zip(finals, (0, 3)):
    workdir = str(tmp_path / f"seed_{seed}")
    assert final["kind"] == minimality.FINAL_KIND and np.isfinite(final["mcc"])
    assert os.path.exists(minimality.path(workdir))
    _, model, _ = load_trained(workdir)
    assert type(model).__name__ == "JumpReLUSAE"


def test_the_refined_stage_prunes_to_d_sae_and_polishes(tmp_path):
  from identi.train import train_and_evaluate  # pylint: disable=g-import-not-at-top
  config = smoke_config("sae_identifiable", minimality__dictionary="refined",
                        minimality__refine_rounds=2, minimality__polish_rounds=1)
  train_and_evaluate(config, str(tmp_path))
  report = minimality.report(str(tmp_path))
  d_sae = config.sae.d_sae
  # In 16 dimensions the atoms share directions only by chance: no ancestors are added.
  assert [r["step"] for r in report] == ["start", "refine", "keep", "polish", "ancestors",
                                         "encoder"]
  assert report[0]["atoms"] == 2 * d_sae and report[2]["atoms"] == d_sae
  assert report[4]["ancestors"] == 0
  _, model, variables = load_trained(str(tmp_path))
  assert model.d_sae == d_sae
  np.testing.assert_allclose(np.linalg.norm(variables["params"]["W_dec"], axis=1), 1.0,
                             rtol=1e-5)


def test_a_minimal_dictionary_wider_than_d_sae_gives_way_to_the_refined_decoder():
  """Parts that each fire alone all pass the minimality tests; with d_sae below their count the
  stage sets the minimal dictionary aside and keeps the d_sae parts the data use most."""
  d_in, parts_count, d_sae = 16, 8, 4
  config = smoke_config("sae_identifiable", sae__d_sae=d_sae, minimality__refine_rounds=2,
                        minimality__polish_rounds=1, minimality__max_atoms=4)
  rng = np.random.default_rng(0)
  parts = np.linalg.qr(rng.normal(size=(d_in, parts_count)))[0].T.astype(np.float32)
  rates = np.linspace(0.4, 0.05, parts_count)  # Parts 0-3 are the most used.
  z = (rng.random((6000, parts_count)) < rates) * rng.lognormal(0.0, 0.25, (6000, parts_count))
  x = (z @ parts).astype(np.float32)
  junk = 1e-3 * rng.normal(size=(2, d_in)).astype(np.float32)  # Dropped by the tests.
  model = sae_lib.make_sae("batchtopk", d_in, parts_count + 2, k=4)
  variables = jax.tree.map(np.asarray, model.init(jax.random.key(0), x[:1]))
  variables["params"]["W_dec"] = np.concatenate([parts, junk])
  variables["params"]["b_dec"] = np.zeros(d_in, np.float32)
  variables["stats"]["input_scale"] = np.float32(1.0)
  out, report = minimality.minimal_variables(model, variables, x, config)
  steps = [r["step"] for r in report]
  assert "drop_unneeded" in steps and "refined keep" in steps, steps
  # 8 atoms after the first pass, more than 1.25 x 4: no seeds or polish before the rejection.
  rejected = steps.index("minimal rejected")
  assert steps[rejected - 2:rejected] == ["drop_unneeded", "given up"], steps
  assert report[rejected]["atoms"] == parts_count
  assert report[steps.index("refined start")]["atoms"] == parts_count + 2  # The trained decoder.
  assert report[steps.index("refined keep")]["atoms"] == d_sae and report[-1]["atoms"] == d_sae
  w_dec = out["params"]["W_dec"]
  assert w_dec.shape == (d_sae, d_in)
  cos = w_dec @ parts.T
  assert sorted(cos.argmax(1)) == list(range(d_sae))  # The most used parts, one atom each.
  assert cos.max(1).min() > 0.98, cos.max(1)  # Tilted a little towards the parts left out.


@pytest.mark.parametrize(
    "grouping,parent,ancestor_input,ancestor_codes,floor,prune,selection,merge", [
        ("mean_shift", 1.0, "atoms", "spread", 0.0, False, "cosine", False),
        ("linkage", 0.7, "atoms", "spread", 0.0, False, "cosine", False),
        ("mean_shift", 1.0, "profiles", "spread", 0.0, False, "cosine", False),
        ("mean_shift", 1.0, "profiles", "fitted", 0.0, False, "cosine", False),
        ("mean_shift", 1.0, "profiles", "nested", 0.0, False, "cosine", False),
        ("mean_shift", 1.0, "profiles", "nested", 0.25, True, "remainder", True)])
def test_a_dictionary_of_tree_paths_gains_its_parents_as_units(tmp_path, grouping, parent,
                                                                ancestor_input, ancestor_codes,
                                                                floor, prune, selection, merge):
  """SAELens-style hierarchy (a parent fires with exactly one child): where the refined route's
  atoms are the paths (here planted), the stage adds the shared parents as units, saves them with
  the stage, and encode --mode=minimal codes them. With parents of weight 0.7 (siblings' cosine
  0.33) only `minimality.ancestor_grouping = 'linkage'` finds them. Grouped by the atoms' row
  profiles (`minimality.ancestor_input = 'profiles'`) the stage finds the same parents. With
  `minimality.ancestor_codes = 'fitted'` the codes are re-fitted on each row's units and
  reconstruct each row no worse than the spread codes they start from. With 'nested' the stage
  also keeps the atoms' nested pairs (none among these paths, whose siblings never co-fire) and
  fits the units' directions to the supports; with floors on the codes it saves each unit's floor
  and codes the same way. With pruned atom codes (`minimality.prune_codes`) the stage and encode
  read the same pruned codes, and each row keeps no more atoms than OMP gave it; there each
  atom's ancestors are chosen by the pursuit continued on the atom ('remainder'), and every path
  keeps its own root; with duplicate units merged (`minimality.merge_units`) none of these units
  lies near another, so none merges."""
  from identi.train import encode_file, runtime  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  d_in, roots, leaves, n = 96, 4, 6, 4096
  basis = np.linalg.qr(rng.normal(size=(d_in, roots * (leaves + 1))))[0].T.astype(np.float32)
  z = np.zeros((n, roots + roots * leaves), np.float32)
  for i in range(n):
    for path in rng.choice(roots * leaves, size=rng.integers(1, 3), replace=False):
      magnitude = rng.lognormal(0.0, 0.3)
      z[i, path // leaves] += magnitude
      z[i, roots + path] = magnitude
  basis[:roots] *= parent
  x = z @ basis
  paths = np.repeat(basis[:roots], leaves, 0) + basis[roots:]
  config = smoke_config("sae_identifiable", sae__d_sae=roots * leaves, sae__k=2,
                        minimality__dictionary="refined", minimality__refine_rounds=2,
                        minimality__polish_rounds=1, minimality__num_samples=n,
                        minimality__ancestor_grouping=grouping,
                        minimality__ancestor_input=ancestor_input,
                        minimality__ancestor_codes=ancestor_codes,
                        minimality__fit_floor=floor, minimality__code_floor=floor,
                        minimality__prune_codes=prune,
                        minimality__ancestor_selection=selection,
                        minimality__merge_units=merge)
  assert config.minimality.ancestors == "refined"  # The default.
  model = sae_lib.make_sae("batchtopk", d_in, 2 * roots * leaves, k=2)
  variables = jax.tree.map(np.asarray, model.init(jax.random.key(0), x[:1]))
  variables["params"]["W_dec"] = np.concatenate([paths, paths]) / np.sqrt(2.0)
  variables["params"]["b_dec"] = np.zeros(d_in, np.float32)
  variables["stats"]["input_scale"] = np.float32(1.0)
  workdir = str(tmp_path)
  io.write_json(os.path.join(workdir, runtime.RUN_FILE), {"config": config.to_dict(), "d_in": d_in})
  final, out = minimality.run_stage(model, variables, data_lib.ArraySource(x), config, workdir)
  report = minimality.report(workdir)
  step = next(r for r in report if r["step"] == "ancestors")
  units = roots * leaves + roots
  assert step["ancestors"] == roots and report[-1]["units"] == units, report
  _, loaded_model, loaded = load_trained(workdir)
  assert loaded_model.d_sae == final.d_sae == units
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(loaded), out)
  amap = out[minimality.ANCESTORS]
  assert amap["weights"].shape == (roots * leaves, units)
  assert ("nested" in amap) == (ancestor_codes == "nested")
  if ancestor_codes == "nested":
    assert amap["nested"].shape == (0, 2) and amap["nested"].dtype == np.int32
    assert step["nested_pairs"] == 0
  assert ("floors" in amap) == (floor > 0)
  assert step.get("merged_units") == (0 if merge else None), step
  if floor:  # A quarter of each unit's 0.9 quantile of its stage codes: every unit fires.
    assert amap["floors"].shape == (units,) and amap["floors"].dtype == np.float32
    assert amap["floors"].min() > 0, amap["floors"]
  if selection == "remainder":  # Each path's atom carries one root unit: its own root's.
    carried = amap["weights"][:, roots * leaves:] > 0
    assert np.all(carried.sum(1) == 1), carried.sum(1)
    root_of = (out["params"]["W_dec"][roots * leaves:units] @ basis[:roots].T).argmax(1)
    atom_root = (amap["atoms"] @ basis[:roots].T).argmax(1)
    assert np.all(root_of[carried.argmax(1)] == atom_root)
  if grouping == "linkage":  # The default grouping finds none of these parents.
    assert ancestors.ancestor_map(amap["atoms"], np.ones(roots * leaves)).num_ancestors == 0
  np.testing.assert_array_equal(minimality.ancestor_units(out),
                                np.arange(roots * leaves, units))
  np.save(tmp_path / "x.npy", x[:1000])
  encode_file(workdir, str(tmp_path / "x.npy"), str(tmp_path / "c.npy"), mode="minimal")
  codes = np.load(tmp_path / "c.npy")
  np.testing.assert_array_equal(codes, minimality.minimal_codes(out, x[:1000], config))
  atom_codes = minimality_infer.codes(x[:1000], amap["atoms"], minimality.settings(config))
  if prune:  # What the map reads: no row keeps more atoms than OMP gave it.
    pruned = minimality.atom_codes_of(x[:1000], amap["atoms"], atom_codes, config)
    assert np.all(np.sum(pruned > 0, 1) <= np.sum(atom_codes > 0, 1))
    atom_codes = pruned
  if ancestor_codes == "spread":  # The reconstruction is the atoms': the units re-express it.
    np.testing.assert_allclose(codes @ out["params"]["W_dec"], atom_codes @ amap["atoms"],
                               atol=1e-4)
  else:  # Re-fitted from the spread codes on their units: no row is reconstructed worse.
    err = lambda c: np.linalg.norm(x[:1000] - c @ out["params"]["W_dec"][:units], axis=1)
    assert np.all(err(codes[:, :units]) <= err(atom_codes @ amap["weights"]) + 1e-4)
    assert not np.array_equal(codes[:, :units], atom_codes @ amap["weights"])

  def best(c):  # Each root's best correlation with a unit.
    a, b = z[:1000, :roots] - z[:1000, :roots].mean(0), c - c.mean(0)
    corr = (a.T @ b) / np.outer(np.linalg.norm(a, axis=0), np.linalg.norm(b, axis=0)).clip(1e-9)
    return corr.max(1)

  assert best(atom_codes).max() < 0.6, best(atom_codes)  # No atom codes a root,
  assert best(codes).min() > 0.99, best(codes)  # the units do,
  encoder = np.asarray(loaded_model.apply(loaded, x[:1000], method=loaded_model.encode))
  assert best(encoder).min() > 0.9, best(encoder)  # and so does the encoder fitted to them.
  # Exported and imported again, the wider SAE encodes exactly as the workdir does.
  from identi.formats import export_sae, import_sae  # pylint: disable=g-import-not-at-top
  export_sae(workdir, "saelens", str(tmp_path / "exported"))
  record = import_sae("saelens", str(tmp_path / "exported"), str(tmp_path / "imported"))
  assert record["exact"] and record["kind"] == minimality.FINAL_KIND and record["d_sae"] == units
  _, imported_model, imported = load_trained(str(tmp_path / "imported"))
  np.testing.assert_array_equal(
      np.asarray(imported_model.apply(imported, x[:1000], method=imported_model.encode)), encoder)


def test_a_stage_file_of_another_shape_is_refused_with_the_fix(trained):
  workdir, final = trained
  config = load_config(f"{ROOT}/configs/sae_identifiable.py:smoke")
  config.sae.d_sae = final["d_sae"] + 1  # Wider than the file's SAE.
  with pytest.raises(CheckpointError, match="Delete the file and rerun"):
    minimality.load(minimality.path(workdir), config, final["d_in"])
  with pytest.raises(CheckpointError, match="d_in 3"):
    minimality.load(minimality.path(workdir), load_config(
        f"{ROOT}/configs/sae_identifiable.py:smoke"), 3)


def test_the_final_sae_exports_and_imports_exactly(trained, tmp_path):
  from identi.formats import export_sae, import_sae  # pylint: disable=g-import-not-at-top
  workdir, _ = trained
  _, model, variables = load_trained(workdir)
  export_sae(workdir, "saelens", str(tmp_path / "exported"))
  record = import_sae("saelens", str(tmp_path / "exported"), str(tmp_path / "imported"))
  assert record["exact"] and record["kind"] == minimality.FINAL_KIND
  _, imported_model, imported = load_trained(str(tmp_path / "imported"))
  x = np.random.default_rng(2).normal(size=(64, model.d_in)).astype(np.float32)
  np.testing.assert_array_equal(
      np.asarray(imported_model.apply(imported, x, method=imported_model.encode)),
      np.asarray(model.apply(variables, x, method=model.encode)))
