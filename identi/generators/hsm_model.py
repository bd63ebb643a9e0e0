"""The numpyro model of a hierarchical selection model (sites: `identi.generators.hsm`).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from identi.generators.hsm import HSM, LOGNORMAL_SIGMA

def intensity_dist(magnitude: str) -> dist.Distribution:
  if magnitude == "lognormal":
    return dist.LogNormal(0.0, LOGNORMAL_SIGMA)
  return dist.Uniform(0.5, 1.5)


def hsm_model(hsm: HSM, num_samples: int = 1, *, mixing: Any = None, sigma: float = 0.0,
              x: Any = None, intensities: bool = True) -> None:
  """The numpyro reference model of the HSM (sites described in the module docstring).

  Latent sites live in plates 'samples' (dim -2) x 'concepts{l}' (dim -1), so ``a{l}``,
  ``m{l}`` and ``z{l}`` have shape ``(num_samples, n_l)`` and every bit is enumerable;
  'selection{l}' factors hold one ``log eps`` or 0 per whole of level l.

  Args:
    hsm: the world.
    num_samples: size of the 'samples' plate (independent units).
    mixing: optional ``(d, n_1)`` matrix; adds the observation site 'x' = ``z1 @ mixing.T``
      plus Normal(0, sigma) noise (a Delta site when sigma is 0), event shape ``(num_samples, d)``.
    sigma: observation noise, >= 0.
    x: optional observed ``(num_samples, d)`` values for 'x'.
    intensities: False drops the intensity, concept and observation sites (presence bits and
      selection only; what discrete Gibbs samples).
  """
  config = hsm.config
  log_eps = math.log(config.eps)
  samples = numpyro.plate("samples", num_samples, dim=-2)
  with samples, numpyro.plate("concepts1", hsm.level_sizes[0], dim=-1):
    a = numpyro.sample("a1", dist.Bernoulli(probs=jnp.asarray(hsm.pi, jnp.float32)))
    if intensities:
      m = numpyro.sample("m1", intensity_dist(config.magnitude))
      z = numpyro.deterministic("z1", a * m)
  for l, (adj, w, tau) in enumerate(zip(hsm.adjacency, hsm.weights, hsm.tau)):
    with samples, numpyro.plate(f"concepts{l + 2}", hsm.level_sizes[l + 1], dim=-1):
      counts = jnp.matmul(a, jnp.asarray(adj, a.dtype))
      coherent = (counts == 0) | (counts >= tau)
      numpyro.factor(f"selection{l + 2}", jnp.where(coherent, 0.0, log_eps))
      emerged = (counts >= tau).astype(a.dtype)
      a = numpyro.sample(f"a{l + 2}", dist.Delta(emerged), obs=emerged)
      if intensities:
        parent_m = jnp.exp(jnp.matmul(jnp.log(m), jnp.asarray(w),
                                      precision=jax.lax.Precision.HIGHEST))
        m = numpyro.sample(f"m{l + 2}", dist.Delta(parent_m), obs=parent_m)
        numpyro.deterministic(f"z{l + 2}", a * m)
  if mixing is not None and intensities:
    loc = jnp.matmul(z, jnp.asarray(mixing).T, precision=jax.lax.Precision.HIGHEST)
    obs_dist = dist.Normal(loc, sigma) if sigma > 0 else dist.Delta(loc)
    numpyro.sample("x", obs_dist.to_event(2), obs=x)
