"""The diffusion subject's U-Net, cosine schedule and DDIM sampler."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from identi.subjects import diffusion

SHAPE = (4, 16, 16, 1)


def _init(model, **kwargs):
  """diffusion.init_params compiled as one program: Flax's eager init dispatches (and compiles)
  each op of the U-Net separately, which costs these tests seconds each."""
  return jax.jit(lambda key: diffusion.init_params(model, key, SHAPE[1:], **kwargs))(
      jax.random.key(0))


def _tiny():
  model = diffusion.UNet(channels=(8, 8, 16))
  return model, _init(model)


def _oracle(x0):
  """The exact noise of x_t given the known x0."""
  def eps_fn(x, t, i):
    ab = diffusion.alpha_bar(t)
    return (x - jnp.sqrt(ab) * x0) / jnp.sqrt(1.0 - ab)
  return eps_fn


def test_unet_shape_dtype_and_named_blocks():
  model, params = _tiny()
  x = jax.random.normal(jax.random.key(1), SHAPE)
  apply = jax.jit(model.apply)  # One compiled program: op-by-op dispatch of a U-Net is slow.
  for t in (jnp.float32(0.5), jnp.full((4,), 0.25)):
    eps = apply({"params": params}, x, t)
    assert eps.shape == SHAPE and eps.dtype == jnp.float32
  assert set(diffusion.BLOCK_NAMES) <= set(params)

  outputs = {}

  def capture(f, args, kwargs, context):
    y = f(*args, **kwargs)
    if context.method_name == "__call__":
      outputs["/".join(context.module.path)] = y.shape
    return y

  with nn.intercept_methods(capture):
    jax.eval_shape(model.apply, {"params": params}, x, 0.5)
  expected = {"down_0": (4, 16, 16, 8), "down_1": (4, 8, 8, 8), "mid": (4, 4, 4, 16),
              "up_1": (4, 8, 8, 8), "up_0": (4, 16, 16, 8), "out": SHAPE,
              "down_1/res_0": (4, 8, 8, 8)}
  for path, shape in expected.items():
    assert outputs[path] == shape, path


def test_mid_attention_and_more_res_blocks():
  model = diffusion.UNet(channels=(8, 8, 8), num_res_blocks=2, mid_attention=True)
  params = _init(model)
  assert {"res_0", "res_1", "attn"} <= set(params["mid"])
  assert jax.jit(model.apply)({"params": params}, jnp.zeros(SHAPE), 0.1).shape == SHAPE


def test_cosine_schedule_is_monotone_in_unit_interval():
  t = jnp.linspace(0.0, 1.0, 1001)
  ab = np.asarray(diffusion.alpha_bar(t))
  assert ab[0] == pytest.approx(1.0) and ab[-1] == pytest.approx(diffusion.ALPHA_BAR_MIN)
  assert np.all(ab > 0) and np.all(ab <= 1)
  assert np.all(np.diff(ab) <= 0) and np.all(np.diff(ab[:990]) < 0)
  # The cosine schedule's midpoint: cos^2(pi/4 * (1 + 2s) / (1 + s)) / cos^2(pi/2 s / (1 + s)).
  s = diffusion.COSINE_S
  mid = np.cos(np.pi / 4 * (1 + 2 * s) / (1 + s)) ** 2 / np.cos(np.pi / 2 * s / (1 + s)) ** 2
  assert float(diffusion.alpha_bar(0.5)) == pytest.approx(mid, rel=1e-5)


def test_q_sample_statistics():
  x0 = jnp.full((64, 16, 16, 1), 0.5)
  x_t, noise = diffusion.q_sample(jax.random.key(0), x0, 0.3)
  ab = float(diffusion.alpha_bar(0.3))
  assert float(jnp.mean(x_t)) == pytest.approx(np.sqrt(ab) * 0.5, abs=0.01)
  assert float(jnp.std(x_t)) == pytest.approx(np.sqrt(1 - ab), rel=0.02)
  np.testing.assert_allclose(x_t, np.sqrt(ab) * 0.5 + np.sqrt(1 - ab) * noise, atol=1e-6)
  per_example, _ = diffusion.q_sample(None, x0[:2], jnp.array([0.0, 1.0]), noise=noise[:2])
  np.testing.assert_allclose(per_example[0], x0[0], atol=1e-6)
  assert float(jnp.max(jnp.abs(per_example[1] - noise[1]))) < 0.01


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_with_an_oracle_returns_x0(eta):
  x0 = jax.random.uniform(jax.random.key(3), SHAPE, minval=-1.0, maxval=1.0)
  out, info = diffusion.ddim_sample(jax.random.key(4), _oracle(x0), SHAPE, 20, eta=eta,
                                    return_trajectory=True)
  np.testing.assert_allclose(out, x0, atol=1e-4)
  assert info["x"].shape == (21, *SHAPE)
  np.testing.assert_array_equal(info["x"][-1], out)
  assert float(jnp.std(info["x"][0])) > 0.8  # x_1 is noise.


def test_ddim_from_given_noise():
  x0 = jax.random.uniform(jax.random.key(3), SHAPE, minval=-1.0, maxval=1.0)
  x_init = jax.random.normal(jax.random.key(7), SHAPE)
  out, info = diffusion.ddim_sample(None, _oracle(x0), SHAPE, 5, x_init=x_init,
                                    return_trajectory=True)
  np.testing.assert_array_equal(info["x"][0], x_init)
  np.testing.assert_allclose(out, x0, atol=1e-4)
  with pytest.raises(ValueError, match="needs a key"):
    diffusion.ddim_sample(None, _oracle(x0), SHAPE, 5)


def test_eps_fn_is_called_once_per_step_and_can_be_patched():
  x0 = jnp.zeros(SHAPE)
  oracle = _oracle(x0)
  _, info = diffusion.ddim_sample(jax.random.key(0), lambda x, t, i: (oracle(x, t, i), (t, i)),
                                  SHAPE, 10, has_aux=True)
  ts, steps = info["aux"]
  np.testing.assert_array_equal(steps, np.arange(10))
  np.testing.assert_allclose(ts, diffusion.ddim_timesteps(10)[:-1])

  x1 = jnp.ones(SHAPE) * 0.5

  def patched(x, t, i):  # Steps 0-4 steer towards x1, the rest towards x0.
    return jnp.where(i < 5, _oracle(x1)(x, t, i), oracle(x, t, i))

  steered = diffusion.ddim_sample(jax.random.key(0), patched, SHAPE, 10)
  np.testing.assert_allclose(steered, x0, atol=1e-4)  # The last steps decide with an oracle.


def test_ddim_step_formula():
  x = jax.random.normal(jax.random.key(0), SHAPE)
  eps = jax.random.normal(jax.random.key(1), SHAPE)
  ab, ab_prev = diffusion.alpha_bar(0.6), diffusion.alpha_bar(0.4)
  x0 = (x - jnp.sqrt(1 - ab) * eps) / jnp.sqrt(ab)
  expected = jnp.sqrt(ab_prev) * x0 + jnp.sqrt(1 - ab_prev) * eps
  got = diffusion.ddim_step(x, eps, 0.6, 0.4, clip_x0=False)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match="key"):
    diffusion.ddim_step(x, eps, 0.6, 0.4, eta=0.5)


def test_sample_from_model_is_finite_and_in_range():
  model, params = _tiny()
  images = diffusion.sample(model, params, jax.random.key(0), SHAPE, num_steps=3)
  assert images.shape == SHAPE and bool(jnp.all(jnp.abs(images) <= 1.0))
  loss = diffusion.diffusion_loss(lambda x, t: model.apply({"params": params}, x, t),
                                  jax.random.key(1), images)
  assert np.isfinite(float(loss)) and float(loss) > 0


def _tiny_prompted():
  model = diffusion.UNet(channels=(8, 8, 16), vocab_size=12, text_dim=8)
  return model, _init(model, prompt_len=5)


def test_prompted_unet_reads_its_prompt_and_refuses_a_missing_one():
  model, params = _tiny_prompted()
  # Give the zero-initialised prompt paths weight, as training would.
  params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(3), p.shape), params)
  assert {"prompt", "prompt_proj"} <= set(params) and "cross" in params["mid"]
  assert "cross" in params["up_1"]
  x = jax.random.normal(jax.random.key(1), SHAPE)
  p = jnp.asarray([[3, 4, 0, 0, 0], [5, 0, 0, 0, 0], [0] * 5, [3, 4, 0, 0, 0]], jnp.int32)
  apply = jax.jit(model.apply)
  eps = apply({"params": params}, x, 0.5, p)
  assert eps.shape == SHAPE and bool(jnp.all(jnp.isfinite(eps)))
  assert not np.allclose(eps[0], apply({"params": params}, x, 0.5, p[jnp.asarray([1, 1, 2, 3])])[0])
  swapped = apply({"params": params}, x, 0.5, p.at[0].set(jnp.asarray([4, 3, 0, 0, 0])))
  np.testing.assert_allclose(swapped[0], eps[0], atol=1e-5)  # Order-free, as paraphrases are.
  with pytest.raises(ValueError, match="prompt token ids"):
    model.apply({"params": params}, x, 0.5)
  plain, plain_params = _tiny()
  with pytest.raises(ValueError, match="unconditional"):
    plain.apply({"params": plain_params}, x, 0.5, p)


def test_guided_eps_is_the_prompted_prediction_at_weight_one_and_extrapolates_beyond():
  def apply_fn(x, t, prompts):
    return x + prompts[:, :1, None, None].astype(jnp.float32)
  x = jnp.zeros((2, 4, 4, 1))
  prompt, empty = jnp.asarray([[2], [3]]), jnp.zeros((2, 1), jnp.int32)
  np.testing.assert_allclose(diffusion.guided_eps(apply_fn, x, 0.5, prompt, empty, 1.0)[:, 0, 0, 0],
                             [2.0, 3.0])
  np.testing.assert_allclose(diffusion.guided_eps(apply_fn, x, 0.5, prompt, empty, 3.0)[:, 0, 0, 0],
                             [6.0, 9.0])
  np.testing.assert_allclose(diffusion.guided_eps(apply_fn, x, 0.5, prompt, empty, 0.0)[:, 0, 0, 0],
                             [0.0, 0.0])
