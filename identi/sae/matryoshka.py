"""Matryoshka BatchTopK SAE (Bussmann, Nabeshima, Karvonen and Nanda 2025, "Learning
Multi-Level Features with Matryoshka Sparse Autoencoders").

The dictionary is read as nested prefixes: latents [0, w_1), [0, w_2), ..., [0, d_sae). Every
prefix must reconstruct the input on its own, so the first latents learn the general features
and later ones refine them instead of absorbing them. Codes, AuxK and the inference threshold are
BatchTopK's; the loss adds the reconstruction error of every inner prefix to the full one.
"""

import jax
import jax.numpy as jnp

from identi.errors import ConfigError
from identi.sae import precision
from identi.sae.base import Terms
from identi.sae.batchtopk import BatchTopKSAE


class MatryoshkaBatchTopKSAE(BatchTopKSAE):
  """BatchTopK with nested-prefix reconstruction losses.

  Attributes:
    widths: the inner prefix widths, strictly increasing, each in [1, d_sae); () means
      (d_sae // 4, d_sae // 2). The full dictionary is always the last prefix.
  """

  widths: tuple[int, ...] = ()

  def validate(self) -> None:
    super().validate()
    widths = tuple(self.widths)
    ok = all(isinstance(w, int) and not isinstance(w, bool) for w in widths)
    if not ok or any(not 1 <= w < self.d_sae for w in widths) or list(widths) != sorted(
        set(widths)):
      raise ConfigError(f"MatryoshkaBatchTopKSAE field 'widths' is {self.widths!r}; give strictly "
                        f"increasing integers in [1, {self.d_sae}) (the inner prefixes), e.g. "
                        f"({max(1, self.d_sae // 4)}, {max(1, self.d_sae // 2)})")

  @property
  def inner_widths(self) -> tuple[int, ...]:
    if self.widths:
      return tuple(self.widths)
    return tuple(sorted({w for w in (self.d_sae // 4, self.d_sae // 2) if 1 <= w < self.d_sae}))

  def penalty(self, *, pre: jax.Array, codes: jax.Array, x_s: jax.Array, x_hat_s: jax.Array,
              sparsity_coeff: float, dead_mask: jax.Array | None) -> tuple[jax.Array, Terms]:
    extra, terms = super().penalty(pre=pre, codes=codes, x_s=x_s, x_hat_s=x_hat_s,
                                   sparsity_coeff=sparsity_coeff, dead_mask=dead_mask)
    inner = [jnp.mean(jnp.square(x_s - (precision.matmul(codes[:, :w], self.W_dec[:w],
                                                         self.matmul_dtype) + self.b_dec)))
             for w in self.inner_widths]
    prefix = sum(inner, jnp.zeros((), jnp.float32))
    return extra + prefix, {**terms, "prefix_mse": prefix}
