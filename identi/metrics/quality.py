"""Reconstruction and sparsity quality of a sparse autoencoder.

Libraries disagree on these definitions, so identi fixes them here:

- FVU (fraction of variance unexplained): ``sum ||x - x_hat||^2 / sum ||x - mean(x)||^2``, sums over
  examples and features, ``mean(x)`` the per-feature mean over the evaluated set (not per batch).
- MSE: mean over elements (examples x features) of the squared error.
- L0: mean over examples of the number of non-zero codes.
- Shrinkage: mean over examples of ``||x_hat|| / ||x||``; examples with ``||x|| = 0`` are skipped.
  Values below 1 show the norm shrinkage an L1 penalty causes.
- Cosine: mean over examples of ``cos(x, x_hat)``; examples with ``||x|| = 0`` are skipped and an
  example whose ``x_hat`` is zero scores 0 (it points nowhere).
- Dead latents: a latent is dead when it has not fired (non-zero code) for ``window_tokens`` tokens;
  in evaluation, when it never fired over the evaluated tokens.

All functions take ``x, x_hat`` of shape ``(..., d_in)`` and codes of shape ``(..., d_sae)``;
leading axes are flattened into examples. Arithmetic is in float32 whatever the input dtype.
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from identi.errors import DataError

_INT32_MAX = jnp.iinfo(jnp.int32).max


def _rows(a: jax.Array) -> jax.Array:
  """Flattens leading axes into examples and casts to float32."""
  a = jnp.asarray(a)
  if a.ndim < 1:
    raise DataError(
        f"expected an array of shape (examples, features), got a scalar of shape {a.shape}: "
        "pass at least a 1-D feature vector")
  return a.reshape(-1, a.shape[-1]).astype(jnp.float32)


def _check_pair(x: jax.Array, x_hat: jax.Array) -> None:
  if x.shape != x_hat.shape:
    raise DataError(
        f"x has shape {x.shape} but x_hat has shape {x_hat.shape}: pass the reconstruction of "
        "exactly the examples in x")


def _safe_div(num: jax.Array, den: jax.Array) -> jax.Array:
  """num / den where den > 0, NaN elsewhere (an undefined metric, e.g. no valid examples)."""
  return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), jnp.nan)


def fvu(x: jax.Array, x_hat: jax.Array) -> jax.Array:
  """Fraction of variance unexplained over the given examples.

  ``sum ||x - x_hat||^2 / sum ||x - mean(x)||^2`` with the per-feature mean over the examples. The
  data are shifted by their first example before the mean is taken, so a large common offset does
  not cancel catastrophically in float32. NaN when x has zero variance.
  """
  x, x_hat = _rows(x), _rows(x_hat)
  _check_pair(x, x_hat)
  resid = jnp.sum(jnp.square(x - x_hat))
  shifted = x - x[:1]
  total = jnp.sum(jnp.square(shifted - jnp.mean(shifted, axis=0)))
  return _safe_div(resid, total)


def mse(x: jax.Array, x_hat: jax.Array) -> jax.Array:
  """Mean over elements (examples x features) of the squared reconstruction error."""
  x, x_hat = _rows(x), _rows(x_hat)
  _check_pair(x, x_hat)
  return jnp.mean(jnp.square(x - x_hat))


def l0(codes: jax.Array) -> jax.Array:
  """Mean number of non-zero codes per example."""
  codes = _rows(codes)
  return jnp.mean(jnp.sum(codes != 0, axis=-1).astype(jnp.float32))


def _norm_terms(x: jax.Array, x_hat: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Per-example validity (||x|| > 0), norm ratio and cosine (0 where invalid)."""
  nx = jnp.linalg.norm(x, axis=-1)
  nh = jnp.linalg.norm(x_hat, axis=-1)
  valid = nx > 0
  safe_nx = jnp.where(valid, nx, 1.0)
  ratio = jnp.where(valid, nh / safe_nx, 0.0)
  denom = safe_nx * jnp.where(nh > 0, nh, 1.0)
  cos = jnp.where(valid & (nh > 0), jnp.sum(x * x_hat, axis=-1) / denom, 0.0)
  return valid, ratio, cos


def shrinkage(x: jax.Array, x_hat: jax.Array) -> jax.Array:
  """Mean over examples of ``||x_hat|| / ||x||``, skipping examples with ``||x|| = 0``."""
  x, x_hat = _rows(x), _rows(x_hat)
  _check_pair(x, x_hat)
  valid, ratio, _ = _norm_terms(x, x_hat)
  return _safe_div(jnp.sum(ratio), jnp.sum(valid).astype(jnp.float32))


def cosine_similarity(x: jax.Array, x_hat: jax.Array) -> jax.Array:
  """Mean over examples of ``cos(x, x_hat)``, skipping examples with ``||x|| = 0``.

  An example whose reconstruction is zero scores 0.
  """
  x, x_hat = _rows(x), _rows(x_hat)
  _check_pair(x, x_hat)
  valid, _, cos = _norm_terms(x, x_hat)
  return _safe_div(jnp.sum(cos), jnp.sum(valid).astype(jnp.float32))


def update_tokens_since_fired(tokens_since_fired: jax.Array, codes: jax.Array,
                              fired: jax.Array | None = None) -> jax.Array:
  """Advances the per-latent count of tokens since each latent last fired.

  Args:
    tokens_since_fired: int32 ``(d_sae,)``.
    codes: ``(batch, d_sae)`` codes of one batch (leading axes are flattened).
    fired: optional bool ``(d_sae,)``, which latents fired in the batch, when the caller knows it
      without the dense codes (a sparse TopK decoder); then only the batch size is read from codes.

  Returns:
    int32 ``(d_sae,)``: 0 for latents that fired (non-zero code) in the batch, else the old count
    plus the batch size, saturating at the int32 maximum instead of overflowing.
  """
  codes = jnp.asarray(codes)
  codes = codes.reshape(-1, codes.shape[-1])
  if codes.shape[-1:] != tokens_since_fired.shape:
    raise DataError(
        f"codes have {codes.shape[-1]} latents but the counter has shape "
        f"{tokens_since_fired.shape}: initialise the counter as jnp.zeros((d_sae,), jnp.int32)")
  if fired is None:
    fired = jnp.any(codes != 0, axis=0)
  tsf = tokens_since_fired.astype(jnp.int32)
  batch = min(codes.shape[0], int(_INT32_MAX))
  advanced = jnp.where(tsf > _INT32_MAX - batch, _INT32_MAX, tsf + batch)
  return jnp.where(fired, 0, advanced).astype(jnp.int32)


def dead_mask(tokens_since_fired: jax.Array, window_tokens: int) -> jax.Array:
  """Bool ``(d_sae,)``: latents that have not fired for at least ``window_tokens`` tokens."""
  return tokens_since_fired >= window_tokens


def dead_fraction(tokens_since_fired: jax.Array, window_tokens: int) -> jax.Array:
  """Fraction of latents dead under ``dead_mask``, as a float32 scalar (jit-compatible)."""
  return jnp.mean(dead_mask(tokens_since_fired, window_tokens).astype(jnp.float32))


class QualityState(NamedTuple):
  """Running statistics of an evaluation, merged batch by batch.

  Every statistic is kept as a running mean (merged with weights n_a / n and n_b / n, Chan et al.'s
  parallel update for the variance), so float32 sums never grow with the number of tokens and a
  large common offset in x does not cancel catastrophically.

  Attributes:
    count: int32 number of examples seen.
    mean: float32 ``(d_in,)`` per-feature mean of x.
    var: float32 total variance of x: ``sum ||x - mean||^2 / count``.
    err: float32 mean over examples of ``||x - x_hat||^2``.
    l0: float32 mean number of non-zero codes per example.
    norm_count: int32 number of examples with ``||x|| > 0``.
    shrink: float32 mean ``||x_hat|| / ||x||`` over those examples.
    cosine: float32 mean ``cos(x, x_hat)`` over those examples.
    fired: bool ``(d_sae,)``, whether each latent fired on any example.
  """
  count: jax.Array
  mean: jax.Array
  var: jax.Array
  err: jax.Array
  l0: jax.Array
  norm_count: jax.Array
  shrink: jax.Array
  cosine: jax.Array
  fired: jax.Array


def quality_init(d_in: int, d_sae: int) -> QualityState:
  """Empty evaluation state for activations of width ``d_in`` and ``d_sae`` latents."""
  zero = jnp.zeros((), jnp.float32)
  return QualityState(
      count=jnp.zeros((), jnp.int32),
      mean=jnp.zeros((d_in,), jnp.float32),
      var=zero,
      err=zero,
      l0=zero,
      norm_count=jnp.zeros((), jnp.int32),
      shrink=zero,
      cosine=zero,
      fired=jnp.zeros((d_sae,), bool),
  )


def _weights(n_a: jax.Array, n_b: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Merge weights n_a / n and n_b / n (0, 0 when both are empty)."""
  n = (n_a + n_b).astype(jnp.float32)
  safe = jnp.maximum(n, 1.0)
  return n_a.astype(jnp.float32) / safe, n_b.astype(jnp.float32) / safe


@jax.jit
def quality_update(state: QualityState, x: jax.Array, x_hat: jax.Array,
                   codes: jax.Array) -> QualityState:
  """Merges one batch ``(x, x_hat, codes)`` into the evaluation state."""
  x, x_hat, codes = _rows(x), _rows(x_hat), _rows(codes)
  _check_pair(x, x_hat)
  if x.shape[-1] != state.mean.shape[0] or codes.shape[-1] != state.fired.shape[0]:
    raise DataError(
        f"batch has d_in={x.shape[-1]}, d_sae={codes.shape[-1]} but the state was made for "
        f"d_in={state.mean.shape[0]}, d_sae={state.fired.shape[0]}: call quality_init with the "
        "model's sizes")
  if codes.shape[0] != x.shape[0]:
    raise DataError(
        f"codes have {codes.shape[0]} examples but x has {x.shape[0]}: pass the codes of exactly "
        "the examples in x")
  n_b = jnp.asarray(x.shape[0], jnp.int32)
  if x.shape[0] == 0:
    return state
  w_a, w_b = _weights(state.count, n_b)

  mean_b = jnp.mean(x - x[:1], axis=0) + x[0]
  var_b = jnp.sum(jnp.square(x - mean_b)) / x.shape[0]
  delta = mean_b - state.mean
  mean = state.mean + w_b * delta
  var = w_a * state.var + w_b * var_b + w_a * w_b * jnp.sum(jnp.square(delta))

  err = w_a * state.err + w_b * jnp.mean(jnp.sum(jnp.square(x - x_hat), axis=-1))
  l0_b = jnp.mean(jnp.sum(codes != 0, axis=-1).astype(jnp.float32))
  l0_new = w_a * state.l0 + w_b * l0_b

  valid, ratio, cos = _norm_terms(x, x_hat)
  nv_b = jnp.sum(valid).astype(jnp.int32)
  v_a, v_b = _weights(state.norm_count, nv_b)
  safe_nv = jnp.maximum(nv_b, 1).astype(jnp.float32)
  shrink = v_a * state.shrink + v_b * jnp.sum(ratio) / safe_nv
  cosine = v_a * state.cosine + v_b * jnp.sum(cos) / safe_nv

  return QualityState(
      count=state.count + n_b,
      mean=mean,
      var=var,
      err=err,
      l0=l0_new,
      norm_count=state.norm_count + nv_b,
      shrink=shrink,
      cosine=cosine,
      fired=state.fired | jnp.any(codes != 0, axis=0),
  )


def quality_result(state: QualityState) -> dict[str, float]:
  """Final metrics of an evaluation.

  Returns:
    Dict with keys fvu, mse, l0, dead_fraction (latents that never fired over the evaluated
    tokens), shrinkage, cosine (floats; NaN where undefined, e.g. no tokens) and num_tokens (int).
  """
  count = int(state.count)
  var = float(state.var)
  err = float(state.err)
  nan = float("nan")
  d_in = state.mean.shape[0]
  d_sae = state.fired.shape[0]
  has_norm = int(state.norm_count) > 0
  return {
      "fvu": err / var if count > 0 and var > 0 else nan,
      "mse": err / d_in if count > 0 and d_in > 0 else nan,
      "l0": float(state.l0) if count > 0 else nan,
      "dead_fraction": float(np.mean(~np.asarray(state.fired))) if d_sae else nan,
      "shrinkage": float(state.shrink) if has_norm else nan,
      "cosine": float(state.cosine) if has_norm else nan,
      "num_tokens": count,
  }
