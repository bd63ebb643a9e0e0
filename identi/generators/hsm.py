"""The hierarchical selection model (HSM): its config, its structure, and the choices identi makes.

The model is described in docs/hsm.md. This package implements it in modules by what they hold:
`hsm` (this module: `HSMConfig`, the `HSM` structure, `default_world`), `hsm_graph` (building the
graph and `make_hsm`), `hsm_sampler` (the exact and MCMC samplers, `almost_complete_samples`,
`generate_hsm`), `hsm_model` (the numpyro model) and `hsm_interventions` (``do()``). Levels are numbered 1..L in the public API
(level 1 is the most concrete); Python lists holding one entry per level are 0-based, so
``out['a'][0]`` is level 1. Presence bits are ``a``, intensities ``m`` and concepts ``z = a * m``.

Choices this module makes where the spec leaves them open:

- **Graph.** Edges only join adjacent levels (no level-skipping edges). For every level pair the
  ``n_{l+1}`` wholes draw a parent-set size uniformly in ``[min_parents, max_parents]``. Each
  parent slot reuses, with probability ``overlap``, a part already taken by an earlier whole
  (that is the overlap rate); otherwise it takes a fresh part, in a random order, so parts are
  covered before any is shared. Once fresh parts run out, slots reuse parts. Identical parent
  sets are redrawn (two wholes with the same parents would be the same concept). Parts left over
  are orphans: independent concepts under no constraint. The graph is a pure function of
  ``HSMConfig.graph_seed``; the data are a pure function of the JAX key.
- **Firing probabilities.** ``pi_i = pi * r_i ** -zipf_exponent`` with ``r`` a random permutation
  of ``1..n_1`` (seeded by ``graph_seed``): ``pi`` is the largest firing probability and
  ``zipf_exponent = 0`` makes them all equal.
- **Threshold.** ``tau_j = tau`` for every whole when ``tau`` is given (``1 <= tau <=
  min_parents``), else ``|Pa(j)|``; selection treats active-parent counts of 0 or ``>= tau_j`` as
  coherent, anything in between passes with weight ``eps``.
- **Intensities.** Every concept has an intensity whether present or not; level 1 draws them
  i.i.d. and ``m[l+1][j] = prod_i m[l][i] ** w_ij`` over ``i in Pa(j)``, with ``w_ij ~
  U(weight_range)`` normalised to sum 1 per whole (a weighted geometric mean, smooth, positive
  and strictly increasing in every parent). Intensities are independent of presence, so
  selection only touches presence bits.
- **Exact sampler.** Every selection constraint is a function of the level-1 bits of the
  whole's support (its level-1 ancestors), so components of the hypergraph of supports are
  independent. Their ``2^|C|`` pattern probabilities are enumerated in float64 at
  ``make_hsm`` time and sampled by inverse CDF (float32 uniforms, so patterns with probability
  below ~1e-7 are under-represented), components grouped by size and vectorised with ``vmap``;
  level-1 intensities come from the same uniform draw by inverse CDF. Samples are made in jitted
  chunks of at most 2^18 (chunk c from ``fold_in(key, c)``), so ``sample_hsm(key, n)`` is not a
  prefix of ``sample_hsm(key, 2 * n)``; every new chunk shape compiles once (~1 s). The parent
  tables, weights and pattern CDFs move to the device once per HSM (cached while it lives), and
  presence emerges by gathering each whole's parents.
- **numpyro model.** Sites per level: ``a{l}`` and ``m{l}`` are sample sites (level 1 latent
  Bernoulli / intensity law; higher levels OBSERVED Delta sites holding their emergent value,
  so their log density is 0, discrete Gibbs sees only level-1 latents, and ``handlers.do``
  still replaces them for everything downstream); ``z{l}`` deterministic; ``selection{l+1}``
  factor sites adding ``log eps`` per incoherent whole; optional ``x`` observation. Use
  ``Predictive(..., return_sites=[...])`` or a trace to read the observed sites.
- **Interventions.** ``intervene`` acts on units of the selected population: it draws
  pre-intervention samples with ``sample_hsm`` (or takes ``base``), conditions the model on their
  level-1 values, applies ``numpyro.handlers.do`` and propagates along the upward edges.
  Selection picks which units exist; it is not a mechanism, so it does not re-weight them after
  the intervention.
- **MCMC.** ``method='mcmc'`` runs numpyro's ``DiscreteGibbs`` (one random-scan sweep over all
  level-1 bits per step) on the model without intensities, ``num_chains`` chains of one sample
  each under ``jax.vmap`` (numpyro's 'vectorized' chain method cannot initialise this kernel),
  then draws intensities exactly; samples interleave the chains. Single-site Gibbs mixes slowly
  when ``eps`` is small (moving between 'no part' and 'all parts' goes through partial states of
  weight ``eps``): raise ``num_warmup``/``thinning`` for such worlds.
"""

from __future__ import annotations

import dataclasses
import math
import numpy as np

from identi.checks import is_int, is_real
from identi.errors import ConfigError, DataError

MAX_EXACT_COMPONENT = 16


_MAGNITUDES = ("lognormal", "uniform")


LOGNORMAL_SIGMA = 0.25


METHODS = ("exact", "mcmc")


def check_mixing(mixing, n1: int):
  """None, or a finite ``(d, n_1)`` float32 matrix for the model's observation site."""
  if mixing is None:
    return None
  mixing = np.asarray(mixing, np.float32)
  if mixing.ndim != 2 or mixing.shape[1] != n1 or not np.all(np.isfinite(mixing)):
    raise DataError(
        f"mixing of shape {mixing.shape} cannot observe {n1} level-1 concepts: pass a finite "
        f"(d, {n1}) matrix, e.g. the A of superposition_view")
  return mixing


def _check_magnitude(magnitude) -> str:
  if magnitude not in _MAGNITUDES:
    raise ConfigError(
        f"magnitude={magnitude!r} is unknown: use one of {', '.join(_MAGNITUDES)}")
  return magnitude


def _check_level_sizes(level_sizes, owner: str) -> tuple[int, ...]:
  if not isinstance(level_sizes, (tuple, list)) or not level_sizes:
    raise ConfigError(
        f"{owner}.level_sizes={level_sizes!r} is invalid: pass a non-empty tuple of concept "
        "counts per level, level 1 (most concrete) first, e.g. (128, 48, 12)")
  for l, n in enumerate(level_sizes, start=1):
    if not is_int(n) or n < 1:
      raise ConfigError(
          f"{owner}.level_sizes[{l - 1}]={n!r} (level {l}) is invalid: every level needs an "
          "integer number of concepts >= 1")
  return tuple(int(n) for n in level_sizes)


def check_graph_fields(c, owner: str, min_name: str, max_name: str, lower: str,
                        upper: str) -> None:
  """Validates the graph fields shared by HSMConfig and HCMConfig (sizes, fan-in, overlap,
  seed, magnitude); ``min_name``/``max_name`` are the fan-in fields, counted in ``lower``s per
  ``upper``."""
  sizes = _check_level_sizes(c.level_sizes, owner)
  lo, hi = getattr(c, min_name), getattr(c, max_name)
  if not is_int(lo) or lo < 2:
    raise ConfigError(
        f"{owner}.{min_name}={lo!r} is invalid: every {upper} needs at least 2 {lower}s; set "
        f"{min_name} >= 2")
  if not is_int(hi) or hi < lo:
    raise ConfigError(
        f"{owner}.{max_name}={hi!r} is invalid: pass an integer >= {min_name}={lo}")
  for l in range(len(sizes) - 1):
    if hi > sizes[l]:
      raise ConfigError(
          f"{owner}.{max_name}={hi} exceeds the {sizes[l]} concepts of level {l + 1}, the level "
          f"below level {l + 2}: lower {max_name} to <= {sizes[l]} or enlarge "
          f"level_sizes[{l}]")
  if not is_real(c.overlap) or not 0.0 <= c.overlap <= 1.0:
    raise ConfigError(
        f"{owner}.overlap={c.overlap!r} is invalid: pass the rate at which {lower}s are shared "
        f"between {upper}s, a float in [0, 1]")
  if not is_int(c.graph_seed) or c.graph_seed < 0:
    raise ConfigError(f"{owner}.graph_seed={c.graph_seed!r} is invalid: pass an integer >= 0")
  _check_magnitude(c.magnitude)


def check_weight_range(w, owner: str, example: str) -> None:
  if not (isinstance(w, (tuple, list)) and len(w) == 2 and all(is_real(v) for v in w)
          and math.isfinite(w[0]) and math.isfinite(w[1]) and 0.0 < w[0] <= w[1]):
    raise ConfigError(
        f"{owner}.weight_range={w!r} is invalid: pass (low, high) with 0 < low <= high, "
        f"e.g. {example}")


def freeze_sequences(config, *names: str) -> None:
  """Turns list fields of a frozen config into tuples, so that configs stay hashable."""
  for name in names:
    value = getattr(config, name)
    if isinstance(value, list):
      object.__setattr__(config, name, tuple(value))


@dataclasses.dataclass(frozen=True)
class HSMConfig:
  """Everything that defines an HSM world (the data then depend only on the JAX key).

  Attributes:
    level_sizes: concepts per level ``(n_1, ..., n_L)``, level 1 most concrete.
    min_parents: smallest parent set of a higher concept (>= 2).
    max_parents: largest parent set (``p_max``), at most the size of the level below.
    overlap: rate at which a parent slot reuses a part already in another parent set, in [0, 1].
    pi: largest level-1 firing probability, in (0, 1).
    zipf_exponent: ``pi_i = pi * rank_i ** -zipf_exponent`` (0 = all equal), >= 0.
    tau: emergence threshold for every whole (``1 <= tau <= min_parents``); None = all parents.
    eps: selection leak of incoherent parent patterns, in (0, 1]; 1 switches selection off.
    magnitude: level-1 intensity law, 'lognormal' (LogNormal(0, 0.25)) or 'uniform' (U(0.5, 1.5)).
    weight_range: ``(low, high)``, 0 < low <= high, of the geometric-mean weights before
      normalisation.
    graph_seed: seed of the graph, the weights and the Zipf ranks.
  """
  level_sizes: tuple[int, ...] = (128, 64, 16)
  min_parents: int = 2
  max_parents: int = 2
  overlap: float = 0.05
  pi: float = 0.23
  zipf_exponent: float = 0.0
  tau: int | None = None
  eps: float = 0.05
  magnitude: str = "lognormal"
  weight_range: tuple[float, float] = (0.5, 1.5)
  graph_seed: int = 0

  def __post_init__(self):
    freeze_sequences(self, "level_sizes", "weight_range")

  def validate(self) -> "HSMConfig":
    """Raises ConfigError naming the field and the fix for impossible settings; returns self."""
    check_graph_fields(self, "HSMConfig", "min_parents", "max_parents", "part", "whole")
    if not is_real(self.pi) or not 0.0 < self.pi < 1.0:
      raise ConfigError(
          f"HSMConfig.pi={self.pi!r} is outside (0, 1): pass a firing probability such as 0.2")
    if not is_real(self.zipf_exponent) or not (
        math.isfinite(self.zipf_exponent) and self.zipf_exponent >= 0.0):
      raise ConfigError(
          f"HSMConfig.zipf_exponent={self.zipf_exponent!r} is invalid: pass a finite float >= 0 "
          "(0 gives every level-1 concept the firing probability pi)")
    if self.tau is not None and (
        not is_int(self.tau) or not 1 <= self.tau <= self.min_parents):
      raise ConfigError(
          f"HSMConfig.tau={self.tau!r} is invalid: pass None (all parents) or an integer in "
          f"[1, min_parents={self.min_parents}]")
    if not is_real(self.eps) or not 0.0 < self.eps <= 1.0:
      raise ConfigError(
          f"HSMConfig.eps={self.eps!r} is outside (0, 1]: pass the selection leak, e.g. 0.05, "
          "or 1.0 to switch selection off")
    check_weight_range(self.weight_range, "HSMConfig", "(0.5, 1.5)")
    return self


@dataclasses.dataclass(frozen=True, eq=False)
class HSM:
  """The structure of an HSM world (numpy arrays; level pair ``l`` joins levels l+1 and l+2).

  Attributes:
    config: the validated config it was made from.
    pi: ``(n_1,)`` float64 level-1 firing probabilities.
    adjacency: per level pair, bool ``(n_l, n_{l+1})``; ``[i, j]`` is the UPWARD edge part i ->
      whole j.
    weights: per level pair, float32 ``(n_l, n_{l+1})`` geometric-mean weights (0 off the graph,
      columns sum to 1).
    tau: per level pair, int32 ``(n_{l+1},)`` emergence thresholds.
    support: per level, bool ``(n_1, n_l)``; ``[i, j]``: level-1 concept i is an ancestor of j.
    components: int32 arrays of level-1 indices, the connected components of the supports.
    log_probs: per component, float64 ``(2^|C|,)`` log probability of each pattern (bit b of the
      pattern index is ``components[k][b]``) under selection, or None when ``|C| > 16``.
  """
  config: HSMConfig
  pi: np.ndarray
  adjacency: tuple[np.ndarray, ...]
  weights: tuple[np.ndarray, ...]
  tau: tuple[np.ndarray, ...]
  support: tuple[np.ndarray, ...]
  components: tuple[np.ndarray, ...]
  log_probs: tuple[np.ndarray | None, ...]

  @property
  def level_sizes(self) -> tuple[int, ...]:
    return self.config.level_sizes

  @property
  def num_levels(self) -> int:
    return len(self.config.level_sizes)

  def parents(self, level: int, j: int) -> np.ndarray:
    """Indices at ``level - 1`` of the parents of concept ``j`` of ``level`` (>= 2)."""
    return np.flatnonzero(self.adjacency[level - 2][:, j])

  def component_of(self, i: int) -> int:
    """Index into ``components`` of the component holding level-1 concept ``i``."""
    return next(k for k, c in enumerate(self.components) if i in c)


def check_hsm(hsm) -> HSM:
  if not isinstance(hsm, HSM):
    raise ConfigError(
        f"hsm of type {type(hsm).__name__} is not an HSM: build one with make_hsm(config)")
  hsm.config.validate()
  return hsm


def default_world() -> HSMConfig:
  """The world of the identifiability experiment, observed with the superposition view at d = 64.

  Three levels of 128, 64 and 16 concepts; every whole has exactly 2 parents, 5% of parent slots
  share a part, pi = 0.12, eps = 0.3. Components have at most 8 level-1 concepts. Measured on
  200k samples: mean active concepts 6.47 / 0.64 / 0.003 per level, levels non-empty in 99.8% /
  47% / 0.25% of samples (a level-3 whole needs 4 parts); level-1 firing rates 1.4% to 12%
  (median 5.3%); where any part of a level-2 whole fires, all of them do in 12% of samples.

  Why eps = 0.3 and not the spec's 0.05: at eps = 0.05 (and pi = 0.23: 8.3 active parts) a
  whole's parts fire together in 75% of the samples where either fires, and every SAE variant we
  trained learns such pairs as one composite unit (TopK, k = 10: 66 of 128 parts have no unit within
  cosine 0.95; encoder MCC 0.82, minimal-code MCC 0.88). `paper/leak_sweep.py` shows MCC over eps.
  """
  return HSMConfig(level_sizes=(128, 64, 16), min_parents=2, max_parents=2, overlap=0.05, pi=0.12,
                   zipf_exponent=0.0, tau=None, eps=0.3, magnitude="lognormal",
                   weight_range=(0.5, 1.5), graph_seed=0)
