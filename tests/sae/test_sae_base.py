"""Shared-interface tests of every SAE type (identi/sae/base.py)."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

from identi.errors import ConfigError, DataError
from identi.sae import init_sae, make_sae

D_IN, D_SAE = 6, 16
HPARAMS = {"relu": {}, "topk": {"k": 3}, "batchtopk": {"k": 3}, "jumprelu": {}}
KINDS = tuple(HPARAMS)


def _model(kind):
  return make_sae(kind, D_IN, D_SAE, **HPARAMS[kind])


def _data(n=32, seed=0):
  # Non-unit scale so that input_scale is far from 1 and raw/scaled mix-ups show.
  return 5.0 * jax.random.normal(jax.random.key(seed), (n, D_IN)) + 2.0


@functools.lru_cache(maxsize=None)
def _setup(kind):
  model = _model(kind)
  x = _data()
  return model, init_sae(model, jax.random.key(1), x), x


@pytest.mark.parametrize("kind", KINDS)
def test_variables_have_the_shared_layout(kind):
  model, variables, _ = _setup(kind)
  params, stats = variables["params"], variables["stats"]
  chex.assert_shape([params["W_enc"], params["b_enc"], params["W_dec"], params["b_dec"]],
                    [(D_IN, D_SAE), (D_SAE,), (D_SAE, D_IN), (D_IN,)])
  chex.assert_shape(stats["input_scale"], ())
  chex.assert_type(jax.tree.leaves(variables), jnp.float32)
  assert float(stats["input_scale"]) < 0.5  # inputs have norm ~ 5 sqrt(d) + 2 sqrt(d)
  assert model.d_in == D_IN and model.d_sae == D_SAE


@pytest.mark.parametrize("kind", KINDS)
def test_encode_decode_call_and_loss_agree_with_hand_computation(kind):
  model, variables, x = _setup(kind)
  p, s = variables["params"], variables["stats"]["input_scale"]
  codes = model.apply(variables, x, method="encode")
  chex.assert_shape(codes, (x.shape[0], D_SAE))
  assert bool(jnp.all(codes >= 0)) and bool(jnp.any(codes > 0))
  x_hat = model.apply(variables, codes, method="decode")
  np.testing.assert_allclose(x_hat, (codes @ p["W_dec"] + p["b_dec"]) / s, rtol=1e-5, atol=1e-4)
  codes2, x_hat2 = model.apply(variables, x)
  np.testing.assert_allclose(codes2, codes, atol=1e-6)
  np.testing.assert_allclose(x_hat2, x_hat, atol=1e-5)
  # Active codes are the (relu'd) pre-activations of the scaled input.
  pre = (x * s - p["b_dec"]) @ p["W_enc"] + p["b_enc"]
  active = codes > 0
  np.testing.assert_allclose(codes[active], pre[active], rtol=1e-5, atol=1e-5)
  total, terms, loss_codes = model.apply(variables, x, method="loss", train=False)
  np.testing.assert_allclose(loss_codes, codes, atol=1e-6)
  mse = np.mean((np.asarray(x * s) - np.asarray(x_hat * s)) ** 2)
  np.testing.assert_allclose(terms["mse"], mse, rtol=1e-4)
  np.testing.assert_allclose(terms["l0"], np.mean(np.sum(np.asarray(codes) != 0, axis=1)))
  assert float(total) >= float(terms["mse"])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", ["encode", "loss", "__call__"])
def test_non_2d_or_wrong_width_input_raises_data_error(kind, method):
  model, variables, _ = _setup(kind)
  with pytest.raises(DataError, match=r"\(2, 3, 6\).*2-D"):
    model.apply(variables, jnp.ones((2, 3, D_IN)), method=method)
  with pytest.raises(DataError, match=r"shape \(4, 5\).*d_in=6"):
    jax.jit(lambda v, x: model.apply(v, x, method=method))(variables, jnp.ones((4, 5)))


@pytest.mark.parametrize("kind", KINDS)
def test_dead_mask_of_wrong_shape_raises_data_error(kind):
  model, variables, x = _setup(kind)
  with pytest.raises(DataError, match=r"dead_mask has shape \(3,\); expected \(16,\)"):
    model.apply(variables, x, method="loss", dead_mask=jnp.ones((3,), bool))


def test_bad_sizes_raise_config_error():
  with pytest.raises(ConfigError, match="'d_sae' is 0"):
    make_sae("relu", 4, 0)
  with pytest.raises(ConfigError, match="'d_in' is 2.5"):
    make_sae("relu", 2.5, 4)


def test_bad_compute_dtype_raises_config_error():
  with pytest.raises(ConfigError, match="ReLUSAE field 'compute_dtype' is 'float16'; use one of "
                                        "float32, bfloat16"):
    make_sae("relu", 4, 8, compute_dtype="float16")


def _loss_grads_and_forward(model, variables, x):
  """(loss, terms, grads) of the training loss with dead latents, and (codes, x_hat) of apply."""
  def total(params):
    (value, terms, _), _ = model.apply({**variables, "params": params}, x, method="loss",
                                       sparsity_coeff=0.1, dead_mask=jnp.arange(D_SAE) < 4,
                                       mutable=["stats"])
    return value, terms

  (value, terms), grads = jax.jit(jax.value_and_grad(total, has_aux=True))(variables["params"])
  return value, terms, grads, jax.jit(model.apply)(variables, x)


def _assert_relative_close(actual, expected, rtol):
  """||actual - expected|| <= rtol * ||expected|| leaf by leaf (a bf16-sized error budget)."""
  for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
    a, e = np.asarray(a, np.float64), np.asarray(e, np.float64)
    assert np.linalg.norm(a - e) <= rtol * np.linalg.norm(e) + 1e-6, (np.linalg.norm(a - e),
                                                                       np.linalg.norm(e))


@pytest.mark.parametrize("kind", KINDS)
def test_bfloat16_compute_tracks_float32_with_float32_params_and_grads(kind):
  model, variables, x = _setup(kind)
  bf16 = make_sae(kind, D_IN, D_SAE, compute_dtype=jnp.bfloat16, **HPARAMS[kind])
  assert bf16.matmul_dtype == jnp.bfloat16 and model.matmul_dtype == jnp.float32
  chex.assert_type(jax.tree.leaves(bf16.init(jax.random.key(0), x[:1])), jnp.float32)
  value, terms, grads, (codes, x_hat) = _loss_grads_and_forward(model, variables, x)
  value16, terms16, grads16, (codes16, x_hat16) = _loss_grads_and_forward(bf16, variables, x)
  chex.assert_type([value16, terms16["mse"], codes16, x_hat16], jnp.float32)
  chex.assert_type(jax.tree.leaves(grads16), jnp.float32)
  chex.assert_tree_all_finite(grads16)
  # bfloat16 keeps 8 significant bits: operands are off by up to 0.4%, results by about as much.
  chex.assert_trees_all_close(value16, value, rtol=2e-2)
  chex.assert_trees_all_close(terms16["mse"], terms["mse"], rtol=2e-2)
  chex.assert_trees_all_close(codes16, codes, atol=2e-2 * float(jnp.max(codes)))
  _assert_relative_close(x_hat16, x_hat, 2e-2)
  _assert_relative_close(grads16, grads, 5e-2)


@pytest.mark.parametrize("kind", KINDS)
def test_bfloat16_loss_and_grads_with_batch_explicitly_sharded_over_8_devices(kind):
  _, variables, x = _setup(kind)
  model = make_sae(kind, D_IN, D_SAE, compute_dtype="bfloat16", **HPARAMS[kind])
  mesh = jax.make_mesh((8,), ("data",), axis_types=(AxisType.Explicit,))
  xs = jax.device_put(x, NamedSharding(mesh, P("data")))
  vs = jax.device_put(variables, NamedSharding(mesh, P()))
  ref = _loss_grads_and_forward(model, variables, x)
  with jax.set_mesh(mesh):
    sharded = _loss_grads_and_forward(model, vs, xs)
  chex.assert_type(jax.tree.leaves(sharded[2]), jnp.float32)
  chex.assert_trees_all_close(sharded[0], ref[0], rtol=1e-5)
  chex.assert_trees_all_close(sharded[2], ref[2], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_jit_grad_reaches_every_parameter(kind):
  model, variables, x = _setup(kind)
  dead = jnp.arange(D_SAE) < 4

  def total(params):
    out, _ = model.apply({**variables, "params": params}, x, method="loss", sparsity_coeff=0.1,
                         dead_mask=dead, mutable=["stats"])
    return out[0]

  grads = jax.jit(jax.grad(total))(variables["params"])
  chex.assert_trees_all_equal_shapes(grads, variables["params"])
  chex.assert_tree_all_finite(grads)
  for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
    assert float(jnp.abs(grads[name]).max()) > 0, name


@pytest.mark.parametrize("axis_type", [AxisType.Explicit, AxisType.Auto])
@pytest.mark.parametrize("kind", KINDS)
def test_forward_and_loss_with_batch_sharded_over_8_devices(kind, axis_type):
  model, variables, x = _setup(kind)
  mesh = jax.make_mesh((8,), ("data",), axis_types=(axis_type,))
  xs = jax.device_put(x, NamedSharding(mesh, P("data")))
  vs = jax.device_put(variables, NamedSharding(mesh, P()))
  codes, x_hat = jax.jit(model.apply)(vs, xs)
  assert codes.sharding.spec[0] == "data"
  ref_codes, ref_x_hat = model.apply(variables, x)
  np.testing.assert_allclose(codes, ref_codes, atol=1e-5)
  np.testing.assert_allclose(x_hat, ref_x_hat, rtol=1e-5, atol=1e-4)
  loss = jax.jit(lambda v, x: model.apply(v, x, method="loss", dead_mask=jnp.arange(D_SAE) < 4,
                                          mutable=["stats"])[0][0])
  with jax.set_mesh(mesh):
    sharded = loss(vs, xs)
  np.testing.assert_allclose(sharded, loss(variables, x), rtol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_loss_decreases_under_adam(kind):
  model, variables, x = _setup(kind)
  opt = optax.adam(1e-2)

  @jax.jit
  def step(params, opt_state, stats):
    def total(params):
      (out, new_vars) = model.apply({"params": params, "stats": stats}, x, method="loss",
                                    sparsity_coeff=1e-3, mutable=["stats"])
      return out[0], new_vars["stats"]

    (value, stats), grads = jax.value_and_grad(total, has_aux=True)(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, stats, value

  params, stats = variables["params"], variables["stats"]
  opt_state = opt.init(params)
  values = []
  for _ in range(30):
    params, opt_state, stats, value = step(params, opt_state, stats)
    values.append(float(value))
  assert values[-1] < 0.7 * values[0], values
