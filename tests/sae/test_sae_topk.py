"""Tests of the TopK SAE and the shared AuxK loss (identi/sae/topk.py)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from identi.errors import ConfigError
from identi.sae import TopKSAE, auxk_loss, init_sae

D_IN, D_SAE, K = 5, 12, 3


def _setup(b_enc=0.0):
  model = TopKSAE(d_in=D_IN, d_sae=D_SAE, k=K, k_aux=4)
  x = 3.0 * jax.random.normal(jax.random.key(0), (16, D_IN))
  variables = init_sae(model, jax.random.key(1), x)
  params = {**variables["params"], "b_enc": jnp.full((D_SAE,), b_enc)}
  return model, {**variables, "params": params}, x


def _pre(variables, x):
  p, s = variables["params"], variables["stats"]["input_scale"]
  return np.asarray((x * s - p["b_dec"]) @ p["W_enc"] + p["b_enc"])


def test_exactly_k_largest_activations_survive():
  model, variables, x = _setup(b_enc=5.0)  # every pre-activation positive
  codes = np.asarray(model.apply(variables, x, method="encode"))
  np.testing.assert_array_equal((codes != 0).sum(axis=1), K)
  pre = _pre(variables, x)
  expected = np.zeros_like(pre)
  top = np.argsort(-pre, axis=1)[:, :K]
  np.put_along_axis(expected, top, np.take_along_axis(pre, top, axis=1), axis=1)
  np.testing.assert_allclose(codes, expected, rtol=1e-5, atol=1e-5)


def test_fewer_positive_than_k_keeps_only_positive():
  model, variables, x = _setup(b_enc=-100.0)  # nothing positive
  codes = model.apply(variables, x, method="encode")
  assert int(jnp.count_nonzero(codes)) == 0


def test_code_gradient_reaches_only_kept_latents():
  model, variables, x = _setup(b_enc=5.0)

  def total_codes(b_enc):
    params = {**variables["params"], "b_enc": b_enc}
    return jnp.sum(model.apply({**variables, "params": params}, x[:1], method="encode"))

  grad = jax.grad(total_codes)(variables["params"]["b_enc"])
  kept = np.asarray(model.apply(variables, x[:1], method="encode"))[0] != 0
  np.testing.assert_array_equal(np.asarray(grad), kept.astype(np.float32))


@pytest.mark.parametrize("k", [0, 13, -1, True])
def test_k_outside_1_to_d_sae_raises_config_error(k):
  with pytest.raises(ConfigError, match="'k'"):
    TopKSAE(d_in=D_IN, d_sae=D_SAE, k=k)


def test_bad_k_aux_or_alpha_raise_config_error():
  with pytest.raises(ConfigError, match="'k_aux' is 0"):
    TopKSAE(d_in=D_IN, d_sae=D_SAE, k=2, k_aux=0)
  with pytest.raises(ConfigError, match="'aux_alpha' is -1"):
    TopKSAE(d_in=D_IN, d_sae=D_SAE, k=2, aux_alpha=-1.0)


@pytest.mark.parametrize("d_sae,k_aux,expected", [(2048, None, 512), (12, None, 6), (1, None, 1),
                                                   (12, 100, 12), (12, 4, 4)])
def test_effective_k_aux(d_sae, k_aux, expected):
  assert TopKSAE(d_in=4, d_sae=d_sae, k=1, k_aux=k_aux).effective_k_aux == expected


def test_sparsity_coeff_is_ignored_and_total_is_mse_plus_alpha_auxk():
  model, variables, x = _setup()
  dead = jnp.arange(D_SAE) >= 8
  total0, terms0, _ = model.apply(variables, x, method="loss", dead_mask=dead)
  total1, _, _ = model.apply(variables, x, method="loss", dead_mask=dead, sparsity_coeff=10.0)
  np.testing.assert_allclose(total0, total1)
  np.testing.assert_allclose(total0, terms0["mse"] + terms0["auxk"] / 32, rtol=1e-6)


def test_auxk_is_zero_without_dead_latents_and_matches_numpy_with_them():
  model, variables, x = _setup()
  for dead in (None, jnp.zeros((D_SAE,), bool)):
    total, terms, _ = model.apply(variables, x, method="loss", dead_mask=dead)
    assert float(terms["auxk"]) == 0.0
    np.testing.assert_allclose(total, terms["mse"])
  dead = np.arange(D_SAE) % 3 == 0  # 4 dead latents, k_aux = 4 uses all positive ones
  _, terms, codes = model.apply(variables, x, method="loss", dead_mask=jnp.asarray(dead))
  p, s = variables["params"], float(variables["stats"]["input_scale"])
  x_s = np.asarray(x) * s
  e = x_s - (np.asarray(codes) @ np.asarray(p["W_dec"]) + np.asarray(p["b_dec"]))
  aux_codes = np.where(dead, np.maximum(_pre(variables, x), 0.0), 0.0)
  e_hat = aux_codes @ np.asarray(p["W_dec"])
  expected = np.mean((e - e_hat) ** 2) / np.mean(e ** 2)
  assert expected > 0
  np.testing.assert_allclose(terms["auxk"], expected, rtol=1e-4)


def test_auxk_keeps_only_top_k_aux_dead_activations():
  acts = jnp.array([[3.0, 1.0, 2.0, 5.0]])
  w_dec = jnp.eye(4)
  residual = jnp.array([[3.0, 1.0, 2.0, 5.0]])
  dead = jnp.array([True, True, True, False])
  # k_aux=2 keeps latents 0 and 2 (3 and 2); e_hat = [3, 0, 2, 0]; error [0, 1, 0, 5].
  expected = (1.0 + 25.0) / (9.0 + 1.0 + 4.0 + 25.0)
  np.testing.assert_allclose(auxk_loss(acts, residual, w_dec, dead, 2), expected, rtol=1e-6)


def test_auxk_gradient_reaches_only_dead_latents():
  model, variables, x = _setup()
  dead = jnp.arange(D_SAE) >= 8

  def auxk(params):
    return model.apply({**variables, "params": params}, x, method="loss", dead_mask=dead)[1]["auxk"]

  grads = jax.grad(auxk)(variables["params"])
  col_norms = np.linalg.norm(np.asarray(grads["W_enc"]), axis=0)
  np.testing.assert_array_equal(col_norms[:8], 0.0)
  assert np.all(col_norms[8:] > 0), col_norms
  row_norms = np.linalg.norm(np.asarray(grads["W_dec"]), axis=1)
  np.testing.assert_array_equal(row_norms[:8], 0.0)
  assert np.all(row_norms[8:] > 0), row_norms


# 70: not a multiple of the CPU block size; with dead latents: the AuxK term on the sparse path.
@pytest.mark.parametrize("batch,with_dead", [(64, False), (70, True)])
def test_sparse_decoder_equals_dense_in_loss_codes_and_gradients(batch, with_dead):
  from identi.sae.topk import sparse_decode  # pylint: disable=g-import-not-at-top
  x = jnp.abs(jax.random.normal(jax.random.key(3), (batch, 24)))
  dead = (jnp.arange(256) % 3 == 0) if with_dead else None
  results = {}
  for decoder in ("dense", "sparse"):
    model = TopKSAE(d_in=24, d_sae=256, k=4, decoder=decoder)
    variables = init_sae(model, jax.random.key(4), x)

    def loss(params, model=model, variables=variables):
      total, terms, codes = model.apply({**variables, "params": params}, x, dead_mask=dead,
                                        method="loss")
      return total, (terms, codes)

    (total, (terms, codes)), grads = jax.value_and_grad(loss, has_aux=True)(variables["params"])
    results[decoder] = (total, terms, codes, grads)
  dense, sparse = results["dense"], results["sparse"]
  np.testing.assert_allclose(sparse[0], dense[0], rtol=1e-6)
  np.testing.assert_array_equal(sparse[2], dense[2])
  np.testing.assert_array_equal(sparse[1]["fired"], np.any(dense[2] > 0, axis=0))
  for name in dense[3]:
    np.testing.assert_allclose(sparse[3][name], dense[3][name], rtol=1e-5, atol=1e-7)
  values, indices = jax.lax.top_k(dense[2], 4)
  w = jax.random.normal(jax.random.key(5), (256, 24))
  np.testing.assert_allclose(sparse_decode(values, indices, w), dense[2] @ w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("width,k", [(680, 12), (257, 5), (64, 16), (100, 32)])
def test_row_top_k_equals_lax_top_k_with_ties_and_infinities(width, k):
  from identi.sae.topk import row_top_k  # pylint: disable=g-import-not-at-top
  a = np.array(jax.random.normal(jax.random.key(width), (33, width)), np.float32)
  a[0] = 1.0  # all tied: the lowest indices win
  a[1, ::3] = np.round(a[1, ::3])  # many ties among the largest
  a[2, :] = -np.inf
  a[2, 5] = 0.0  # fewer finite entries than k: -inf entries, lowest index first
  a[3, 7] = np.inf
  a[4] = -0.0
  a[4, 3] = 0.0
  values, indices = row_top_k(jnp.asarray(a), k)
  ref_values, ref_indices = jax.lax.top_k(jnp.asarray(a), k)
  np.testing.assert_array_equal(indices, ref_indices)
  np.testing.assert_array_equal(values, ref_values)


def test_topk_autoencode_input_gradient_equals_the_dense_one():
  from identi.sae.topk import topk_autoencode  # pylint: disable=g-import-not-at-top
  keys = jax.random.split(jax.random.key(9), 5)
  x = jax.random.normal(keys[0], (70, 24))
  w_enc, w_dec = jax.random.normal(keys[1], (24, 256)), jax.random.normal(keys[2], (256, 24))
  b_enc, b_dec = jax.random.normal(keys[3], (256,)), jax.random.normal(keys[4], (24,))
  r = jax.random.normal(jax.random.key(10), x.shape)

  def sparse(x, w_enc, b_enc, w_dec, b_dec):
    values, _, recon = topk_autoencode(x, w_enc, b_enc, w_dec, b_dec, 4)
    return jnp.sum(r * recon) + jnp.sum(values ** 2)

  def dense(x, w_enc, b_enc, w_dec, b_dec):
    pre = (x - b_dec) @ w_enc + b_enc
    values, indices = jax.lax.top_k(pre, 4)
    codes = jax.vmap(lambda i, v: jnp.zeros(256).at[i].set(v))(indices, jax.nn.relu(values))
    return jnp.sum(r * (codes @ w_dec + b_dec)) + jnp.sum(codes ** 2)

  args = (x, w_enc, b_enc, w_dec, b_dec)
  got = jax.grad(sparse, argnums=tuple(range(5)))(*args)
  want = jax.grad(dense, argnums=tuple(range(5)))(*args)
  for name, g, w in zip(("x", "W_enc", "b_enc", "W_dec", "b_dec"), got, want):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4, err_msg=name)


def test_decoder_auto_rule_and_bad_decoder():
  assert TopKSAE(d_in=8, d_sae=8192, k=32).sparse_decoder
  assert not TopKSAE(d_in=8, d_sae=512, k=6).sparse_decoder
  assert not TopKSAE(d_in=8, d_sae=8192, k=512).sparse_decoder
  assert TopKSAE(d_in=8, d_sae=64, k=4, decoder="sparse").sparse_decoder
  with pytest.raises(ConfigError, match="field 'decoder' is 'fast'"):
    TopKSAE(d_in=8, d_sae=64, k=4, decoder="fast")


def _topk_loss_and_grads(decoder, compute_dtype, x, dead, batch=None):
  """(total, (mse, codes)) and grads of a TopK loss on `batch` (default x); init from x."""
  model = TopKSAE(d_in=24, d_sae=256, k=4, decoder=decoder, compute_dtype=compute_dtype)
  variables = init_sae(model, jax.random.key(4), x)

  def loss(params):
    total, terms, codes = model.apply({**variables, "params": params},
                                      x if batch is None else batch, dead_mask=dead, method="loss")
    return total, (terms["mse"], codes)

  return jax.jit(jax.value_and_grad(loss, has_aux=True))(variables["params"])


def _assert_grads_close(actual, expected, rtol):
  """||actual - expected|| <= rtol * ||expected|| for every parameter's gradient."""
  for name, g in expected.items():
    err = float(jnp.linalg.norm(actual[name] - g))
    assert err <= rtol * float(jnp.linalg.norm(g)) + 1e-6, (name, err)


@pytest.mark.parametrize("with_dead", [False, True])
def test_bfloat16_sparse_and_dense_decoders_agree_and_track_float32(with_dead):
  # Both bf16 paths form the same bf16 products and accumulate in float32, so values agree up to
  # summation order; with AuxK the dense path rounds the summed pre-activation gradient to bf16
  # once and the sparse path its two parts apiece, so gradients agree to bf16 rounding. Against
  # float32 they differ by bf16 rounding (8 significant bits).
  x = jnp.abs(jax.random.normal(jax.random.key(3), (70, 24)))
  dead = (jnp.arange(256) % 3 == 0) if with_dead else None
  (ref, (ref_mse, ref_codes)), _ = _topk_loss_and_grads("dense", "float32", x, dead)
  results = {d: _topk_loss_and_grads(d, "bfloat16", x, dead) for d in ("dense", "sparse")}
  (dense, (dense_mse, dense_codes)), dense_grads = results["dense"]
  (sparse, (sparse_mse, sparse_codes)), sparse_grads = results["sparse"]
  chex.assert_type(jax.tree.leaves((sparse, sparse_grads, dense, dense_grads)), jnp.float32)
  chex.assert_trees_all_close(sparse, dense, rtol=1e-5)
  chex.assert_trees_all_close(sparse_codes, dense_codes, rtol=1e-5, atol=1e-6)
  _assert_grads_close(sparse_grads, dense_grads, 1e-2 if with_dead else 1e-5)
  chex.assert_trees_all_close((sparse, sparse_mse), (ref, ref_mse), rtol=2e-2)
  # Near-tied pre-activations may rank differently in bf16 (here 1 sample in 70), which moves
  # whole gradient rows: compare codes and gradients on the samples whose latents agree.
  same = np.all((np.asarray(sparse_codes) > 0) == (np.asarray(ref_codes) > 0), axis=1)
  assert same.mean() >= 0.95, same.mean()
  chex.assert_trees_all_close(sparse_codes[same], ref_codes[same],
                              atol=2e-2 * float(jnp.max(ref_codes)))
  _, ref_grads = _topk_loss_and_grads("dense", "float32", x, dead, batch=x[same])
  _, grads = _topk_loss_and_grads("sparse", "bfloat16", x, dead, batch=x[same])
  _assert_grads_close(grads, ref_grads, 5e-2)


def test_bfloat16_sparse_kernels_return_float32_close_to_the_dense_product():
  from identi.sae.topk import sparse_decode, topk_encode  # pylint: disable=g-import-not-at-top
  x = jax.random.normal(jax.random.key(6), (70, 24))
  w_enc = jax.random.normal(jax.random.key(7), (24, 256))
  b_enc = jnp.zeros((256,))
  values, indices = topk_encode(x, w_enc, b_enc, 4, jnp.bfloat16)
  chex.assert_type(values, jnp.float32)
  pre = np.asarray(x.astype(jnp.bfloat16), np.float64) @ np.asarray(w_enc.astype(jnp.bfloat16),
                                                                     np.float64)
  np.testing.assert_allclose(values, np.maximum(np.take_along_axis(pre, np.asarray(indices), 1),
                                                0), rtol=1e-5, atol=1e-5)
  w_dec = jax.random.normal(jax.random.key(5), (256, 24))
  codes = jax.vmap(lambda i, v: jnp.zeros(256).at[i].set(v))(indices, values)
  out = sparse_decode(values, indices, w_dec, jnp.bfloat16)
  chex.assert_type(out, jnp.float32)
  np.testing.assert_allclose(out, codes @ w_dec, rtol=3e-2, atol=3e-2 * float(jnp.abs(out).max()))
  r = jax.random.normal(jax.random.key(8), out.shape)
  f = lambda *a: jnp.sum(r * sparse_decode(*a))
  grads = jax.grad(f, argnums=(0, 2))(values, indices, w_dec, jnp.bfloat16)
  ref = jax.grad(f, argnums=(0, 2))(values, indices, w_dec)
  chex.assert_type(grads, jnp.float32)
  _assert_grads_close(dict(enumerate(grads)), dict(enumerate(ref)), 2e-2)


@pytest.mark.parametrize("shape", [(2, 4), (1, 8)])
def test_top_k_over_sharded_latents_is_exact(shape):
  """Under a mesh that splits the latents, the two-stage top-k equals jax.lax.top_k, ties
  included (lower index first)."""
  from identi.sae.topk import top_k_latents  # pylint: disable=g-import-not-at-top

  mesh = jax.make_mesh(shape, ("data", "model"),
                       axis_types=(jax.sharding.AxisType.Auto,) * 2)
  acts = jnp.round(jax.random.normal(jax.random.key(0), (16, 64)) * 2) / 2  # Many ties.
  acts = acts.at[3].set(1.0)  # A row of equal values: the first k latents win.
  spec = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data", "model"))
  with jax.set_mesh(mesh):
    values, indices = jax.jit(top_k_latents, static_argnums=1)(jax.device_put(acts, spec), 5)
  ref_values, ref_indices = jax.lax.top_k(acts, 5)
  np.testing.assert_array_equal(values, ref_values)
  np.testing.assert_array_equal(indices, ref_indices)
  np.testing.assert_array_equal(indices[3], np.arange(5))


@pytest.mark.parametrize("shape", [(2, 4), (1, 8)])
def test_batch_top_k_over_sharded_latents_is_exact(shape):
  """BatchTopK's selection over the whole batch, latents (and rows) sharded: the same codes and
  threshold statistics as the unsharded selection, ties included."""
  from identi.sae.batchtopk import batch_topk_codes  # pylint: disable=g-import-not-at-top

  mesh = jax.make_mesh(shape, ("data", "model"),
                       axis_types=(jax.sharding.AxisType.Auto,) * 2)
  acts = jax.nn.relu(jnp.round(jax.random.normal(jax.random.key(1), (16, 64)) * 2) / 2)
  acts = acts.at[3].set(1.5)  # Ties across shards at a kept value.
  spec = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data", "model"))
  with jax.set_mesh(mesh):
    got = jax.jit(batch_topk_codes, static_argnums=1)(jax.device_put(acts, spec), 3)
  want = batch_topk_codes(acts, 3)
  for g, w in zip(got, want):
    np.testing.assert_array_equal(g, w)
  assert np.sum(np.asarray(got[0]) > 0) == 3 * 16
