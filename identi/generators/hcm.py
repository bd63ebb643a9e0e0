"""The hierarchical CAUSAL model (HCM): the top-down contrast to the HSM (section 6 of the spec).

Same variables as the HSM (``a``, ``m``, ``z = a * m`` per level, level 1 most concrete), but the
edges point DOWN: level-L presence bits are exogenous, ``a[L][j] ~ Bernoulli(pi_top)``, and for
``l < L``

  ``a[l][i] ~ Bernoulli(sigmoid(sum_{j in Pa(i)} w_ij a[l+1][j] + bias))``,

where ``Pa(i)`` are the wholes of level l+1 that contain part i. Sibling parts depend through
their common cause; ``do()`` on a part changes nothing above it.

Choices this module makes where the spec leaves them open:

- **Graph.** Built exactly as the HSM's (``identi.generators.hsm``): every whole of level l+1
  gets ``min_parts..max_parts`` parts in level l, a fraction ``overlap`` of them shared, from
  ``graph_seed``. ``adjacency[l][i, j]`` marks the same part/whole pair as in the HSM, but the
  causal edge is ``j -> i`` (downward). Parts of no whole fire with probability
  ``sigmoid(bias)``.
- **Weights.** ``w_ij ~ U(weight_range)``, positive, so a present whole switches its parts on
  (with the defaults ``P(part | its whole) >= sigmoid(1) = 0.73`` and ``P(part | no whole) =
  sigmoid(-4) = 0.018``).
- **Intensities** are exogenous at every level, i.i.d. from the ``magnitude`` law: the contrast
  with the HSM is about presence.
- **Sampling** traces the numpyro model ``hcm_model`` under ``handlers.seed``; interventions
  trace the same model under ``handlers.do`` with the same key, so every site not downstream of an
  intervention keeps the value ``sample_hcm`` gives for that key, and downstream Bernoulli sites
  reuse their uniforms (a monotone coupling).
"""
import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from identi.checks import check_count, check_key, check_sigma, is_real
from identi.errors import ConfigError
from identi.generators.hsm import (check_graph_fields, check_mixing, check_weight_range,
                                   freeze_sequences)
from identi.generators.hsm_graph import build_graph
from identi.generators.hsm_interventions import apply_do, parse_do, site_value
from identi.generators.hsm_model import intensity_dist
from identi.generators.hsm_sampler import to_output


@dataclasses.dataclass(frozen=True)
class HCMConfig:
  """Everything that defines an HCM world.

  Attributes:
    level_sizes: concepts per level ``(n_1, ..., n_L)``, level 1 most concrete.
    min_parts: fewest parts (level-l children) a whole of level l+1 causes (>= 2).
    max_parts: most parts a whole causes, at most the size of the level below.
    overlap: rate at which a part is shared by two wholes, in [0, 1].
    pi_top: firing probability of the exogenous level-L concepts, in (0, 1).
    weight_range: ``(low, high)``, 0 < low <= high, of the positive edge weights ``w``.
    bias: logit of a part's firing probability when none of its wholes is present.
    magnitude: intensity law, 'lognormal' (LogNormal(0, 0.25)) or 'uniform' (U(0.5, 1.5)).
    graph_seed: seed of the graph and the weights.
  """
  level_sizes: tuple[int, ...] = (128, 64, 16)
  min_parts: int = 2
  max_parts: int = 2
  overlap: float = 0.05
  pi_top: float = 0.2
  weight_range: tuple[float, float] = (5.0, 7.0)
  bias: float = -4.0
  magnitude: str = "lognormal"
  graph_seed: int = 0

  def __post_init__(self):
    freeze_sequences(self, "level_sizes", "weight_range")

  def validate(self) -> "HCMConfig":
    """Raises ConfigError naming the field and the fix for impossible settings; returns self."""
    check_graph_fields(self, "HCMConfig", "min_parts", "max_parts", "part", "whole")
    if not is_real(self.pi_top) or not 0.0 < self.pi_top < 1.0:
      raise ConfigError(
          f"HCMConfig.pi_top={self.pi_top!r} is outside (0, 1): pass the firing probability of "
          "the top-level concepts, e.g. 0.2")
    check_weight_range(self.weight_range, "HCMConfig", "(5.0, 7.0)")
    if not is_real(self.bias) or not math.isfinite(self.bias):
      raise ConfigError(
          f"HCMConfig.bias={self.bias!r} is invalid: pass a finite logit, e.g. -4.0")
    return self


@dataclasses.dataclass(frozen=True, eq=False)
class HCM:
  """The structure of an HCM world.

  Attributes:
    config: the validated config.
    adjacency: per level pair, bool ``(n_l, n_{l+1})``; ``[i, j]``: whole j causes part i
      (DOWNWARD edge j -> i).
    weights: per level pair, float32 ``(n_l, n_{l+1})`` edge weights (0 off the graph).
  """
  config: HCMConfig
  adjacency: tuple[np.ndarray, ...]
  weights: tuple[np.ndarray, ...]

  @property
  def level_sizes(self) -> tuple[int, ...]:
    return self.config.level_sizes

  @property
  def num_levels(self) -> int:
    return len(self.config.level_sizes)

  def parents(self, level: int, i: int) -> np.ndarray:
    """Indices at ``level + 1`` of the causes of concept ``i`` of ``level`` (< L)."""
    return np.flatnonzero(self.adjacency[level - 1][i])


def make_hcm(config: HCMConfig) -> HCM:
  """Builds the structure of an HCM world from its config."""
  if not isinstance(config, HCMConfig):
    raise ConfigError(
        f"config of type {type(config).__name__} is not an HCMConfig: build one with "
        "HCMConfig(...)")
  config.validate()
  adjacency, weights = build_graph(
      config.level_sizes, config.min_parts, config.max_parts, config.overlap,
      config.weight_range, config.graph_seed, "HCMConfig")
  return HCM(config=config, adjacency=tuple(adjacency),
             weights=tuple(w.astype(np.float32) for w in weights))


def _check_hcm(hcm) -> HCM:
  if not isinstance(hcm, HCM):
    raise ConfigError(
        f"hcm of type {type(hcm).__name__} is not an HCM: build one with make_hcm(config)")
  hcm.config.validate()
  return hcm


def hcm_model(hcm: HCM, num_samples: int = 1, *, mixing: Any = None, sigma: float = 0.0,
              x: Any = None) -> None:
  """The numpyro model of the HCM, sampled top-down.

  Sites: ``a{l}`` (Bernoulli) and ``m{l}`` (intensity law) sample sites and ``z{l}``
  deterministic, in plates 'samples' (dim -2) x 'concepts{l}' (dim -1), levels L down to 1;
  optional 'x' = ``z1 @ mixing.T`` plus Normal(0, sigma) noise (Delta when sigma is 0), event
  shape ``(num_samples, d)``.
  """
  config = hcm.config
  samples = numpyro.plate("samples", num_samples, dim=-2)
  a = None
  for level in range(hcm.num_levels, 0, -1):
    with samples, numpyro.plate(f"concepts{level}", hcm.level_sizes[level - 1], dim=-1):
      if a is None:
        probs = jnp.full(hcm.level_sizes[level - 1], config.pi_top, jnp.float32)
        a = numpyro.sample(f"a{level}", dist.Bernoulli(probs=probs))
      else:
        logits = jnp.matmul(a.astype(jnp.float32), jnp.asarray(hcm.weights[level - 1]).T,
                            precision=jax.lax.Precision.HIGHEST) + config.bias
        a = numpyro.sample(f"a{level}", dist.Bernoulli(logits=logits))
      m = numpyro.sample(f"m{level}", intensity_dist(config.magnitude))
      z = numpyro.deterministic(f"z{level}", a * m)
  if mixing is not None:
    loc = jnp.matmul(z, jnp.asarray(mixing).T, precision=jax.lax.Precision.HIGHEST)
    obs_dist = dist.Normal(loc, sigma) if sigma > 0 else dist.Delta(loc)
    numpyro.sample("x", obs_dist.to_event(2), obs=x)


def _site_order(num_levels: int) -> list[str]:
  return [f"{k}{l}" for l in range(num_levels, 0, -1) for k in ("a", "m")]


def _collect(trace, values: dict, num_levels: int, mixing) -> dict:
  levels = range(1, num_levels + 1)
  out = to_output([np.asarray(site_value(trace, values, f"a{l}")).astype(bool) for l in levels],
                   [np.asarray(site_value(trace, values, f"m{l}")) for l in levels])
  if mixing is not None:
    out["x"] = np.asarray(trace["x"]["value"], np.float32)
  return out


def sample_hcm(key: jax.Array, hcm: HCM, num_samples: int, *, mixing: Any = None,
               sigma: float = 0.0) -> dict:
  """Ancestral samples of the HCM.

  Args:
    key: a JAX PRNG key; the samples are a pure function of it and the world.
    hcm: the world (``make_hcm``).
    num_samples: number of samples.
    mixing, sigma: optional superposition view of level 1 (adds 'x').

  Returns:
    Dict with lists over levels (index 0 = level 1) of ``(num_samples, n_l)`` numpy arrays:
    'a' bool, 'm' and 'z' float32 (the shape ``sample_hsm`` returns).
  """
  key = check_key(key)
  hcm = _check_hcm(hcm)
  num_samples = check_count(num_samples, "num_samples")
  mixing = check_mixing(mixing, hcm.level_sizes[0])
  model = functools.partial(hcm_model, hcm, num_samples, mixing=mixing, sigma=check_sigma(sigma))
  trace, values = apply_do(model, key, {}, [], (), {})
  return _collect(trace, values, hcm.num_levels, mixing)


def intervene_hcm(key: jax.Array, hcm: HCM, num_samples: int, do: dict, *, mixing: Any = None,
                  sigma: float = 0.0) -> dict:
  """Interventional samples of the HCM: ``numpyro.handlers.do`` on ``hcm_model``.

  Args:
    key: a JAX PRNG key; sites not downstream of the intervention equal ``sample_hcm(key, ...)``.
    hcm: the world.
    num_samples: number of samples.
    do: interventions in the format of ``identi.generators.hsm.intervene`` (``{'a1[5]': 1}``,
      ``{'a2': values}``, 'm<level>' likewise).
    mixing, sigma: optional superposition view of level 1 (adds 'x').

  Returns:
    The ``sample_hcm`` dict after the intervention, plus 'do' (site -> full intervened values)
    and 'pre' (``sample_hcm`` with the same key).
  """
  key = check_key(key)
  hcm = _check_hcm(hcm)
  num_samples = check_count(num_samples, "num_samples")
  parsed = parse_do(do, hcm.level_sizes, num_samples)
  mixing = check_mixing(mixing, hcm.level_sizes[0])
  sigma = check_sigma(sigma)
  model = functools.partial(hcm_model, hcm, num_samples, mixing=mixing, sigma=sigma)
  trace, values = apply_do(model, key, parsed, _site_order(hcm.num_levels), (), {})
  out = _collect(trace, values, hcm.num_levels, mixing)
  out["do"] = {k: np.asarray(v) for k, v in values.items()}
  out["pre"] = sample_hcm(key, hcm, num_samples, mixing=mixing, sigma=sigma)
  return out
