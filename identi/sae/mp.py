"""Matching-pursuit SAE (MP-SAE; Costa et al. 2025, "From Flat to Hierarchical: Extracting
Sparse Representations with Matching Pursuit").

The encoder is k steps of non-negative matching pursuit over the dictionary: from the centred
input r = x_s - b_dec, each step picks the atom with the largest positive correlation to the
residual, adds its least-squares coefficient to the code and subtracts its contribution. Atoms
chosen later explain what earlier ones left, so correlated features are not merged into one
encoder direction. The decoder is the usual codes @ W_dec + b_dec; training backpropagates
through the coefficients (the choices are discrete).
"""

import jax
import jax.numpy as jnp

from identi.errors import ConfigError
from identi.sae import precision
from identi.sae.base import SAE, check_positive_int


class MPSAE(SAE):
  """MP-SAE: codes are k steps of non-negative matching pursuit.

  Attributes:
    k: pursuit steps, so at most k active latents per sample (fewer when no atom correlates
      positively with the residual).
    tied: select and weigh atoms with the decoder rows (True, the paper's MP-SAE), or with the
      encoder's columns W_enc[:, i] (False: a learned analysis dictionary; b_enc unused either way).
  """

  k: int
  tied: bool = True

  def validate(self) -> None:
    check_positive_int("k", self.k, "MPSAE")
    if self.k > self.d_sae:
      raise ConfigError(f"MPSAE field 'k' is {self.k} but d_sae is {self.d_sae}; choose k "
                        f"between 1 and d_sae={self.d_sae}")
    if not isinstance(self.tied, bool):
      raise ConfigError(f"MPSAE field 'tied' is {self.tied!r}; use True or False")

  def activate(self, pre: jax.Array, train: bool) -> jax.Array:
    raise TypeError("MPSAE's codes come from matching pursuit over the dictionary (`code`), not "
                    "from a nonlinearity of pre-activations; call encode")

  def code(self, x_s: jax.Array, train: bool) -> tuple[jax.Array, jax.Array]:
    """(first-step correlations, codes) of scaled inputs, by k steps of matching pursuit."""
    del train
    atoms = self.W_dec if self.tied else self.W_enc.T  # (d_sae, d_in): what selects and weighs.
    norms_sq = jnp.maximum(jnp.sum(jnp.square(atoms), axis=1), 1e-12)
    inv_norm = jax.lax.rsqrt(norms_sq)
    residual = x_s - self.b_dec
    codes = jnp.zeros((x_s.shape[0], self.d_sae), jnp.float32)
    first = None
    rows = jnp.arange(x_s.shape[0])
    for _ in range(self.k):  # k is small and static: unrolled, so every step is differentiable.
      corr = precision.matmul(residual, atoms.T, self.matmul_dtype)
      if first is None:
        first = corr
      best = jnp.argmax(corr * inv_norm, axis=1)
      coeff = jnp.maximum(corr[rows, best] / norms_sq[best], 0.0)
      codes = codes.at[rows, best].add(coeff)
      residual = residual - coeff[:, None] * self.W_dec[best]
    return first, codes
