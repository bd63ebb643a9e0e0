"""Minimal-code inference: the sparsest non-negative codes of data over a learned dictionary.

Causal minimality makes the sparsest code that explains the data the identifiable one. An SAE's
linear encoder only approximates it; :func:`minimal_codes` re-infers the codes with the SAE's own
decoder by non-negative OMP (:mod:`identi.infer.omp`) or the non-negative LASSO by FISTA
(:mod:`identi.infer.fista`), warm-started from the encoder. :func:`refine_dictionary` further
improves the decoder by alternating inference with least squares.

Measured on the demo world (256 features in d = 64, 4 active; TopK SAE with k = 6, 512 latents,
whose encoder scores MCC 0.905): OMP with max_atoms = 12 reaches MCC 0.987 cold and 0.996 warm-
started from the encoder's support; FISTA (lam = 0.04 mean ||x_s - b_dec||, 200 iterations) 0.998.
"""

import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from identi.errors import ConfigError, DataError
from identi.infer.fista import fista, lipschitz_constant
from identi.infer.omp import check_positive_int, omp
from identi.infer.refine import refine_dictionary

METHODS = ("omp", "fista")
#: Default FISTA L1 weight relative to the mean norm of the centred scaled inputs.
FISTA_RELATIVE_LAM = 0.04
#: Default FISTA iterations.
FISTA_NUM_ITERS = 200


def _check_sae_inputs(model, variables: Mapping[str, Any], x) -> np.ndarray:
  for collection, names in (("params", ("W_dec", "b_dec")), ("stats", ("input_scale",))):
    missing = [n for n in names if n not in variables.get(collection, {})]
    if missing:
      raise DataError(f"SAE variables lack {collection} {missing}; pass the full variables dict "
                      "({'params': ..., 'stats': ...}) returned by init_sae or the trainer")
  d_in = getattr(model, "d_in", None)
  if d_in is None or not hasattr(model, "encode"):
    raise ConfigError(f"minimal_codes got a {type(model).__name__}; pass an identi SAE module such "
                      "as make_sae('topk', d_in, d_sae, k=32)")
  x = np.asarray(x, np.float32)
  if x.ndim != 2 or x.shape[1] != d_in:
    raise DataError(f"minimal_codes input x has shape {x.shape}; it must be 2-D (batch, {d_in}) "
                    f"for this SAE: reshape activations to (-1, {d_in})")
  return x


def _chunks(x: np.ndarray, batch_size: int):
  """Yields (padded chunk, real row count); padding keeps one compiled shape for all chunks."""
  for start in range(0, x.shape[0], batch_size):
    chunk = x[start:start + batch_size]
    n = chunk.shape[0]
    if n < batch_size and x.shape[0] > batch_size:
      chunk = np.concatenate([chunk, np.zeros((batch_size - n, x.shape[1]), x.dtype)])
    yield chunk, n


def minimal_codes(model, variables: Mapping[str, Any], x, *, method: str = "omp",
                  batch_size: int = 4096, warm_start: bool = True, **kwargs) -> np.ndarray:
  """Sparsest codes of raw inputs over a trained SAE's decoder, in the encoder's code units.

  Works in the SAE's scaled space: x_s = x * input_scale, dictionary = W_dec, offset = b_dec, so
  ``codes @ W_dec + b_dec`` reconstructs x_s exactly as the encoder's codes do.

  Args:
    model: the identi SAE module (e.g. from ``make_sae``).
    variables: its {'params': ..., 'stats': ...}.
    x: (n, d_in) raw inputs.
    method: 'omp' (non-negative OMP) or 'fista' (non-negative LASSO).
    batch_size: samples per chunk.
    warm_start: start from the encoder's codes (OMP: their support; FISTA: their values).
    **kwargs: passed to :func:`omp` or :func:`fista`. OMP's ``max_atoms`` defaults to 2 k for
      k-sparse SAEs and to 2 ceil(mean encoder L0) otherwise, clipped to [1, min(d_sae, d_in)];
      FISTA's ``lam`` defaults to 0.04 * mean ||x_s - b_dec|| and ``num_iters`` to 200.

  Returns:
    float32 numpy (n, d_sae) non-negative codes.
  """
  if method not in METHODS:
    raise ConfigError(f"minimal_codes method={method!r} is unknown: use one of "
                      f"{', '.join(METHODS)}")
  x = _check_sae_inputs(model, variables, x)
  batch_size = check_positive_int("batch_size", batch_size, "minimal_codes")
  if x.shape[0] == 0:
    return np.zeros((0, model.d_sae), np.float32)
  # Host copies: inference runs on the default device, whatever sharding the SAE was restored
  # with (a replicated while_loop over several CPU devices can stall in XLA's collectives).
  variables = jax.tree.map(np.asarray, variables)
  params = variables["params"]
  scale = jnp.asarray(variables["stats"]["input_scale"], jnp.float32)
  dictionary = jnp.asarray(params["W_dec"], jnp.float32)
  b_dec = jnp.asarray(params["b_dec"], jnp.float32)
  encode = jax.jit(lambda v, a: model.apply(v, a, method=model.encode))
  encoded = [np.asarray(encode(variables, chunk))[:n] for chunk, n in _chunks(x, batch_size)]
  enc = np.concatenate(encoded)
  if method == "omp":
    if "max_atoms" not in kwargs:
      k = getattr(model, "k", None)
      base = k if k is not None else math.ceil(float(np.mean(np.sum(enc != 0, axis=1))))
      kwargs["max_atoms"] = int(max(1, min(2 * base, model.d_sae, model.d_in)))

    def infer(xs, init):
      return omp(xs, dictionary, b_dec=b_dec, init_support=init, **kwargs)
  else:
    if "lam" not in kwargs:
      norms = np.linalg.norm(x * np.asarray(scale) - np.asarray(b_dec), axis=1)
      kwargs["lam"] = FISTA_RELATIVE_LAM * float(np.mean(norms))
    kwargs.setdefault("num_iters", FISTA_NUM_ITERS)

    def infer(xs, init):
      return fista(xs, dictionary, b_dec=b_dec, init=init, **kwargs)
  out = []
  for start, (chunk, n) in zip(range(0, x.shape[0], batch_size), _chunks(x, batch_size)):
    init = None
    if warm_start:
      init = np.zeros((chunk.shape[0], model.d_sae), np.float32)
      init[:n] = enc[start:start + n]
    out.append(np.asarray(infer(jnp.asarray(chunk) * scale, init))[:n])
  return np.concatenate(out)


__all__ = ["METHODS", "fista", "lipschitz_constant", "minimal_codes", "omp", "refine_dictionary"]
