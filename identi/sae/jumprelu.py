"""JumpReLU SAE (Rajamanoharan et al. 2024, "Jumping Ahead: Improving Reconstruction Fidelity with
JumpReLU Sparse Autoencoders").

Each latent has a learned threshold; codes below it are zeroed and an L0 penalty is trained
directly. The step function has zero gradient almost everywhere, so the threshold receives
straight-through pseudo-derivatives built from a rectangle kernel of width `bandwidth`.
"""

import functools
import math
import numbers

import jax
import jax.numpy as jnp

from identi.errors import ConfigError
from identi.sae.base import SAE, Terms


def _rectangle(u: jax.Array) -> jax.Array:
  """Rectangle kernel K(u) = 1[|u| < 1/2]."""
  return (jnp.abs(u) < 0.5).astype(u.dtype)


def _sum_to_shape(g: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  """Sums a broadcast cotangent back to the shape of the primal it was broadcast from."""
  g = jnp.sum(g, axis=tuple(range(g.ndim - len(shape))))
  axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
  return jnp.sum(g, axis=axes, keepdims=True) if axes else g


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def jumprelu(x: jax.Array, threshold: jax.Array, bandwidth: float) -> jax.Array:
  """x * H(x - threshold); threshold broadcasts against x.

  Pseudo-derivatives: d/dx = H(x - threshold); d/dthreshold = -(threshold / bandwidth) *
  K((x - threshold) / bandwidth).
  """
  return x * (x > threshold).astype(x.dtype)


def _jumprelu_fwd(x, threshold, bandwidth):
  return jumprelu(x, threshold, bandwidth), (x, threshold)


def _jumprelu_bwd(bandwidth, res, g):
  x, threshold = res
  g_x = g * (x > threshold).astype(g.dtype)
  g_t = -(threshold / bandwidth) * _rectangle((x - threshold) / bandwidth) * g
  return _sum_to_shape(g_x, jnp.shape(x)), _sum_to_shape(g_t, jnp.shape(threshold))


jumprelu.defvjp(_jumprelu_fwd, _jumprelu_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def heaviside_step(x: jax.Array, threshold: jax.Array, bandwidth: float) -> jax.Array:
  """H(x - threshold) as floats; threshold broadcasts against x.

  Pseudo-derivatives: d/dx = 0; d/dthreshold = -(1 / bandwidth) * K((x - threshold) / bandwidth).
  """
  return (x > threshold).astype(x.dtype)


def _step_fwd(x, threshold, bandwidth):
  return heaviside_step(x, threshold, bandwidth), (x, threshold)


def _step_bwd(bandwidth, res, g):
  x, threshold = res
  g_t = -(1.0 / bandwidth) * _rectangle((x - threshold) / bandwidth) * g
  return jnp.zeros_like(x), _sum_to_shape(g_t, jnp.shape(threshold))


heaviside_step.defvjp(_step_fwd, _step_bwd)


class JumpReLUSAE(SAE):
  """codes = jumprelu(relu(pre), exp(log_threshold)); loss = mse + sparsity_coeff * L0.

  Attributes:
    bandwidth: width of the rectangle kernel of the straight-through estimators (scaled units).
    init_threshold: initial value of every threshold (log_threshold = log(init_threshold)).
  """

  bandwidth: float = 1e-3
  init_threshold: float = 1e-3

  def validate(self) -> None:
    for name in ("bandwidth", "init_threshold"):
      value = getattr(self, name)
      if not (isinstance(value, numbers.Real) and value > 0 and math.isfinite(value)):
        raise ConfigError(f"JumpReLUSAE field '{name}' is {value!r}; it must be a positive finite "
                          "number, e.g. 1e-3")

  def setup(self) -> None:
    super().setup()
    log_init = math.log(self.init_threshold)
    self.log_threshold = self.param(
        "log_threshold", lambda key, shape: jnp.full(shape, log_init, jnp.float32), (self.d_sae,))

  @property
  def threshold(self) -> jax.Array:
    """Per-latent thresholds exp(log_threshold), (d_sae,)."""
    return jnp.exp(self.log_threshold)

  def activate(self, pre: jax.Array, train: bool) -> jax.Array:
    del train
    return jumprelu(jax.nn.relu(pre), self.threshold, float(self.bandwidth))

  def penalty(self, *, pre: jax.Array, codes: jax.Array, x_s: jax.Array, x_hat_s: jax.Array,
              sparsity_coeff: float, dead_mask: jax.Array | None) -> tuple[jax.Array, Terms]:
    del codes, x_s, x_hat_s, dead_mask
    steps = heaviside_step(jax.nn.relu(pre), self.threshold, float(self.bandwidth))
    l0_penalty = jnp.mean(jnp.sum(steps, axis=-1))
    return sparsity_coeff * l0_penalty, {"l0_penalty": l0_penalty}
