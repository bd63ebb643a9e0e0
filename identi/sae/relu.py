"""ReLU SAE with the decoder-norm-weighted L1 penalty (Anthropic, "Towards Monosemanticity" and
the April 2024 update): weighting each code by its dictionary vector's norm stops the model from
shrinking codes by growing decoder rows, so no decoder renormalisation is needed."""

import jax
import jax.numpy as jnp

from identi.sae.base import SAE, Terms


class ReLUSAE(SAE):
  """codes = relu(pre); loss = mse + sparsity_coeff * sum_i codes_i * ||W_dec[i]|| (batch mean)."""

  def activate(self, pre: jax.Array, train: bool) -> jax.Array:
    del train
    return jax.nn.relu(pre)

  def penalty(self, *, pre: jax.Array, codes: jax.Array, x_s: jax.Array, x_hat_s: jax.Array,
              sparsity_coeff: float, dead_mask: jax.Array | None) -> tuple[jax.Array, Terms]:
    del pre, x_s, x_hat_s, dead_mask
    l1 = jnp.mean(codes @ jnp.linalg.norm(self.W_dec, axis=-1))
    return sparsity_coeff * l1, {"l1": l1}
