"""Sampling a hierarchical selection model: the exact sampler, MCMC, and whole worlds with views.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import weakref
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro

from identi.checks import check_count, check_key, is_int
from identi.errors import ConfigError
from identi.generators import views
from identi.generators.hsm import HSM, LOGNORMAL_SIGMA, MAX_EXACT_COMPONENT, METHODS, HSMConfig, check_hsm
from identi.generators.hsm_graph import component_levels, make_hsm
from identi.generators.hsm_model import hsm_model

CHUNK = 1 << 18


def _groups(components, log_probs) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
  """Groups components by size into ``(members (K, c), cdf (K, 2^c))`` and the column order."""
  by_size: dict[int, list[int]] = {}
  for k, comp in enumerate(components):
    by_size.setdefault(len(comp), []).append(k)
  groups, order = [], []
  for c in sorted(by_size):
    ks = by_size[c]
    members = np.stack([components[k] for k in ks]).astype(np.int32)
    cdf = np.cumsum(np.exp(np.stack([log_probs[k] for k in ks])), axis=1)
    cdf = cdf / cdf[:, -1:]
    groups.append((members, cdf.astype(np.float32)))
    order.append(members.reshape(-1))
  inverse = np.argsort(np.concatenate(order)).astype(np.int32)
  return tuple(groups), inverse


def _log_intensities(u: jax.Array, magnitude: str) -> jax.Array:
  """Log of i.i.d. level-1 intensities from uniforms ``u`` in [0, 1) by inverse CDF (shifting u
  by half a float32 step keeps the normal quantile finite, |log m| <= 0.25 * 5.3)."""
  u = u + np.float32(2.0 ** -24)
  if magnitude == "lognormal":
    return np.float32(LOGNORMAL_SIGMA * math.sqrt(2.0)) * jax.lax.erf_inv(2.0 * u - 1.0)
  return jnp.log(0.5 + u)


def _parent_table(adj: np.ndarray) -> np.ndarray:
  """int32 ``(n_{l+1}, max fan-in)``: the parents of every whole, padded with ``n_l`` (an index
  past the parts, which ``_emerge``'s gather reads as absent)."""
  n_low, n_high = adj.shape
  wholes, parts = np.nonzero(adj.T)
  slot = np.arange(len(wholes)) - np.searchsorted(wholes, wholes)
  table = np.full((n_high, max(int(slot.max(initial=0)) + 1, 1)), n_low, np.int32)
  table[wholes, slot] = parts
  return table


def _emerge(a1: jax.Array, log_m1: jax.Array, parents, weights, tau):
  """Presence, intensity and concept of every level from level 1 (section 2, step 2).

  Active-parent counts are gathered through the parent tables (exact integers, as the dense
  product gave, at a few reads per whole instead of a pass over every part)."""
  a, log_m = [a1], [log_m1]
  for par, w, t in zip(parents, weights, tau):
    counts = jnp.take(a[-1].astype(jnp.int32), par, axis=1, mode="fill", fill_value=0)
    a.append(counts.sum(axis=-1) >= t)
    log_m.append(jnp.matmul(log_m[-1], w, precision=jax.lax.Precision.HIGHEST))
  m = [jnp.exp(x) for x in log_m]
  return a, m, [jnp.where(x, y, 0.0) for x, y in zip(a, m)]


@functools.partial(jax.jit, static_argnames=("num_samples", "magnitude"))
def sample_exact_chunk(key, cdfs, inverse, parents, weights, tau, *, num_samples: int,
                        magnitude: str):
  """One chunk of exact samples: categorical patterns per component, intensities, emergence."""
  num_components = sum(cdf.shape[0] for cdf in cdfs)
  u = jax.random.uniform(key, (num_samples, num_components + inverse.shape[0]))
  columns, start = [], 0
  for cdf in cdfs:
    num, size = cdf.shape
    width = size.bit_length() - 1
    method = "compare_all" if size <= 64 else "scan"
    find = functools.partial(jnp.searchsorted, side="right", method=method)
    idx = jax.vmap(find, in_axes=(0, 1), out_axes=1)(cdf, u[:, start:start + num])
    idx = jnp.minimum(idx, size - 1)
    bits = (idx[..., None] >> jnp.arange(width, dtype=idx.dtype)) & 1
    columns.append(bits.reshape(num_samples, num * width))
    start += num
  a1 = jnp.concatenate(columns, axis=1)[:, inverse].astype(bool)
  return _emerge(a1, _log_intensities(u[:, num_components:], magnitude), parents, weights, tau)


@functools.partial(jax.jit, static_argnames=("magnitude",))
def _complete(key, a1, parents, weights, tau, *, magnitude: str):
  """Intensities and emergence for given level-1 presence bits (used after MCMC)."""
  u = jax.random.uniform(key, a1.shape)
  return _emerge(a1, _log_intensities(u, magnitude), parents, weights, tau)


_DEVICE_INPUTS: "weakref.WeakKeyDictionary[HSM, dict]" = weakref.WeakKeyDictionary()


def device_inputs(hsm: HSM) -> dict:
  """The sampler's graph arrays on the default device ('graph': parent tables, weights and
  thresholds; 'tables': the exact sampler's CDFs and column order, added on first use), made once
  per HSM: at SAELens-like sizes, moving the dense weights on every call costs as much as the
  sampling."""
  inputs = _DEVICE_INPUTS.get(hsm)
  if inputs is None:
    inputs = {"graph": jax.device_put((tuple(_parent_table(a) for a in hsm.adjacency),
                                       hsm.weights, hsm.tau))}
    _DEVICE_INPUTS[hsm] = inputs
  return inputs


def to_output(a, m, z=None) -> dict[str, list[np.ndarray]]:
  """Numpy lists over levels: 'a' bool, 'm' and 'z' float32 (z = a * m when not given)."""
  a = [np.asarray(x, bool) for x in a]
  m = [np.asarray(x, np.float32) for x in m]
  if z is None:
    z = [np.where(x, y, np.float32(0)) for x, y in zip(a, m)]
  return {"a": a, "m": m, "z": [np.asarray(x, np.float32) for x in z]}


def _sample_with_groups(key, hsm: HSM, num_samples: int, cdfs, inverse) -> dict:
  """Exact samples in equal chunks of at most 2^18, rounded up to a multiple of 4096 (few shapes
  to compile); chunk c uses ``fold_in(key, c)``."""
  num_chunks = -(-num_samples // CHUNK)
  chunk = -(-num_samples // num_chunks)
  if num_chunks > 1:
    chunk = -(-chunk // 4096) * 4096
  graph = device_inputs(hsm)["graph"]
  out = None
  for c in range(num_chunks):
    piece = jax.device_get(sample_exact_chunk(
        jax.random.fold_in(key, c), cdfs, inverse, *graph, num_samples=chunk,
        magnitude=hsm.config.magnitude))
    if num_chunks == 1:
      return to_output(*piece)
    if out is None:
      out = [[np.empty((num_samples,) + x.shape[1:], x.dtype) for x in field] for field in piece]
    start = c * chunk
    stop = min(start + chunk, num_samples)
    for field, values in zip(out, piece):
      for level, x in zip(field, values):
        level[start:stop] = x[:stop - start]
  return to_output(*out)


def _exact_tables(hsm: HSM, log_probs) -> tuple:
  """``(cdfs, inverse)`` for ``sample_exact_chunk``: the CDF of every size group and the
  column order."""
  too_big = [len(c) for c, lp in zip(hsm.components, log_probs) if lp is None]
  if too_big:
    raise ConfigError(
        f"this HSM has a selection component of {max(too_big)} level-1 concepts, over the exact "
        f"sampler's limit of {MAX_EXACT_COMPONENT}: sample it with method='mcmc', or use fewer "
        "parents (max_parents) or less overlap")
  groups, inverse = _groups(hsm.components, log_probs)
  return tuple(g[1] for g in groups), inverse


def sample_hsm(key: jax.Array, hsm: HSM, num_samples: int, method: str = "exact", *,
               num_chains: int = 256, num_warmup: int = 200, thinning: int = 2
               ) -> dict[str, list[np.ndarray]]:
  """Samples the selected HSM distribution p(a, m | all S = 1).

  Args:
    key: a JAX PRNG key; the samples are a pure function of it and the world.
    hsm: the world (``make_hsm``).
    num_samples: number of samples.
    method: 'exact' (component-wise enumeration) or 'mcmc' (numpyro DiscreteGibbs, any component
      size; see the module docstring).
    num_chains, num_warmup, thinning: MCMC settings (sweeps per chain before keeping samples,
      sweeps between kept samples); ignored by 'exact'.

  Returns:
    Dict with lists over levels (index 0 = level 1) of numpy arrays ``(num_samples, n_l)``:
    'a' bool presence, 'm' float32 intensities, 'z' float32 concepts ``a * m``.
  """
  key = check_key(key)
  hsm = check_hsm(hsm)
  num_samples = check_count(num_samples, "num_samples")
  if method not in METHODS:
    raise ConfigError(f"method={method!r} is unknown: use one of {', '.join(METHODS)}")
  if method == "exact":
    inputs = device_inputs(hsm)
    if "tables" not in inputs:
      inputs["tables"] = jax.device_put(_exact_tables(hsm, hsm.log_probs))
    return _sample_with_groups(key, hsm, num_samples, *inputs["tables"])
  num_chains = check_count(num_chains, "num_chains")
  num_warmup = check_count(num_warmup, "num_warmup", minimum=0)
  thinning = check_count(thinning, "thinning")
  k_mcmc, k_m = jax.random.split(key)
  per_chain = -(-num_samples // num_chains)
  mcmc = numpyro.infer.MCMC(
      numpyro.infer.DiscreteGibbs(functools.partial(hsm_model, hsm, 1, intensities=False)),
      num_warmup=num_warmup, num_samples=per_chain * thinning, thinning=thinning,
      num_chains=num_chains, chain_method=jax.vmap, progress_bar=False)
  mcmc.run(k_mcmc)
  a1 = np.asarray(mcmc.get_samples(group_by_chain=True)["a1"])
  a1 = a1.transpose(1, 0, 2, 3).reshape(-1, hsm.level_sizes[0])[:num_samples].astype(bool)
  return to_output(*jax.device_get(_complete(
      k_m, jnp.asarray(a1), *device_inputs(hsm)["graph"], magnitude=hsm.config.magnitude)))


def almost_complete_samples(key: jax.Array, hsm: HSM, num_samples: int, whole: int,
                            missing: int | None = None, level: int = 2) -> dict:
  """Samples units in which every parent of one whole but one is present.

  Exact draws from the selected distribution conditioned on the event "parents of ``whole``
  (a concept of ``level``) present except ``missing``, which is absent".

  Args:
    key: a JAX PRNG key.
    hsm: the world.
    num_samples: number of units.
    whole: index of the whole within ``level``.
    missing: index (within ``level - 1``) of its absent parent; None = its first parent.
    level: level of the whole, >= 2.

  Returns:
    A ``sample_hsm`` dict (the event has probability > 0 because eps > 0), plus 'missing'.
  """
  key = check_key(key)
  hsm = check_hsm(hsm)
  num_samples = check_count(num_samples, "num_samples")
  if not is_int(level) or not 2 <= level <= hsm.num_levels:
    raise ConfigError(
        f"level={level!r} is invalid: wholes live at levels 2..{hsm.num_levels} of this world")
  n = hsm.level_sizes[level - 1]
  if not is_int(whole) or not 0 <= whole < n:
    raise ConfigError(f"whole={whole!r} is invalid: pass an index in [0, {n - 1}] of level {level}")
  parents = hsm.parents(level, whole)
  missing = int(parents[0]) if missing is None else missing
  if not is_int(missing) or missing not in parents:
    raise ConfigError(
        f"missing={missing!r} is not a parent of concept {whole} of level {level}: pick one of "
        f"{parents.tolist()}")
  support = np.flatnonzero(hsm.support[level - 1][:, whole])
  k = hsm.component_of(int(support[0]))
  comp = hsm.components[k]
  if hsm.log_probs[k] is None:
    raise ConfigError(
        f"the component of concept {whole} of level {level} has {len(comp)} level-1 concepts, "
        f"over the exact limit of {MAX_EXACT_COMPONENT}: use a world with smaller components")
  parts = {"adjacency": hsm.adjacency, "tau": hsm.tau, "support": hsm.support,
           "eps": float(hsm.config.eps)}
  levels, _ = component_levels(parts, comp)
  idx, bits = levels[level - 2]
  col = {int(i): c for c, i in enumerate(idx)}
  event = np.ones(len(bits), bool)
  for p in parents:
    event &= bits[:, col[int(p)]] == (p != missing)
  log_probs = list(hsm.log_probs)
  conditional = np.where(event, hsm.log_probs[k], -np.inf)
  log_probs[k] = conditional - np.logaddexp.reduce(conditional)
  out = _sample_with_groups(key, hsm, num_samples, *_exact_tables(hsm, log_probs))
  out["missing"] = missing
  return out


_VIEWS = ("superposition", "level", "nonlinear")


def generate_hsm(key: jax.Array, config: HSMConfig, num_samples: int,
                 view: str | None = "superposition", d: int = 64, sigma: float = 0.0, *,
                 level: int = 1, cumulative: bool = False, depth: int = 2,
                 negative_slope: float = 0.2, method: str = "exact") -> dict:
  """Samples an HSM world and observes it: every sample carries its ground truth.

  Args:
    key: a JAX PRNG key (split into a latent key and a view key).
    config: the world.
    num_samples: number of samples.
    view: 'superposition' (``x = A z1``), 'level' (``x = A z[level]``, or ``A [z[level]; ...;
      z[L]]`` when ``cumulative``), 'nonlinear' (``x = f(A z1)``, leaky-ReLU MLP of ``depth``
      layers with ``negative_slope``) or None (latents only); see ``identi.generators.views``.
    d: observation dimension.
    sigma: observation noise standard deviation.
    level, cumulative: the level view's settings.
    depth, negative_slope: the nonlinear view's settings.
    method: 'exact' or 'mcmc' (see ``sample_hsm``).

  Returns:
    Dict: 'x' float32 ``(num_samples, d)`` (absent when view is None); 'a', 'm', 'z' lists over
    levels (index 0 = level 1); 'graph', the bool ``(n_l, n_{l+1})`` adjacency per level pair
    (upward edges part -> whole); 'mixing', a dict with 'A' (and 'layers' for the nonlinear view);
    'view', the view settings; 'config', the world's config as a dict.
  """

  key = check_key(key)
  if view is not None and view not in _VIEWS:
    raise ConfigError(f"view={view!r} is unknown: use one of {', '.join(_VIEWS)} or None")
  hsm = make_hsm(config, method=method)
  k_latent, k_view = jax.random.split(key)
  out = sample_hsm(k_latent, hsm, num_samples, method=method)
  settings: dict[str, Any] = {"kind": view, "d": d, "sigma": sigma}
  if view == "superposition":
    out["x"], mixing = views.superposition_view(k_view, out["z"][0], d, sigma)
    out["mixing"] = {"A": mixing}
  elif view == "level":
    out["x"], mixing = views.level_view(k_view, out["z"], level, d, sigma, cumulative)
    out["mixing"] = {"A": mixing}
    settings.update(level=level, cumulative=cumulative)
  elif view == "nonlinear":
    out["x"], mixing, layers = views.nonlinear_view(
        k_view, out["z"][0], d, depth=depth, negative_slope=negative_slope, sigma=sigma)
    out["mixing"] = {"A": mixing, "layers": layers}
    settings.update(depth=depth, negative_slope=negative_slope)
  else:
    out["mixing"] = {}
  out["graph"] = [adj.copy() for adj in hsm.adjacency]
  out["view"] = settings
  out["config"] = dataclasses.asdict(config)
  return out
