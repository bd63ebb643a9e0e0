"""TopK SAE (Gao et al. 2024, "Scaling and evaluating sparse autoencoders") and the AuxK loss.

The AuxK machinery lives in :class:`KSparseSAE`, shared by TopK and BatchTopK: it reconstructs the
main model's residual from the top-k_aux pre-activations of the dead latents, which gives dead
latents a gradient and revives them.
"""

import jax
import jax.numpy as jnp

from identi.errors import ConfigError
from identi.sae.base import SAE, Terms, check_positive_int

#: Upper bound of the default k_aux; Gao et al. use 512 for their largest models.
MAX_DEFAULT_K_AUX = 512


def scatter_rows(zeros: jax.Array, values: jax.Array, indices: jax.Array) -> jax.Array:
  """`zeros` with `values` placed at `indices` along the last axis, row by row.

  A vmapped scatter keeps the batch axis a batching dimension, so a batch sharded over devices
  (explicit or automatic sharding) stays sharded without any collective.
  """
  return jax.vmap(lambda z, i, v: z.at[i].set(v, unique_indices=True))(zeros, indices, values)


def topk_codes(acts: jax.Array, k: int) -> jax.Array:
  """Keeps the k largest entries of each row of `acts` (ties broken by index), zeroing the rest."""
  values, indices = jax.lax.top_k(acts, k)
  return scatter_rows(jnp.zeros_like(acts), values, indices)


def auxk_loss(acts: jax.Array, residual: jax.Array, w_dec: jax.Array, dead_mask: jax.Array,
              k_aux: int) -> jax.Array:
  """Normalised MSE of reconstructing `residual` from the top-k_aux dead-latent activations.

  Args:
    acts: non-negative activations relu(pre), (batch, d_sae).
    residual: what the main reconstruction missed, x_s - x_hat_s; gradients are stopped here.
    w_dec: decoder (d_sae, d_in); the aux reconstruction uses no bias.
    dead_mask: bool (d_sae,), True for dead latents.
    k_aux: how many dead latents each sample may use (clipped to d_sae).

  Returns:
    mean((e - e_hat)^2) / mean(e^2), or 0 when no latent is dead.
  """
  residual = jax.lax.stop_gradient(residual)

  def normalised_mse(acts, residual, w_dec):
    dead_acts = jnp.where(dead_mask, acts, 0.0)
    aux_codes = topk_codes(dead_acts, min(k_aux, acts.shape[-1]))
    e_hat = aux_codes @ w_dec
    return jnp.mean(jnp.square(residual - e_hat)) / jnp.maximum(
        jnp.mean(jnp.square(residual)), jnp.finfo(jnp.float32).tiny)

  # The top-k_aux selection costs a partial sort per sample: skip it while no latent is dead.
  return jax.lax.cond(jnp.any(dead_mask), normalised_mse,
                      lambda *_: jnp.zeros((), jnp.float32), acts, residual, w_dec)


class KSparseSAE(SAE):
  """Base of the SAEs whose sparsity is fixed by k; adds the AuxK term.

  Attributes:
    k: number of active latents per sample (on average over the batch for BatchTopK).
    k_aux: dead latents used by AuxK per sample; None means min(d_sae // 2, 512) (at least 1),
      following Gao et al.'s advice of "a power of two close to d_model / 2", capped by their 512.
    aux_alpha: weight of the AuxK term (Gao et al. use 1/32).
  """

  k: int
  k_aux: int | None = None
  aux_alpha: float = 1.0 / 32.0

  def validate(self) -> None:
    owner = type(self).__name__
    check_positive_int("k", self.k, owner)
    if self.k > self.d_sae:
      raise ConfigError(f"{owner} field 'k' is {self.k} but d_sae is {self.d_sae}; "
                        f"choose k between 1 and d_sae={self.d_sae}")
    if self.k_aux is not None:
      check_positive_int("k_aux", self.k_aux, owner)
    if not self.aux_alpha >= 0.0:
      raise ConfigError(f"{owner} field 'aux_alpha' is {self.aux_alpha!r}; it must be >= 0 "
                        "(use 0 to switch AuxK off)")

  @property
  def effective_k_aux(self) -> int:
    """k_aux actually used: the field, or min(d_sae // 2, 512) (at least 1), clipped to d_sae."""
    k_aux = self.k_aux if self.k_aux is not None else min(self.d_sae // 2, MAX_DEFAULT_K_AUX)
    return max(1, min(k_aux, self.d_sae))

  def penalty(self, *, pre: jax.Array, codes: jax.Array, x_s: jax.Array, x_hat_s: jax.Array,
              sparsity_coeff: float, dead_mask: jax.Array | None) -> tuple[jax.Array, Terms]:
    del codes, sparsity_coeff
    if dead_mask is None:
      auxk = jnp.zeros((), jnp.float32)
    else:
      auxk = auxk_loss(jax.nn.relu(pre), x_s - x_hat_s, self.W_dec,
                       jnp.asarray(dead_mask, bool), self.effective_k_aux)
    return self.aux_alpha * auxk, {"auxk": auxk}


class TopKSAE(KSparseSAE):
  """codes = the k largest entries of relu(pre) per sample; sparsity_coeff is ignored."""

  def activate(self, pre: jax.Array, train: bool) -> jax.Array:
    del train
    return topk_codes(jax.nn.relu(pre), self.k)
