"""Interventions on a hierarchical selection model: numpyro ``do()`` on units of the selected
population (choices: `identi.generators.hsm`).
"""

from __future__ import annotations

import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import handlers

from identi.checks import check_count, check_key, check_sigma
from identi.errors import ConfigError, DataError
from identi.generators.hsm import HSM, check_hsm, check_mixing
from identi.generators.hsm_model import hsm_model
from identi.generators.hsm_sampler import sample_hsm, to_output

_SITE = re.compile(r"^([am])(\d+)(?:\[(\d+)\])?$")


def parse_do(do, sizes: tuple[int, ...], num_samples: int) -> dict[str, list]:
  """``{'a1[5]': 1, 'a2': array}`` -> ``{'a1': [(column or None, (N, ...) value)], ...}``."""
  if not isinstance(do, dict) or not do:
    raise ConfigError(
        f"do={do!r} is invalid: pass a non-empty dict such as {{'a1[5]': 1}} (one concept) or "
        "{'a2': values} (a whole level)")
  parsed: dict[str, list] = {}
  for name, value in do.items():
    match = _SITE.match(name) if isinstance(name, str) else None
    if match is None:
      raise ConfigError(
          f"do key {name!r} is invalid: use 'a<level>' or 'm<level>' for a whole level, or "
          "'a<level>[<index>]' / 'm<level>[<index>]' for one concept, e.g. 'a1[5]'")
    kind, level, index = match.group(1), int(match.group(2)), match.group(3)
    if not 1 <= level <= len(sizes):
      raise ConfigError(
          f"do key {name!r} names level {level}, but the world has levels 1..{len(sizes)}")
    n = sizes[level - 1]
    value = np.asarray(value, np.float32)
    if index is not None:
      if int(index) >= n:
        raise ConfigError(
            f"do key {name!r} names concept {index} of level {level}, which has {n}: pass an "
            f"index in [0, {n - 1}]")
      if value.shape not in ((), (num_samples,)):
        raise DataError(
            f"do[{name!r}] has shape {value.shape}: pass a scalar or ({num_samples},) values")
      entry = (int(index), np.broadcast_to(value, (num_samples,)))
    else:
      try:
        entry = (None, np.broadcast_to(value, (num_samples, n)))
      except ValueError as e:
        raise DataError(
            f"do[{name!r}] has shape {value.shape}: pass values broadcastable to "
            f"({num_samples}, {n})") from e
    if kind == "a" and not np.all((entry[1] == 0) | (entry[1] == 1)):
      raise DataError(f"do[{name!r}] holds values other than 0/1: presence bits are 0 or 1")
    if kind == "m" and not np.all(entry[1] > 0):
      raise DataError(f"do[{name!r}] holds values <= 0: intensities must be positive")
    parsed.setdefault(f"{kind}{level}", []).append(entry)
  return parsed


def apply_do(model, key, parsed: dict[str, list], order: list[str], args, kwargs):
  """Traces ``model`` under ``handlers.do``, filling per-concept interventions site by site.

  ``order`` lists the sites in causal order; each intervened site's non-intervened entries take
  the natural value it has given the interventions upstream of it.
  """
  values: dict[str, jax.Array] = {}
  for site in order:
    if site not in parsed:
      continue
    trace = handlers.trace(handlers.seed(handlers.do(model, values), key)).get_trace(
        *args, **kwargs)
    natural = np.array(trace[site]["value"], np.float32)
    for column, value in parsed[site]:
      if column is None:
        natural = np.array(value)
      else:
        natural[:, column] = value
    values[site] = jnp.asarray(natural, trace[site]["value"].dtype)
  trace = handlers.trace(handlers.seed(handlers.do(model, values), key)).get_trace(
      *args, **kwargs)
  return trace, values


def site_value(trace, values: dict, name: str):
  """Value of a site after the interventions (the trace keeps the natural one under its name)."""
  return values[name] if name in values else trace[name]["value"]


def intervene(key: jax.Array, hsm: HSM, num_samples: int, do: dict, *, base: dict | None = None,
              mixing: Any = None, sigma: float = 0.0) -> dict:
  """Interventional samples: ``numpyro.handlers.do`` on the reference model, per selected unit.

  Args:
    key: a JAX PRNG key. Without ``base`` the pre-intervention units are
      ``sample_hsm(key, hsm, num_samples)``, so level-1 values not downstream of an intervention
      equal that call's output exactly.
    hsm: the world.
    num_samples: number of units.
    do: interventions, ``{'a1[5]': 1}`` (one concept, scalar or ``(num_samples,)`` values),
      ``{'a2': values}`` (a whole level, broadcastable to ``(num_samples, n_l)``), same for
      intensities 'm<level>'.
    base: optional pre-intervention samples (a ``sample_hsm``-style dict), e.g. from
      ``almost_complete_samples``.
    mixing, sigma: optional superposition view of level 1 (adds 'x', see ``hsm_model``).

  Returns:
    The ``sample_hsm`` dict after the intervention, plus 'do' (site -> full intervened values)
    and 'pre' (the units before it); with ``mixing``, also 'x'.
  """
  key = check_key(key)
  hsm = check_hsm(hsm)
  num_samples = check_count(num_samples, "num_samples")
  parsed = parse_do(do, hsm.level_sizes, num_samples)
  mixing = check_mixing(mixing, hsm.level_sizes[0])
  sigma = check_sigma(sigma)
  if base is None:
    base = sample_hsm(key, hsm, num_samples)
  for name in ("a", "m"):
    arr = np.asarray(base[name][0]) if name in base else None
    if arr is None or arr.shape != (num_samples, hsm.level_sizes[0]):
      raise DataError(
          f"base[{name!r}][0] has shape {getattr(arr, 'shape', None)}: pass a sample_hsm dict "
          f"with num_samples={num_samples} rows and {hsm.level_sizes[0]} level-1 concepts")
  conditioned = handlers.condition(hsm_model, {
      "a1": jnp.asarray(base["a"][0], jnp.int32), "m1": jnp.asarray(base["m"][0])})
  order = [f"{k}{l}" for l in range(1, hsm.num_levels + 1) for k in ("a", "m")]
  trace, values = apply_do(conditioned, key, parsed, order, (hsm, num_samples),
                            {"mixing": mixing, "sigma": sigma})
  levels = range(1, hsm.num_levels + 1)
  out = to_output([np.asarray(site_value(trace, values, f"a{l}")).astype(bool) for l in levels],
                   [np.asarray(site_value(trace, values, f"m{l}")) for l in levels])
  out["do"] = {k: np.asarray(v) for k, v in values.items()}
  out["pre"] = base
  if mixing is not None:
    out["x"] = np.asarray(trace["x"]["value"], np.float32)
  return out
