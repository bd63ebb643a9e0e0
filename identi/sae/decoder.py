"""Decoder-norm constraint for SAEs trained with unit-norm dictionary vectors.

Used with TopK, BatchTopK and JumpReLU: project the decoder gradient onto the tangent space of the
unit sphere (remove_parallel_grad) before the optimiser step, then renormalise (normalize_decoder).
"""

from typing import Any, Mapping

import jax
import jax.numpy as jnp

from identi.errors import DataError

Params = Mapping[str, Any]

_EPS = 1e-12


def _w_dec(tree: Params, what: str) -> jax.Array:
  if "W_dec" not in tree:
    raise DataError(f"{what} has no 'W_dec' (keys {sorted(tree)}); pass the 'params' collection "
                    "of an SAE, i.e. variables['params'], not the whole variables dict")
  return tree["W_dec"]


def normalize_decoder(params: Params) -> dict[str, Any]:
  """Returns params with every W_dec row scaled to unit L2 norm (zero rows stay zero)."""
  w = _w_dec(params, "params")
  norms = jnp.linalg.norm(w, axis=-1, keepdims=True)
  return {**params, "W_dec": w / jnp.maximum(norms, _EPS)}


def remove_parallel_grad(params: Params, grads: Params) -> dict[str, Any]:
  """Returns grads with each W_dec row's component parallel to that row of params removed."""
  w, g = _w_dec(params, "params"), _w_dec(grads, "grads")
  coef = jnp.sum(g * w, axis=-1, keepdims=True) / jnp.maximum(
      jnp.sum(w * w, axis=-1, keepdims=True), _EPS)
  return {**grads, "W_dec": g - coef * w}
