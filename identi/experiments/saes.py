"""One SAE per site of a subject: its training config, training (or resuming), and its codes.

Every stage of the pipeline that needs the SAEs (graph, steering) goes through here, so the same
config trains the same SAE, in the same workdir, whichever stage asks first.
"""

from __future__ import annotations

import math
import os
from typing import Any

import jax
import ml_collections
import numpy as np

from identi import data as data_lib
from identi import infer
from identi.train import config as config_lib
from identi.errors import DataError
from identi.train import load_trained, minimality, runtime, train_and_evaluate, train_sweep
from identi.train.inference import is_imported

#: Sections of the SAE training schema that experiment configs carry (`minimality` off by default;
#: `identifiable_recipe` turns it on, as configs/scenes_identifiable.py does).
TRAINING_SECTIONS = ("sae", "train", "checkpoint", "eval", "minimality")


def add_training_sections(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Adds the SAE training sections (`identi.train.default_config`) to experiment schema `c`."""
  schema = config_lib.default_config()
  for section in TRAINING_SECTIONS:
    c[section] = schema[section]
  return c


def identifiable_sites(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A subject experiment config (in place) with the identifiable recipe at every site
  (`identi.train.minimality.identifiable_recipe`) and a sign-aware graph; the capture is left as
  it is (configs/scenes_identifiable.py, configs/grammar_identifiable.py)."""
  minimality.identifiable_recipe(config)
  config.graph.sign_aware = True
  return config


def sae_config(config: ml_collections.ConfigDict, num_concepts: int,
               active: float) -> ml_collections.ConfigDict:
  """The `identi.train` config of one site's SAE: ``sae_width`` units per concept and
  ``k = ceil(k_factor * active)``."""
  tc = config_lib.default_config()
  for section in TRAINING_SECTIONS:
    tc[section] = ml_collections.ConfigDict(config[section].to_dict())
  tc.data.num_eval = config.data.num_eval
  tc.data.split_seed = config.data.split_seed
  tc.sae.d_sae = int(round(config.sae_width * num_concepts))
  tc.sae.k = max(1, math.ceil(config.k_factor * active))
  config_lib.validate_config(tc)
  return tc


def train_saes(config, capture_dir: str, workdir: str, names, num_concepts: int, active: float,
               rows: np.ndarray | None = None) -> list[tuple[Any, Any, Any]]:
  """Trains (or resumes) one SAE per shard directory `capture_dir/<name>` in
  `workdir/sae_<name>`, on the given `rows` of it (None = all); returns (model, variables, eval
  source) each. An SAE imported into `workdir/sae_<name>` (`identi.bin.import_sae`) is used as it
  is, so the graph and steering stages run on SAEs from other toolkits too.

  Sites of one width train together as one data sweep (`identi.train.train_sweep`, its stacked
  state in `workdir/sweep_d<width>`), the rows of every site in one step; a site already trained
  on its own (a workdir from before) finishes on its own."""
  tc = sae_config(config, num_concepts, active)
  sources = {}
  for name in names:
    source = data_lib.open_source(os.path.join(capture_dir, name))
    sources[name] = source if rows is None else data_lib.Subset(source, rows)
  wds = {name: os.path.join(workdir, f"sae_{name}") for name in names}
  by_width: dict[int, list[str]] = {}
  for name in names:
    if not is_imported(wds[name]):
      by_width.setdefault(sources[name].dim, []).append(name)
  for width, group in by_width.items():
    if all(os.path.exists(os.path.join(wds[n], runtime.FINAL_FILE)) for n in group):
      continue
    sweep_dir = os.path.join(workdir, f"sweep_d{width}")
    fresh = not any(runtime.load_run(wds[n]) for n in group)
    if len(group) > 1 and (runtime.load_run(sweep_dir) is not None or fresh):
      train_sweep(tc, sweep_dir, sources={f"sae_{n}": sources[n] for n in group},
                  members_dir=workdir)
    else:
      for n in group:
        train_and_evaluate(tc, wds[n], source=sources[n])
  out = []
  for name in names:
    wd, source = wds[name], sources[name]
    _, model, variables = load_trained(wd)
    if model.d_in != source.dim:
      raise DataError(f"the SAE imported at {wd} reads {model.d_in} features but site {name!r} "
                      f"has {source.dim}; import an SAE of that site's activations")
    _, eval_source = data_lib.train_eval_split(source, config.data.num_eval,
                                               config.data.split_seed)
    out.append((model, jax.tree.map(np.asarray, variables), eval_source))
  return out


def sae_codes(codes_kind: str, model, variables, x: np.ndarray) -> np.ndarray:
  """Encoder codes (`codes_kind` 'encoder') or minimal codes over the deduplicated decoder
  ('minimal') of activations x."""
  if codes_kind == "minimal":
    atoms = infer.minimal_atoms(model, variables, x)
    k = getattr(model, "k", None)
    kwargs = {"max_atoms": max(1, min(2 * k, model.d_in, int(atoms.sum())))} if k else {}
    return np.asarray(infer.minimal_codes(model, variables, x, atoms=atoms, **kwargs))
  return np.asarray(model.apply(variables, x, method="encode"))


def source_rows(source) -> tuple[np.ndarray, np.ndarray]:
  """(activations, latents) of every row of `source`."""
  rows = np.arange(source.num_examples)
  return source.get(rows), source.latents(rows)


def level_slices(sizes) -> list[slice]:
  """Column slices of each level in latents that concatenate the levels (parts first)."""
  edges = np.cumsum([0, *sizes])
  return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
