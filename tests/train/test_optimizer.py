"""Learning-rate and sparsity schedules, and clipping."""

import jax.numpy as jnp
import numpy as np
import optax

from identi.train import default_config, learning_rate_schedule, make_optimizer, sparsity_schedule


def _config(**train):
  config = default_config()
  for k, v in train.items():
    config.train[k] = v
  return config


def test_learning_rate_warms_up_holds_and_decays_to_zero():
  config = _config(num_steps=100, warmup_steps=10, decay_fraction=0.2, learning_rate=1e-2)
  lr = learning_rate_schedule(config)
  np.testing.assert_allclose([lr(0), lr(5), lr(10), lr(50), lr(80), lr(90), lr(100)],
                             [0.0, 5e-3, 1e-2, 1e-2, 1e-2, 5e-3, 0.0], atol=1e-9)


def test_sparsity_coefficient_ramps_linearly():
  config = _config(sparsity_warmup_steps=100)
  config.sae.kind = "relu"
  config.sae.l1_coeff = 2.0
  coeff = sparsity_schedule(config)
  np.testing.assert_allclose([coeff(jnp.int32(s)) for s in (0, 25, 100, 500)],
                             [0.0, 0.5, 2.0, 2.0])
  config.train.sparsity_warmup_steps = 0
  assert float(sparsity_schedule(config)(jnp.int32(0))) == 2.0


def test_topk_has_no_sparsity_coefficient():
  assert float(sparsity_schedule(_config())(jnp.int32(10))) == 0.0


def test_gradients_are_clipped_by_global_norm():
  config = _config(grad_clip=1.0, warmup_steps=0, learning_rate=1.0, b1=0.0, b2=0.0)
  tx = make_optimizer(config)
  params = {"w": jnp.zeros(4)}
  grads = {"w": jnp.array([30.0, 40.0, 0.0, 0.0])}
  clipped, _ = optax.clip_by_global_norm(1.0).update(grads, None)
  np.testing.assert_allclose(optax.tree.norm(clipped), 1.0, rtol=1e-6)
  updates, _ = tx.update(grads, tx.init(params), params)
  assert np.all(np.isfinite(updates["w"]))
