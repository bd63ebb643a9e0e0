"""The optimiser and schedules: Adam with linear warm-up and decay, clipping, sparsity warm-up."""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections
import optax

from identi.train.config import sparsity_coeff


def learning_rate_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
  """Linear warm-up from 0, constant, then linear decay to 0 over the final decay fraction."""
  t = config.train
  warmup = min(t.warmup_steps, t.num_steps)
  decay = min(int(round(t.decay_fraction * t.num_steps)), t.num_steps - warmup)
  constant = t.num_steps - warmup - decay
  return optax.join_schedules(
      [optax.linear_schedule(0.0, t.learning_rate, max(warmup, 1)),
       optax.constant_schedule(t.learning_rate),
       optax.linear_schedule(t.learning_rate, 0.0, max(decay, 1))],
      boundaries=[warmup, warmup + constant])


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Gradient clipping by global norm (if grad_clip > 0) followed by Adam."""
  t = config.train
  adam = optax.adam(learning_rate_schedule(config), b1=t.b1, b2=t.b2)
  if t.grad_clip > 0:
    return optax.chain(optax.clip_by_global_norm(t.grad_clip), adam)
  return adam


def sparsity_schedule(config: ml_collections.ConfigDict):
  """step -> sparsity coefficient, ramped linearly from 0 over train.sparsity_warmup_steps."""
  coeff = sparsity_coeff(config)
  warmup = config.train.sparsity_warmup_steps

  def schedule(step):
    if warmup == 0:
      return jnp.asarray(coeff, jnp.float32)
    return coeff * jnp.minimum(1.0, step.astype(jnp.float32) / warmup)

  return schedule
