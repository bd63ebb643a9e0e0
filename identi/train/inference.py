"""Using a trained workdir: restore the SAE, evaluate it, encode activation files."""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from identi import data as data_lib
from identi import infer, io
from identi import sae as sae_lib
from identi.errors import CheckpointError, ConfigError, DataError
from identi.train import minimality, sharding
from identi.train.checkpoint import Checkpointer
from identi.train.evaluation import encode_batches, evaluate
from identi.train.runtime import IMPORTED_KEY, RUN_FILE, load_run
from identi.train.trainer import abstract_state, build_model, build_sources, saved_config

EVAL_FILE = "eval.json"
#: The variables of a workdir made by `identi.formats.import_sae`.
IMPORTED_WEIGHTS = "sae.safetensors"


def _imported_variables(workdir: str, model, d_in: int) -> dict[str, Any]:
  variables, _, _ = sae_lib.load_variables(os.path.join(workdir, IMPORTED_WEIGHTS))
  expected = jax.eval_shape(lambda: model.init(jax.random.key(0), np.zeros((1, d_in), np.float32)))
  sae_lib.check_variables_like(variables, expected, os.path.join(workdir, IMPORTED_WEIGHTS))
  repl = sharding.replicated(sharding.data_mesh())
  return jax.device_put(variables, repl)


def is_imported(workdir: str) -> bool:
  """Whether `workdir` holds an SAE imported from another toolkit (not a training run)."""
  saved = load_run(os.path.abspath(workdir)) if os.path.isdir(workdir) else None
  return bool(saved and saved.get(IMPORTED_KEY))


def load_trained(workdir: str):
  """Restores `(config, model, variables)` of a workdir: the latest checkpoint of a training run,
  or the variables of an imported SAE (`identi.formats.import_sae`)."""
  workdir = os.path.abspath(workdir)
  if not os.path.isdir(workdir):
    raise ConfigError(f"workdir {workdir} does not exist; pass the --workdir of a training run")
  saved = load_run(workdir)
  if saved is None:
    raise ConfigError(f"{workdir} holds no {RUN_FILE}, so it is not an identi training workdir; "
                      "train with `python -m identi.bin.train --workdir=...` first")
  config = saved_config(saved)
  d_in = saved["d_in"]
  if saved.get(IMPORTED_KEY):
    model = build_model(config, d_in)
    return config, model, _imported_variables(workdir, model, d_in)
  repl = sharding.replicated(sharding.data_mesh())
  target = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=repl),
                        abstract_state(config, d_in))
  if config.minimality.enabled and os.path.exists(minimality.path(workdir)):
    model, variables = minimality.load(minimality.path(workdir), config, d_in)
    return config, model, jax.device_put(variables, repl)
  model = build_model(config, d_in)
  checkpointer = Checkpointer(workdir, read_only=True)
  state, _ = checkpointer.restore_newest(target)
  checkpointer.close()
  if state is None:
    raise CheckpointError(f"no checkpoint in {checkpointer.directory}; the run has not saved one "
                          f"yet: train with `python -m identi.bin.train --workdir={workdir}`")
  if config.minimality.enabled:
    raise CheckpointError(f"{workdir} was trained with minimality.enabled but holds no "
                          f"{minimality.MINIMAL_WEIGHTS}: the run stopped before its minimality "
                          f"stage; rerun `python -m identi.bin.train --workdir={workdir}` with the "
                          "same config to finish it")
  return config, model, {"params": state["params"], "stats": state["stats"]}


def _checked_source(path: str, d_in: int):
  source = data_lib.open_source(path)
  if source.dim != d_in:
    raise DataError(f"{path} has {source.dim} features per example but the SAE was trained on "
                    f"{d_in}; pass activations of the layer the SAE was trained on")
  return source


def evaluate_workdir(workdir: str, data_path: str | None = None) -> dict[str, Any]:
  """Evaluates the trained SAE on its held-out split, or on `data_path`; writes eval.json."""
  config, model, variables = load_trained(workdir)
  if data_path:
    source = _checked_source(data_path, model.d_in)
  elif is_imported(workdir):
    raise ConfigError(f"{workdir} holds an imported SAE, which has no held-out split; pass "
                      "--data=ACTIVATIONS (a .npy file or shard directory of its layer)")
  else:
    _, source = build_sources(config)
  result = evaluate(model, variables, source, config.eval.batch_size,
                    mcc_method=config.eval.mcc_method)
  result.update(kind=config.sae.kind, data=data_path or "held-out split")
  if jax.process_index() == 0:
    io.write_json(os.path.join(os.path.abspath(workdir), EVAL_FILE), result)
  return result


ENCODE_MODES = ("encoder", "minimal")
#: Rows on which `encode --mode=minimal` picks the minimal dictionary.
MINIMAL_ATOMS_SAMPLE = 16384


def encode_file(workdir: str, input_path: str, output_path: str,
                mode: str = "encoder") -> tuple[int, int]:
  """Writes the codes of every row of `input_path` to `output_path` (.npy, float32, atomic).

  mode 'encoder' gives the SAE encoder's codes; 'minimal' the sparsest non-negative codes over
  the SAE's decoder (`identi.infer.minimal_codes`, OMP warm-started from the encoder, over the
  minimal dictionary that `identi.infer.minimal_atoms` picks on the first rows), or, for a
  minimality stage with shared ancestors, its OMP codes over its atoms mapped onto the units
  (`identi.train.minimality.minimal_codes`). Streams:
  the input is memory-mapped and the output written batch by batch. Returns the output's shape.
  """
  if not output_path.endswith(".npy"):
    raise ConfigError(f"output path {output_path} must end in .npy")
  if mode not in ENCODE_MODES:
    raise ConfigError(f"encode mode {mode!r} is unknown; use one of {', '.join(ENCODE_MODES)}")
  config, model, variables = load_trained(workdir)
  source = _checked_source(input_path, model.d_in)
  shape = (source.num_examples, model.d_sae)
  with io.atomic_path(output_path) as tmp:
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
    row = 0
    atoms = None
    mapped = minimality.ANCESTORS in variables
    host = jax.device_get(variables) if mapped else None
    if mode == "minimal" and not mapped:  # One minimal dictionary for every batch.
      sample = source.get(np.arange(min(source.num_examples, MINIMAL_ATOMS_SAMPLE)))
      atoms = infer.minimal_atoms(model, variables, sample)
    for x, codes, _, _ in encode_batches(model, variables, source, config.eval.batch_size):
      if mode == "minimal" and mapped:
        codes = minimality.minimal_codes(host, x, config)
      elif mode == "minimal":
        codes = infer.minimal_codes(model, variables, x, atoms=atoms)
      out[row:row + len(codes)] = codes
      row += len(codes)
    out.flush()
    del out
  return shape
