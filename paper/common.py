"""What the paper's figure scripts share: worlds, one identification run, output files.

Every point of every figure trains one SAE with `identi.train` on generated data with known
latents and scores it with `identi.experiments.identify.identify_sae` (encoder MCC and minimal-code MCC on a
held-out split). Figures go to `<out>/<name>/<name>.{png,pdf}` with the numbers in
`<out>/<name>/<name>.json`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import numpy as np
from absl import flags

from identi import generators, io
from identi.plots import save_figure
from identi.train import config as config_lib
from identi.experiments.identify import identify_sae, split_eval

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = flags.DEFINE_bool("smoke", False, "Toy sizes, for tests.")
OUT = flags.DEFINE_string("out", os.path.join(ROOT, "paper", "figures"), "Output directory.")


def train_config(kind: str, smoke: bool, **overrides: Any):
  """The training config of one figure point: defaults (or smoke sizes) plus dotted overrides."""
  tc = config_lib.default_config()
  tc.sae.kind = kind
  tc.train.num_steps = 2000
  tc.train.log_every_steps = 500
  tc.data.num_eval = 4096
  if kind in ("relu", "jumprelu"):
    tc.train.sparsity_warmup_steps = 200
  if kind == "relu":
    tc.sae.normalize_decoder = False
  if smoke:
    config_lib.shrink_training(tc)
    tc.data.num_eval = 512
  for key, value in overrides.items():
    section, name = key.split(".")
    tc[section][name] = value
  config_lib.validate_config(tc)
  return tc


def superposition_world(num_features: int, d: int, active: float, num_samples: int, seed: int = 0):
  """(x, z) of the independent one-level world (eps = 1): sparse features in superposition."""
  world = generators.sparse_superposition(jax.random.key(seed), num_samples,
                                          num_features=num_features, d=d,
                                          active_per_sample=active)
  return world["x"], world["z"]


#: TopK sparsity for the default HSM world (6.5 active level-1 concepts per sample), as in
#: configs/identify_hsm.py.
HSM_K = 8


def hsm_config(smoke: bool = False, **changes: Any) -> generators.HSMConfig:
  """The default HSM world with `changes` (e.g. eps=0.05); 16 level-1 concepts in smoke mode."""
  world = dataclasses.replace(generators.default_world(), **changes)
  if smoke:
    world = dataclasses.replace(world, level_sizes=(16, 4))
  return world


def hsm_world(num_samples: int, d: int = 64, smoke: bool = False, seed: int = 0, **changes: Any):
  """(x, z1) of the default HSM world (see `hsm_config`), observed in superposition at d.

  In smoke mode d shrinks 8x with the world, keeping the superposition ratio.
  """
  world = hsm_config(smoke, **changes)
  if smoke:
    d = max(2, d // 8)
  out = generators.generate_hsm(jax.random.key(seed), world, num_samples, view="superposition",
                                d=d, sigma=0.0)
  return np.asarray(out["x"]), np.asarray(out["z"][0])


def identify(x: np.ndarray, z: np.ndarray, tc, workdir: str) -> dict[str, Any]:
  """Trains the SAE of `tc` on (x, z) and returns its encoder and minimal-code scores."""
  source, _, x_eval, z_eval = split_eval(x, z, tc.data.num_eval, tc.data.split_seed)
  return identify_sae(tc, source, x_eval, z_eval, workdir)


def write_outputs(out: str, name: str, fig, numbers: dict[str, Any]) -> list[str]:
  """Writes the figure (PNG, PDF) and its numbers (JSON) under out/name/."""
  stem = os.path.join(out, name, name)
  paths = save_figure(fig, stem)
  io.write_json(stem + ".json", numbers)
  return paths + [stem + ".json"]
