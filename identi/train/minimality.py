"""The minimality stage of a training run (`config.minimality.enabled`, configs/sae_identifiable.py).

After the SAE's training steps, `identi.train.train_and_evaluate` calls `run_stage`:

1. the trained decoder's atoms become the minimal dictionary of `config.minimality.num_samples`
   training rows (`identi.infer.minimality.minimal_dictionary`, in the SAE's scaled space). When
   more than d_sae atoms pass its tests, they did not separate the parts (parts that almost never
   fire apart leave the data's cone too narrow to tell them from their composites): the minimal
   dictionary is set aside and the trained decoder is refined with duplicates replaced, pruned to
   its d_sae most used atoms and polished (`identi.infer.minimality.refined_dictionary`,
   `config.minimality.refine_rounds` rounds). When the tests' first pass already leaves more than
   `FIRST_PASS_SLACK` x d_sae atoms, the later passes are skipped. With
   `config.minimality.dictionary = 'refined'` the stage does only the refinement;
2. on the refined route (`config.minimality.ancestors`, 'refined' by default; 'always' or
   'never'), the atoms are tree paths of a hierarchy whose parents never fire alone; they are
   re-expressed over their own remainders and the directions they share, the parents
   (`identi.infer.ancestors.ancestor_map`, weighted by how many of the rows' codes use each
   atom; with `config.minimality.ancestor_input = 'profiles'` grouped by the atoms' row profiles,
   `identi.infer.ancestors.row_profiles`). The units are then those directions (m atoms + p
   ancestors, possibly more than d_sae) and their codes the minimal codes mapped onto them
   (`unit_supports`, `fit_unit_codes`; with `config.minimality.ancestor_codes = 'fitted'` each
   row is then re-fitted on the units it uses, and with profiles each atom's own remainder comes
   from the atom itself;
   'nested' also keeps a broad atom's own unit off the rows where one of its nested atoms fires,
   `identi.infer.ancestors.nested_atoms`, and first fits the units' directions to those supports
   for `config.minimality.unit_rounds` rounds, `identi.infer.refine_on_supports`, each round
   without the codes below `config.minimality.fit_floor` of their unit's typical code; with
   `config.minimality.code_floor` the final codes drop the codes below that floor, saved as
   `floors`, `identi.infer.ancestors.code_floors`);
   with `config.minimality.prune_codes` the map, its supports and the final codes read the OMP
   codes without the atoms each row does not need, `identi.infer.minimality.prune_codes`;
   with `config.minimality.merge_units` units within the refinement's duplicate cosine of a more
   used unit merge into it, `identi.infer.ancestors.merge_duplicates`, and 'nested' fits the
   directions to the merged supports again;
   the atoms and the map are kept in the variables' `ANCESTORS` collection. Without shared
   directions the atoms stay the units;
3. a JumpReLU SAE of max(d_sae, units) latents is built around the units (`final_model`): W_dec's
   first rows are the units, the other rows are 0, and b_dec and the input scale are the trained
   SAE's. The encoder is fitted to the minimal codes (non-negative OMP over the new atoms): W_enc
   and b_enc by ridge regression of the codes on the centred inputs, and each latent's threshold
   at the quantile of its pre-activations that gives its firing rate in the minimal codes.
   Latents without a unit get b_enc = -1e9 so that they never fire.
4. the variables are written to `workdir/minimal.safetensors` (atomically, with the stage's
   report in the metadata and the width in its spec); `identi.train.load_trained` returns that
   model from then on, so `identi.bin.encode` gives the final codes and `--mode=minimal` OMP over
   the minimal atoms (with shared ancestors: the stage's OMP codes mapped onto the units the same
   way, `minimal_codes`).

A run that stops during the stage repeats it on resume (the checkpoint holds the trained SAE);
the stage is deterministic, so the file is the same.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from typing import Any

import jax
import ml_collections
import numpy as np

from identi import data as data_lib
from identi import sae as sae_lib
from identi.errors import CheckpointError
from identi.infer import ancestors, minimality
from identi.infer.refine import refine_on_supports

logger = logging.getLogger(__name__)

#: The stage's output in a workdir.
MINIMAL_WEIGHTS = "minimal.safetensors"
#: The variables' collection of a stage with shared ancestors: the stage's atoms (m, d) and the
#: map of their codes onto the units (m, units), `identi.infer.ancestors.AncestorMap.weights`.
ANCESTORS = "ancestors"
#: b_enc of latents without an atom: they never fire.
UNUSED_BIAS = -1e9
#: Ridge weight of the encoder fit, relative to the mean diagonal of the inputs' Gram matrix.
ENCODER_RIDGE = 1e-3
#: The kind of the SAE the stage writes: per-latent thresholds on one affine map.
FINAL_KIND = "jumprelu"
#: The smallest threshold (JumpReLU keeps log-thresholds).
MIN_THRESHOLD = 1e-6
#: The identifiable recipe's SAE: BatchTopK, trained with this many times d_sae latents, so that
#: it has room for a pair's composite and its parts whatever the count of concepts.
RECIPE_KIND = "batchtopk"
RECIPE_EXPANSION = 2
#: The stage stops the minimality tests after their first pass when that pass leaves more than
#: this many times d_sae atoms: the later passes (seeds, polish) move the count by a few atoms,
#: so such a dictionary would be set aside anyway (docs/decisions.md).
FIRST_PASS_SLACK = 1.25


def identifiable_recipe(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Sets `config` (an `identi.train` config) to the identifiable recipe, in place: a
  `RECIPE_KIND` SAE of `RECIPE_EXPANSION` x d_sae latents, then the stage, which keeps at most
  d_sae atoms. configs/sae_identifiable.py and the identify experiment both train it."""
  config.sae.kind = RECIPE_KIND
  config.minimality.enabled = True
  config.minimality.expansion = RECIPE_EXPANSION
  return config


def path(workdir: str) -> str:
  return os.path.join(workdir, MINIMAL_WEIGHTS)


def settings(config: ml_collections.ConfigDict) -> minimality.MinimalitySettings:
  """The `identi.infer.minimality` settings of `config.minimality`."""
  m = config.minimality
  max_atoms = m.max_atoms or min(2 * config.sae.k, config.sae.d_sae)
  return minimality.MinimalitySettings(
      max_atoms=int(max_atoms), tol=float(m.tol), seed_rounds=int(m.seed_rounds),
      polish_rounds=int(m.polish_rounds)).validate()


def _fit_encoder(x: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Ridge regression of codes on centred inputs x: (W (d, m), b (m,))."""
  xa = np.concatenate([x, np.ones((x.shape[0], 1))], 1).astype(np.float64)
  gram = xa.T @ xa
  ridge = ENCODER_RIDGE * np.trace(gram) / gram.shape[0]
  coef = np.linalg.solve(gram + ridge * np.eye(gram.shape[0]), xa.T @ codes.astype(np.float64))
  return coef[:-1].astype(np.float32), coef[-1].astype(np.float32)


def _applies_ancestors(config: ml_collections.ConfigDict, refined: bool) -> bool:
  mode = config.minimality.ancestors
  return mode == "always" or (mode == "refined" and refined)


def _fit_directions(x_c: np.ndarray, units: np.ndarray, supports: np.ndarray,
                    config: ml_collections.ConfigDict) -> np.ndarray:
  """With 'nested' codes, the units' directions fitted to their supports
  (`config.minimality.unit_rounds` rounds of `refine_on_supports`); otherwise the units."""
  if config.minimality.ancestor_codes != "nested":
    return units
  return refine_on_supports(x_c, units, supports, num_rounds=config.minimality.unit_rounds,
                            floor=config.minimality.fit_floor)


def minimal_variables(model, variables: dict[str, Any], x: np.ndarray,
                      config: ml_collections.ConfigDict) -> tuple[dict[str, Any], list[dict]]:
  """The SAE's variables rebuilt around the minimal dictionary of raw rows x (see module doc).
  With shared ancestors, the variables also hold the `ANCESTORS` collection."""
  s = settings(config)
  variables = jax.tree.map(np.asarray, variables)
  params, stats = variables["params"], variables["stats"]
  scale = float(stats["input_scale"])
  b_dec = np.asarray(params["b_dec"], np.float32)
  x_c = np.asarray(x, np.float32) * scale - b_dec
  decoder = np.asarray(params["W_dec"], np.float32)
  refine = functools.partial(minimality.refined_dictionary, keep=config.sae.d_sae, settings=s,
                             rounds=config.minimality.refine_rounds)
  refined = config.minimality.dictionary == "refined"
  if refined:
    atoms, report = refine(x_c, decoder)
  else:
    give_up = int(FIRST_PASS_SLACK * config.sae.d_sae)
    atoms, report = minimality.minimal_dictionary(x_c, decoder, settings=s, give_up_above=give_up)
    if atoms.shape[0] > config.sae.d_sae:  # The tests did not separate the parts: refine.
      refined = True
      atoms, more = refine(x_c, decoder)
      report += [{"step": "minimal rejected", "atoms": int(report[-1]["atoms"])}]
      report += [{**r, "step": f"refined {r['step']}"} for r in more]
  codes = minimality.codes(x_c, atoms, s)
  m = atoms.shape[0]
  extra = {}
  units = atoms
  if _applies_ancestors(config, refined):
    atom_codes = atom_codes_of(x_c, atoms, codes, config)
    profiles = (ancestors.row_profiles(x_c, atom_codes)
                if config.minimality.ancestor_input == "profiles" else None)
    amap = ancestors.ancestor_map(
        atoms, np.sum(atom_codes > 0, axis=0),
        ancestors.AncestorSettings(grouping=config.minimality.ancestor_grouping,
                                   selection=config.minimality.ancestor_selection),
        profiles=profiles, exact=config.minimality.ancestor_codes == "spread")
    step = {"step": "ancestors", "modes": amap.modes, "ancestors": amap.num_ancestors,
            "atoms": m}
    if amap.num_ancestors:  # Without any, the atoms stay as they are.
      units = amap.directions
      extra = {ANCESTORS: {"atoms": atoms, "weights": amap.weights}}
      if config.minimality.ancestor_codes == "nested":
        extra[ANCESTORS]["nested"] = ancestors.nested_atoms(atom_codes)
        step["nested_pairs"] = int(extra[ANCESTORS]["nested"].shape[0])
      supports = unit_supports(atom_codes, extra[ANCESTORS])
      units = _fit_directions(x_c, units, supports, config)
      if config.minimality.merge_units:  # One unit per direction, then the directions again.
        units, extra[ANCESTORS]["weights"], owner = ancestors.merge_duplicates(
            units, extra[ANCESTORS]["weights"], np.sum(supports > 0, axis=0),
            minimality.DUPLICATE_COSINE)
        step["merged_units"] = int(np.sum(owner != np.arange(owner.size)))
        supports = unit_supports(atom_codes, extra[ANCESTORS])
        units = _fit_directions(x_c, units, supports, config)
      codes = fit_unit_codes(x_c, supports, units, config)
      if config.minimality.code_floor > 0:  # Floors of the fitted codes, then those without.
        floors = ancestors.code_floors(codes, config.minimality.code_floor)
        extra[ANCESTORS]["floors"] = floors
        codes = ancestors.floored_fit(x_c, units, codes, floors)
    report.append(step)
    logger.info("minimality: %d shared ancestors of %d atoms", amap.num_ancestors, m)
  n_units = units.shape[0]
  final = final_model(config, model.d_in, max(config.sae.d_sae, n_units))
  w, b = _fit_encoder(x_c, codes)
  shapes = jax.eval_shape(lambda: final.init(jax.random.key(0),
                                             np.zeros((1, model.d_in), np.float32)))
  out = jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), shapes)
  out["params"]["W_dec"][:n_units] = units
  out["params"]["W_enc"][:, :n_units] = w
  out["params"]["b_enc"][:] = UNUSED_BIAS
  out["params"]["b_enc"][:n_units] = b
  out["params"]["b_dec"][:] = b_dec
  out["stats"]["input_scale"] = np.asarray(stats["input_scale"], np.float32)
  pre = x_c @ w + b
  rate = np.mean(codes > 0, axis=0)
  threshold = np.ones(final.d_sae, np.float32)
  threshold[:n_units] = [np.quantile(pre[:, j], 1.0 - rate[j]) if rate[j] > 0
                         else np.max(pre[:, j]) + 1 for j in range(n_units)]
  out["params"]["log_threshold"][:] = np.log(np.maximum(threshold, MIN_THRESHOLD))
  out.update(extra)
  report.append({"step": "encoder", "atoms": m, "units": n_units,
                 "minimal_l0": float(np.mean(np.sum(codes > 0, 1)))})
  return out, report


def final_kind(config: ml_collections.ConfigDict) -> str:
  """The kind of the SAE a workdir of `config` holds once trained (its export format's kind)."""
  return FINAL_KIND if config.minimality.enabled else config.sae.kind


def final_model(config: ml_collections.ConfigDict, d_in: int, d_sae: int | None = None):
  """The model of a finished minimality stage: a JumpReLU SAE of `d_sae` latents (default the
  configured width; more where the stage added shared ancestors)."""
  sae = config.sae
  return sae_lib.make_sae(FINAL_KIND, d_in, d_sae or sae.d_sae, bandwidth=sae.bandwidth,
                          init_threshold=sae.init_threshold, compute_dtype=sae.compute_dtype)


def run_stage(model, variables, train_src, config: ml_collections.ConfigDict,
              workdir: str) -> tuple[Any, dict[str, Any]]:
  """Runs (or reuses) the stage; returns the (model, variables) that `load_trained` will."""
  target = path(workdir)
  if os.path.exists(target):
    logger.info("minimality: reusing %s", target)
    return load(target, config, model.d_in)
  n = min(config.minimality.num_samples, train_src.num_examples)
  rows = data_lib.batch_indices(train_src.num_examples, n, 0, config.train.seed + 2)
  logger.info("minimality: minimal dictionary of %d atoms (at most %d kept) on %d training rows",
              model.d_sae, config.sae.d_sae, n)
  out, report = minimal_variables(model, variables, train_src.get(rows), config)
  final = final_model(config, model.d_in, out["params"]["W_dec"].shape[0])
  if jax.process_index() == 0:
    sae_lib.save_variables(target, out, {"kind": FINAL_KIND, "d_in": model.d_in,
                                         "d_sae": final.d_sae},
                           {"minimality": json.dumps(report)})
  return final, out


def load(target: str, config: ml_collections.ConfigDict, d_in: int) -> tuple[Any, dict[str, Any]]:
  """(model, variables) of a workdir's minimal.safetensors, checked against the config: the
  final model has the file's width (d_sae, or more with shared ancestors)."""
  variables, spec, _ = sae_lib.load_variables(target)
  width = spec.get("d_sae")
  if spec.get("kind") != FINAL_KIND or spec.get("d_in") != d_in or not isinstance(width, int) \
      or width < config.sae.d_sae:
    raise CheckpointError(f"{target} holds a {spec.get('kind')} SAE of d_in {spec.get('d_in')} "
                          f"and {width} latents; this run's stage writes a {FINAL_KIND} SAE of "
                          f"d_in {d_in} and at least {config.sae.d_sae} latents. Delete the file "
                          "and rerun identi.bin.train with the same --workdir to redo the stage")
  model = final_model(config, d_in, width)
  expected = jax.eval_shape(lambda: model.init(jax.random.key(0),
                                               np.zeros((1, d_in), np.float32)))
  if ANCESTORS in variables:
    amap = variables[ANCESTORS]
    m = np.shape(amap.get("atoms", np.zeros((0, 0))))[0]
    expected[ANCESTORS] = {
        "atoms": jax.ShapeDtypeStruct((m, d_in), np.float32),
        "weights": jax.ShapeDtypeStruct((m, np.shape(amap.get("weights", [[]]))[1]), np.float32)}
    if config.minimality.ancestor_codes == "nested":
      pairs = np.shape(amap.get("nested", np.zeros((0, 0))))[0]
      expected[ANCESTORS]["nested"] = jax.ShapeDtypeStruct((pairs, 2), np.int32)
    if config.minimality.code_floor > 0:  # Only on fitted codes (`validate_config`).
      expected[ANCESTORS]["floors"] = jax.ShapeDtypeStruct(
          (np.shape(amap.get("weights", [[]]))[1],), np.float32)
  sae_lib.check_variables_like(variables, expected, target)
  return model, variables


def ancestor_units(variables: dict[str, Any]) -> np.ndarray:
  """The latents of a stage's SAE that are shared ancestors (`identi.infer.ancestors`): int
  indices after its atoms' own units; empty without the `ANCESTORS` collection."""
  if ANCESTORS not in variables:
    return np.zeros(0, np.int64)
  m, n_units = np.shape(variables[ANCESTORS]["weights"])
  return np.arange(m, n_units)


def atom_codes_of(x_c: np.ndarray, atoms: np.ndarray, codes: np.ndarray,
                  config: ml_collections.ConfigDict) -> np.ndarray:
  """The stage's OMP codes over its atoms as the ancestor map reads them: with
  `config.minimality.prune_codes`, without the atoms each row does not need
  (`identi.infer.minimality.prune_codes` at the OMP's `tol`); otherwise `codes` themselves."""
  if config.minimality.prune_codes:
    return minimality.prune_codes(x_c, atoms, codes, float(config.minimality.tol))
  return codes


def unit_supports(atom_codes: np.ndarray, amap: dict[str, Any]) -> np.ndarray:
  """Codes over the units of the stage's codes over its atoms, spread by the map's weights (`amap`,
  the `ANCESTORS` collection); with its nested pairs, a broad atom's own unit is left out where
  one of its nested atoms fires (`identi.infer.ancestors.nested_supports`)."""
  return ancestors.nested_supports(atom_codes, amap["weights"],
                                   amap.get("nested", np.zeros((0, 2), np.int32)))


def fit_unit_codes(x_c: np.ndarray, supports: np.ndarray, directions: np.ndarray,
                   config: ml_collections.ConfigDict) -> np.ndarray:
  """The final codes of `unit_supports`: with `config.minimality.ancestor_codes = 'fitted'` or
  'nested', re-fitted to the centred rows x_c on the units each row uses
  (`identi.infer.ancestors.support_fit`); with 'spread', the supports themselves."""
  if config.minimality.ancestor_codes in ("fitted", "nested"):
    return ancestors.support_fit(x_c, directions, supports)
  return supports


def minimal_codes(variables: dict[str, Any], x, config: ml_collections.ConfigDict) -> np.ndarray:
  """`encode --mode=minimal` of a stage with shared ancestors: the stage's OMP codes of raw rows x
  over its atoms, mapped onto the units (`unit_supports`, `fit_unit_codes`); (n, d_sae) float32,
  0 for latents without a unit."""
  params, amap = variables["params"], variables[ANCESTORS]
  x_c = (np.asarray(x, np.float32) * float(np.asarray(variables["stats"]["input_scale"]))
         - np.asarray(params["b_dec"], np.float32))
  atoms = np.asarray(amap["atoms"], np.float32)
  directions = np.asarray(params["W_dec"], np.float32)[:np.shape(amap["weights"])[1]]
  atom_codes = atom_codes_of(x_c, atoms, minimality.codes(x_c, atoms, settings(config)), config)
  units = fit_unit_codes(x_c, unit_supports(atom_codes, amap), directions, config)
  if "floors" in amap:  # The stage's `code_floor`, as it dropped its own codes.
    units = ancestors.floored_fit(x_c, directions, units, amap["floors"])
  out = np.zeros((x_c.shape[0], np.shape(params["W_dec"])[0]), np.float32)
  out[:, :units.shape[1]] = units
  return out


def report(workdir: str) -> list[dict[str, Any]] | None:
  """The stage's report stored in a workdir's minimal.safetensors, or None without one."""
  target = path(workdir)
  if not os.path.exists(target):
    return None
  _, _, metadata = sae_lib.load_variables(target)
  return json.loads(metadata.get("minimality", "null"))
