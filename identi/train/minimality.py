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
2. a JumpReLU SAE of the same width is built around it (`final_model`): W_dec's first rows are
   the atoms (at most d_sae), the other rows are 0, and b_dec and the input scale are the trained
   SAE's. The encoder is fitted to the minimal codes (non-negative OMP over the new atoms): W_enc
   and b_enc by ridge regression of the codes on the centred inputs, and each latent's threshold
   at the quantile of its pre-activations that gives its firing rate in the minimal codes.
   Latents without an atom get b_enc = -1e9 so that they never fire.
3. the variables are written to `workdir/minimal.safetensors` (atomically, with the stage's
   report in the metadata); `identi.train.load_trained` returns that model from then on, so
   `identi.bin.encode` gives the final codes and `--mode=minimal` OMP over the minimal atoms.

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
from identi.infer import minimality

logger = logging.getLogger(__name__)

#: The stage's output in a workdir.
MINIMAL_WEIGHTS = "minimal.safetensors"
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


def minimal_variables(model, variables: dict[str, Any], x: np.ndarray,
                      config: ml_collections.ConfigDict) -> tuple[dict[str, Any], list[dict]]:
  """The SAE's variables rebuilt around the minimal dictionary of raw rows x (see module doc)."""
  s = settings(config)
  variables = jax.tree.map(np.asarray, variables)
  params, stats = variables["params"], variables["stats"]
  scale = float(stats["input_scale"])
  b_dec = np.asarray(params["b_dec"], np.float32)
  x_c = np.asarray(x, np.float32) * scale - b_dec
  decoder = np.asarray(params["W_dec"], np.float32)
  refine = functools.partial(minimality.refined_dictionary, keep=config.sae.d_sae, settings=s,
                             rounds=config.minimality.refine_rounds)
  if config.minimality.dictionary == "refined":
    atoms, report = refine(x_c, decoder)
  else:
    give_up = int(FIRST_PASS_SLACK * config.sae.d_sae)
    atoms, report = minimality.minimal_dictionary(x_c, decoder, settings=s, give_up_above=give_up)
    if atoms.shape[0] > config.sae.d_sae:  # The tests did not separate the parts: refine.
      atoms, more = refine(x_c, decoder)
      report += [{"step": "minimal rejected", "atoms": int(report[-1]["atoms"])}]
      report += [{**r, "step": f"refined {r['step']}"} for r in more]
  codes = minimality.codes(x_c, atoms, s)
  final = final_model(config, model.d_in)
  m = atoms.shape[0]
  w, b = _fit_encoder(x_c, codes)
  shapes = jax.eval_shape(lambda: final.init(jax.random.key(0),
                                             np.zeros((1, model.d_in), np.float32)))
  out = jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), shapes)
  out["params"]["W_dec"][:m] = atoms
  out["params"]["W_enc"][:, :m] = w
  out["params"]["b_enc"][:] = UNUSED_BIAS
  out["params"]["b_enc"][:m] = b
  out["params"]["b_dec"][:] = b_dec
  out["stats"]["input_scale"] = np.asarray(stats["input_scale"], np.float32)
  pre = x_c @ w + b
  rate = np.mean(codes > 0, axis=0)
  threshold = np.ones(final.d_sae, np.float32)
  threshold[:m] = [np.quantile(pre[:, j], 1.0 - rate[j]) if rate[j] > 0 else np.max(pre[:, j]) + 1
                   for j in range(m)]
  out["params"]["log_threshold"][:] = np.log(np.maximum(threshold, MIN_THRESHOLD))
  report.append({"step": "encoder", "atoms": m,
                 "minimal_l0": float(np.mean(np.sum(codes > 0, 1)))})
  return out, report


def final_kind(config: ml_collections.ConfigDict) -> str:
  """The kind of the SAE a workdir of `config` holds once trained (its export format's kind)."""
  return FINAL_KIND if config.minimality.enabled else config.sae.kind


def final_model(config: ml_collections.ConfigDict, d_in: int):
  """The model of a finished minimality stage: a JumpReLU SAE of the configured width."""
  sae = config.sae
  return sae_lib.make_sae(FINAL_KIND, d_in, sae.d_sae, bandwidth=sae.bandwidth,
                          init_threshold=sae.init_threshold, compute_dtype=sae.compute_dtype)


def run_stage(model, variables, train_src, config: ml_collections.ConfigDict,
              workdir: str) -> tuple[Any, dict[str, Any]]:
  """Runs (or reuses) the stage; returns the (model, variables) that `load_trained` will."""
  target = path(workdir)
  if os.path.exists(target):
    logger.info("minimality: reusing %s", target)
    final = final_model(config, model.d_in)
    return final, load(target, final)
  n = min(config.minimality.num_samples, train_src.num_examples)
  rows = data_lib.batch_indices(train_src.num_examples, n, 0, config.train.seed + 2)
  logger.info("minimality: minimal dictionary of %d atoms (at most %d kept) on %d training rows",
              model.d_sae, config.sae.d_sae, n)
  out, report = minimal_variables(model, variables, train_src.get(rows), config)
  if jax.process_index() == 0:
    sae_lib.save_variables(target, out, {"kind": FINAL_KIND, "d_in": model.d_in,
                                         "d_sae": config.sae.d_sae},
                           {"minimality": json.dumps(report)})
  return final_model(config, model.d_in), out


def load(target: str, model) -> dict[str, Any]:
  """The variables of a workdir's minimal.safetensors, checked against the model."""
  variables, _, _ = sae_lib.load_variables(target)
  expected = jax.eval_shape(lambda: model.init(jax.random.key(0),
                                               np.zeros((1, model.d_in), np.float32)))
  sae_lib.check_variables_like(variables, expected, target)
  return variables


def report(workdir: str) -> list[dict[str, Any]] | None:
  """The stage's report stored in a workdir's minimal.safetensors, or None without one."""
  target = path(workdir)
  if not os.path.exists(target):
    return None
  _, _, metadata = sae_lib.load_variables(target)
  return json.loads(metadata.get("minimality", "null"))
