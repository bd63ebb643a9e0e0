"""The identify stage: do the learned units equal the true concepts?

`run(config, workdir)` generates data from a hierarchical selection model (or reads
external `x.npy` / `z.npy`), trains every configured SAE variant with `identi.train` and fits every
minimality-free baseline (PCA, a dense linear autoencoder, FastICA) on the same training split, and
scores all of them through one evaluation path on the same held-out split: MCC against the true
level-1 concepts, FVU, L0 and dead fraction. For each SAE it reports two MCCs: of the encoder's
codes (`mcc`) and of minimal-code inference over the SAE's learned decoder (`mcc_minimal`).

Outputs in the workdir: `results.json` (one record per method: name, mcc, mcc_minimal (SAEs only),
fvu, l0, dead_fraction, seconds), `identifiability.{png,pdf}`, and one training workdir per SAE.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from identi import baselines as baselines_lib
from identi import data as data_lib
from identi import generators, infer, io, plots
from identi.errors import ConfigError, DataError
from identi.train import config as config_lib
from identi.train import load_trained, minimality, score_codes, train_and_evaluate

#: The SAE kinds the identification experiment trains by default.
#: The identifiable recipe: a BatchTopK SAE of twice d_sae latents followed by the minimality
#: stage (`identi.train.minimality`), as configs/sae_identifiable.py trains it.
IDENTIFIABLE = "identifiable"
SAE_METHODS = ("relu", "topk", "batchtopk", "jumprelu", "matryoshka", "mp", IDENTIFIABLE)
BASELINE_METHODS = ("pca", "linear_ae", "ica")
RESULTS_FILE = "results.json"
FIGURE_STEM = "identifiability"


def default_config() -> ml_collections.ConfigDict:
  """The schema of identify configs, with defaults (the default HSM world at d = 64)."""
  train_schema = config_lib.default_config()
  c = ml_collections.ConfigDict()
  c.methods = ",".join(SAE_METHODS + BASELINE_METHODS)
  world = dataclasses.asdict(generators.default_world())
  world["tau"] = world["tau"] or 0  # 0 means every parent (HSMConfig.tau = None).
  c.world = ml_collections.ConfigDict(world)
  c.view = ml_collections.ConfigDict({"d": 64, "sigma": 0.0, "num_samples": 1 << 17, "seed": 0})
  c.data = ml_collections.ConfigDict({"path": "", "num_eval": 8192, "split_seed": 0})
  for section in ("sae", "train", "checkpoint", "eval"):
    c[section] = train_schema[section]
  c.per_kind = ml_collections.ConfigDict(
      {kind: ml_collections.ConfigDict({"sae": {}, "train": {}}) for kind in SAE_METHODS})
  c.minimal = ml_collections.ConfigDict({"method": "omp", "max_atoms": 0, "tol": 1e-3})
  c.baselines = ml_collections.ConfigDict(
      {"linear_ae_steps": 2000, "linear_ae_learning_rate": 3e-3, "fit_samples": 32768,
       "seed": 0})
  return c


def _check_overrides(config: ml_collections.ConfigDict) -> None:
  schema = config_lib.default_config()
  for kind, sections in config.per_kind.items():
    if kind not in SAE_METHODS:
      raise ConfigError(f"config key 'per_kind.{kind}' names no SAE kind; use one of "
                        f"{', '.join(SAE_METHODS)}")
    for section, values in sections.items():
      if section not in ("sae", "train"):
        raise ConfigError(f"config key 'per_kind.{kind}.{section}' is unknown; per-kind "
                          "overrides may set 'sae' and 'train' keys")
      for key in values:
        if key not in schema[section]:
          raise ConfigError(f"config key 'per_kind.{kind}.{section}.{key}' is unknown; it must "
                            f"be a key of '{section}' in identi/train/config.py")


def validate_config(config: ml_collections.ConfigDict) -> list[str]:
  """Raises ConfigError for unknown keys, wrong types and unknown methods; returns the methods."""
  config_lib.check_keys(config, default_config(), skip=("per_kind.",))
  _check_overrides(config)
  methods = [m.strip() for m in config.methods.split(",") if m.strip()]
  unknown = [m for m in methods if m not in SAE_METHODS + BASELINE_METHODS]
  if unknown or not methods:
    raise ConfigError(f"config key 'methods' names {unknown or 'no method'}; choose from "
                      f"{', '.join(SAE_METHODS + BASELINE_METHODS)}, comma-separated")
  if config.minimal.method not in infer.METHODS:
    raise ConfigError(f"config key 'minimal.method' is {config.minimal.method!r}; choose one of "
                      f"{', '.join(infer.METHODS)}")
  return methods


def training_config(config: ml_collections.ConfigDict, kind: str) -> ml_collections.ConfigDict:
  """The `identi.train` config of one SAE variant: shared sections plus its per-kind overrides."""
  tc = config_lib.default_config()
  for section in ("sae", "train", "checkpoint", "eval"):
    tc[section] = ml_collections.ConfigDict(config[section].to_dict())
  tc.data.num_eval = config.data.num_eval
  tc.data.split_seed = config.data.split_seed
  if kind == IDENTIFIABLE:
    minimality.identifiable_recipe(tc)
  else:
    tc.sae.kind = kind
  for section, values in config.per_kind[kind].items():
    for key, value in values.items():
      tc[section][key] = value
  config_lib.validate_config(tc)
  return tc


def hsm_config(config: ml_collections.ConfigDict) -> generators.HSMConfig:
  world = config.world.to_dict()
  world["level_sizes"] = tuple(world["level_sizes"])
  world["weight_range"] = tuple(world["weight_range"])
  world["tau"] = world["tau"] or None
  return generators.HSMConfig(**world).validate()


def load_data(config: ml_collections.ConfigDict) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
  """(x, z, description): external x.npy / z.npy, or the HSM superposition view of the world."""
  if config.data.path:
    arrays = []
    for name in ("x.npy", "z.npy"):
      path = os.path.join(config.data.path, name)
      if not os.path.isfile(path):
        raise DataError(f"{path} does not exist; external data for verification is a directory "
                        "with x.npy (samples x d) and z.npy (samples x n, the true latents)")
      try:
        arrays.append(np.load(path, mmap_mode="r", allow_pickle=False))
      except (OSError, ValueError) as e:
        raise DataError(f"{path} is not a readable .npy file ({e}); re-write it with np.save") \
            from e
    x, z = arrays
    return np.asarray(x), np.asarray(z), {"source": config.data.path}
  v = config.view
  world = hsm_config(config)
  out = generators.generate_hsm(jax.random.key(v.seed), world, v.num_samples,
                                view="superposition", d=v.d, sigma=v.sigma)
  a1 = np.asarray(out["a"][0])
  description = {"source": "hsm", "world": dataclasses.asdict(world), "view": v.to_dict(),
                 "mean_active_level1": float(a1.sum(axis=1).mean())}
  return np.asarray(out["x"]), np.asarray(out["z"][0]), description


def minimal_kwargs(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Keyword arguments of `identi.infer.minimal_codes` from the `minimal` config section."""
  if config.minimal.method != "omp":
    return {}
  kwargs = {"tol": config.minimal.tol}
  if config.minimal.max_atoms:  # 0: minimal_codes picks it from the SAE's sparsity.
    kwargs["max_atoms"] = config.minimal.max_atoms
  return kwargs


def identify_sae(tc: ml_collections.ConfigDict, source, x_eval: np.ndarray, z_eval: np.ndarray,
                 workdir: str, minimal_method: str = "omp", name: str | None = None,
                 **minimal: Any) -> dict[str, Any]:
  """Trains one SAE (training config `tc`) on `source` and scores it against true latents.

  Returns the record of `results.json`: encoder MCC, minimal-code MCC (inference over the SAE's
  learned decoder), FVU, L0 and dead fraction on (x_eval, z_eval), and the seconds taken.
  """
  t0 = time.time()
  final = train_and_evaluate(tc, workdir, source=source)
  _, model, variables = load_trained(workdir)
  atoms = infer.minimal_atoms(model, variables, x_eval)
  codes = infer.minimal_codes(model, variables, x_eval, method=minimal_method, atoms=atoms,
                              **minimal)
  x_hat = np.asarray(model.apply(variables, codes, method="decode"))
  best = score_codes(x_eval, x_hat, codes, z_eval, tc.eval.mcc_method)
  return {"name": name or tc.sae.kind, "mcc": final["mcc"], "mcc_minimal": best["mcc"],
          "fvu": final["fvu"], "fvu_minimal": best["fvu"], "l0": final["l0"],
          "l0_minimal": best["l0"], "atoms_minimal": int(atoms.sum()),
          "dead_fraction": final["dead_fraction"],
          "seconds": time.time() - t0}


def split_eval(x: np.ndarray, z: np.ndarray, num_eval: int, seed: int):
  """(source, train split, x_eval, z_eval): the split that `train_and_evaluate` also makes."""
  source = data_lib.ArraySource(x, z)
  train_src, eval_src = data_lib.train_eval_split(source, num_eval, seed)
  rows = np.arange(eval_src.num_examples)
  return source, train_src, eval_src.get(rows), eval_src.latents(rows)


def _baseline_record(name, config, x_fit, x_eval, z_eval) -> dict[str, Any]:
  t0 = time.time()
  b = config.baselines
  d = x_fit.shape[1]
  if name == "pca":
    model = baselines_lib.fit_pca(b.seed, x_fit, d)
  elif name == "ica":
    model = baselines_lib.fit_ica(b.seed, x_fit, d)
  else:
    model = baselines_lib.fit_linear_ae(b.seed, x_fit, config.sae.d_sae,
                                        num_steps=b.linear_ae_steps,
                                        learning_rate=b.linear_ae_learning_rate)
  codes = np.asarray(model.encode(x_eval))
  scores = score_codes(x_eval, np.asarray(model.decode(codes)), codes, z_eval,
                       config.eval.mcc_method)
  return {"name": name, "mcc": scores["mcc"], "fvu": scores["fvu"], "l0": scores["l0"],
          "dead_fraction": scores["dead_fraction"], "seconds": time.time() - t0}


def run(config: ml_collections.ConfigDict, workdir: str) -> list[dict[str, Any]]:
  """Trains and scores every configured method; writes results.json and the figure."""
  methods = validate_config(config)
  x, z, description = load_data(config)
  source, train_src, x_eval, z_eval = split_eval(x, z, config.data.num_eval,
                                                 config.data.split_seed)
  fit_rows = data_lib.batch_indices(train_src.num_examples,
                                    min(config.baselines.fit_samples, train_src.num_examples),
                                    0, config.baselines.seed)
  x_fit = train_src.get(fit_rows)
  os.makedirs(workdir, exist_ok=True)
  records = []
  for name in methods:
    if name in SAE_METHODS:
      records.append(identify_sae(training_config(config, name), source, x_eval, z_eval,
                                  os.path.join(workdir, name), config.minimal.method,
                                  name=name, **minimal_kwargs(config)))
    else:
      records.append(_baseline_record(name, config, x_fit, x_eval, z_eval))
  if jax.process_index() == 0:
    io.write_json(os.path.join(workdir, RESULTS_FILE),
                  {"data": description, "records": records})
    n, d = z.shape[1], x.shape[1]
    plots.identifiability_bars(records, os.path.join(workdir, FIGURE_STEM),
                         f"{n} true concepts in d = {d}")
  return records


def variant(config: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
  """Applies a `:variant` of an identify config: '' (full) or 'smoke' (toy world, for tests)."""
  if not config_lib.check_variant(arg):
    return config
  config_lib.shrink_training(config)
  config.world.level_sizes = (16, 4)
  config.world.max_parents = 3
  config.view.d = 12
  config.view.num_samples = 4096
  config.data.num_eval = 512
  config.baselines.linear_ae_steps = 100
  config.baselines.fit_samples = 2048
  return config
