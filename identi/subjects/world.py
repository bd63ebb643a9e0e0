"""What the subject worlds (scenes, grammar) share: a *tiled* HSM and the checks of its settings.

A tiled HSM gives every concept of level l + 1 exactly ``parents`` parents in level l and no
parent is shared, so the parent sets of every level pair partition the level below and
``level_sizes[l] == parents * level_sizes[l + 1]``.
"""
import numpy as np

from identi.errors import ConfigError
from identi.checks import is_int, is_real
from identi.generators.hsm import HSM, MAX_EXACT_COMPONENT, HSMConfig
from identi.generators.hsm_graph import make_hsm


def check_tiled_levels(owner, leaves: str) -> None:
  """Raises ConfigError naming ``<Class>.<field>`` and the fix unless `owner` (a frozen config
  with level_sizes, parents, tau, pi, eps) has tiling levels and valid selection settings.

  `owner.parents` must already be checked; `leaves` names level-1 concepts in messages.
  """
  name = type(owner).__name__
  sizes, p = owner.level_sizes, owner.parents
  if (not isinstance(sizes, tuple) or len(sizes) < 2
      or not all(is_int(n) and n >= 1 for n in sizes)):
    raise ConfigError(
        f"{name}.level_sizes={sizes!r} is invalid: pass a tuple of at least 2 positive "
        f"concept counts, {leaves} first, e.g. (18, 6, 2)")
  for l in range(len(sizes) - 1):
    if sizes[l] != p * sizes[l + 1]:
      raise ConfigError(
          f"{name}.level_sizes={sizes} do not tile: level {l + 1} needs exactly parents="
          f"{p} concepts per concept of level {l + 2}, so level_sizes[{l}] must be "
          f"{p * sizes[l + 1]}, not {sizes[l]}")
  if p ** (len(sizes) - 1) > MAX_EXACT_COMPONENT:
    raise ConfigError(
        f"{name}.level_sizes={sizes} with parents={p} gives a top concept with "
        f"{p ** (len(sizes) - 1)} {leaves}, over the exact sampler's limit of "
        f"{MAX_EXACT_COMPONENT}: use fewer levels or fewer parents")
  if not is_int(owner.tau) or not 1 <= owner.tau <= p:
    raise ConfigError(
        f"{name}.tau={owner.tau!r} is invalid: pass an integer in [1, parents={p}]")
  if not is_real(owner.pi) or not 0.0 < owner.pi < 1.0:
    raise ConfigError(
        f"{name}.pi={owner.pi!r} is outside (0, 1): pass a firing probability such as 0.3")
  if not is_real(owner.eps) or not 0.0 < owner.eps <= 1.0:
    raise ConfigError(
        f"{name}.eps={owner.eps!r} is outside (0, 1]: pass the selection leak, e.g. "
        f"{type(owner).eps}, or 1.0 to switch selection off")


def check_graph_seed(owner) -> None:
  if not is_int(owner.graph_seed) or owner.graph_seed < 0:
    raise ConfigError(
        f"{type(owner).__name__}.graph_seed={owner.graph_seed!r} is invalid: pass an integer "
        ">= 0")


def tiled_hsm_config(owner, magnitude: str = "uniform") -> HSMConfig:
  """The identi HSMConfig of a tiled world `owner`."""
  return HSMConfig(level_sizes=owner.level_sizes, min_parents=owner.parents,
                   max_parents=owner.parents, overlap=0.0, pi=float(owner.pi), zipf_exponent=0.0,
                   tau=owner.tau, eps=float(owner.eps), magnitude=magnitude,
                   graph_seed=owner.graph_seed)


def make_tiled_hsm(config, cls) -> HSM:
  """Validates `config` (an instance of the world config class `cls`) and builds its HSM, checking
  that the drawn parent sets partition every level (ConfigError naming graph_seed otherwise)."""
  if not isinstance(config, cls):
    raise ConfigError(
        f"config of type {type(config).__name__} is not a {cls.__name__}: build one with "
        f"{cls.__name__}(...)")
  config.validate()
  hsm = make_hsm(config.hsm_config())
  for l, adj in enumerate(hsm.adjacency):
    if not (np.all(adj.sum(axis=0) == config.parents) and np.all(adj.sum(axis=1) == 1)):
      raise ConfigError(
          f"{cls.__name__}.graph_seed={config.graph_seed} gives shared or missing parents between "
          f"levels {l + 1} and {l + 2}: parent sets must partition the level below; try another "
          "graph_seed")
  return hsm
