"""Tests of identi.hooks: capture, patch, module_paths and reduce_spatial on tiny Flax models."""
import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from identi import data, hooks
from identi.errors import ConfigError, DataError

# The module's fixtures are expensive: one worker runs all its tests (make test's --dist loadgroup).
pytestmark = pytest.mark.xdist_group("hooks")


class Block(nn.Module):
  features: int

  @nn.compact
  def __call__(self, x):
    return nn.relu(nn.Dense(self.features, name="lin")(x))


class MLP(nn.Module):
  def setup(self):
    self.enc = nn.Dense(8)
    self.mid = Block(8)
    self.dec = nn.Dense(3)

  def __call__(self, x):
    return self.dec(self.mid(self.enc(x)))


class ResBlock(nn.Module):
  @nn.compact
  def __call__(self, x):
    return x + nn.Conv(x.shape[-1], (3, 3), name="conv")(nn.relu(x))


class Stage(nn.Module):
  def setup(self):
    self.res_0 = ResBlock()
    self.res_1 = ResBlock()

  def __call__(self, x):
    return self.res_1(self.res_0(x))


class ConvNet(nn.Module):
  def setup(self):
    self.stem = nn.Conv(4, (3, 3))
    self.down_0 = Stage()
    self.mid = ResBlock()
    self.up_0 = Stage()
    self.head = nn.Conv(2, (1, 1))

  def __call__(self, x):
    return self.head(self.up_0(self.mid(self.down_0(self.stem(x)))))


class Shared(nn.Module):
  def setup(self):
    self.inp = nn.Dense(4)
    self.block = Block(4)
    self.out = nn.Dense(2)

  def __call__(self, x):
    return self.out(self.block(self.block(self.inp(x))))


class Split(nn.Module):
  @nn.compact
  def __call__(self, x):
    h = nn.Dense(4, name="lin")(x)
    return h, nn.relu(h)


class TupleModel(nn.Module):
  @nn.compact
  def __call__(self, x):
    a, b = Split(name="split")(x)
    return a * b


class Remat(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(2, name="out")(nn.remat(Block)(4, name="blk")(x))


CONV_PATHS = [
    "stem", "down_0", "down_0/res_0", "down_0/res_0/conv", "down_0/res_1", "down_0/res_1/conv",
    "mid", "mid/conv", "up_0", "up_0/res_0", "up_0/res_0/conv", "up_0/res_1", "up_0/res_1/conv",
    "head"]


def zero(h):
  return jax.tree.map(jnp.zeros_like, h)


def setup_model(model, shape):
  x = jax.random.normal(jax.random.key(1), shape)
  return model, model.init(jax.random.key(0), x), x


@pytest.fixture(scope="session")
def mlp():
  return setup_model(MLP(), (5, 6))


@pytest.fixture(scope="session")
def conv():
  return setup_model(ConvNet(), (2, 6, 6, 3))


@pytest.fixture(scope="session")
def shared():
  return setup_model(Shared(), (3, 4))


def dense(p, x):
  return x @ p["kernel"] + p["bias"]


def test_module_paths_list_the_tree_in_call_order(mlp, conv, shared):
  for (model, v, x), want in ((mlp, ["enc", "mid", "mid/lin", "dec"]), (conv, CONV_PATHS),
                              (shared, ["inp", "block", "block/lin", "out"])):
    assert hooks.module_paths(model.apply, v, x) == want


def test_capture_returns_the_intermediates(mlp):
  model, v, x = mlp
  out, acts = hooks.capture(model.apply, v, x, paths=("enc", "mid", "mid/lin", "dec"))
  p = v["params"]
  enc = dense(p["enc"], x)
  lin = dense(p["mid"]["lin"], enc)
  chex.assert_trees_all_close(acts, {"enc": enc, "mid": jax.nn.relu(lin), "mid/lin": lin,
                                     "dec": dense(p["dec"], jax.nn.relu(lin))}, atol=1e-6)
  ref, state = model.apply(v, x, capture_intermediates=True, mutable=["intermediates"])
  inter = state["intermediates"]
  chex.assert_trees_all_equal(out, ref, acts["dec"])
  chex.assert_trees_all_equal(acts, {"enc": inter["enc"]["__call__"][0],
                                     "mid": inter["mid"]["__call__"][0],
                                     "mid/lin": inter["mid"]["lin"]["__call__"][0],
                                     "dec": inter["dec"]["__call__"][0]})


def test_capture_nested_conv_matches_capture_intermediates(conv):
  model, v, x = conv
  out, acts = hooks.capture(model.apply, v, x, paths=CONV_PATHS)
  ref, state = model.apply(v, x, capture_intermediates=True, mutable=["intermediates"])
  chex.assert_trees_all_equal(out, ref)
  for path in CONV_PATHS:
    node = state["intermediates"]
    for name in path.split("/"):
      node = node[name]
    chex.assert_trees_all_equal(acts[path], node["__call__"][0])
  chex.assert_shape(acts["mid"], (2, 6, 6, 4))


def test_capture_under_jit_vmap_and_grad(mlp):
  model, v, x = mlp
  out, acts = hooks.capture(model.apply, v, x, paths=("mid",))
  jout, jacts = jax.jit(lambda v, x: hooks.capture(model.apply, v, x, paths=("mid",)))(v, x)
  chex.assert_trees_all_close((jout, jacts), (out, acts), atol=1e-6)

  vacts = jax.vmap(lambda r: hooks.capture(model.apply, v, r, paths="mid")[1]["mid"])(x)
  chex.assert_trees_all_close(vacts, acts["mid"], atol=1e-6)

  def via_capture(x):
    return hooks.capture(model.apply, v, x, paths=("mid",))[1]["mid"].sum()

  def by_hand(x):
    return model.apply(v, x, method=lambda m, x: m.mid(m.enc(x))).sum()

  chex.assert_trees_all_close(jax.grad(via_capture)(x), jax.grad(by_hand)(x), atol=1e-6)


def test_shared_module_yields_a_tuple_in_call_order(shared):
  model, v, x = shared
  out, acts = hooks.capture(model.apply, v, x, paths=("inp", "block", "block/lin"))
  p = v["params"]
  h0 = dense(p["inp"], x)
  l1 = dense(p["block"]["lin"], h0)
  l2 = dense(p["block"]["lin"], jax.nn.relu(l1))
  assert isinstance(acts["block"], tuple) and len(acts["block"]) == 2
  chex.assert_trees_all_close(acts, {"inp": h0, "block": (jax.nn.relu(l1), jax.nn.relu(l2)),
                                     "block/lin": (l1, l2)}, atol=1e-6)
  chex.assert_trees_all_close(out, dense(p["out"], jax.nn.relu(l2)), atol=1e-6)
  patched = hooks.patch(model.apply, v, x, path="block", edit_fn=zero)
  chex.assert_trees_all_equal(patched, jnp.broadcast_to(p["out"]["bias"], (3, 2)))


def test_tuple_outputs_are_returned_as_they_are():
  model, v, x = setup_model(TupleModel(), (3, 5))
  _, acts = hooks.capture(model.apply, v, x, paths=("split",))
  h = dense(v["params"]["split"]["lin"], x)
  chex.assert_trees_all_close(acts["split"], (h, jax.nn.relu(h)), atol=1e-6)
  out = hooks.patch(model.apply, v, x, path="split",
                    edit_fn=lambda ab: (ab[0], jnp.ones_like(ab[1])))
  chex.assert_trees_all_close(out, h, atol=1e-6)


def test_identity_patch_is_bit_for_bit(mlp, conv):
  for model, v, x in (mlp, conv):
    chex.assert_trees_all_equal(hooks.patch(model.apply, v, x, path="mid", edit_fn=lambda h: h),
                                model.apply(v, x))


def test_zeroing_patch_matches_hand_computed_model(mlp, conv):
  model, v, x = mlp
  chex.assert_trees_all_equal(hooks.patch(model.apply, v, x, path="mid", edit_fn=zero),
                              jnp.broadcast_to(v["params"]["dec"]["bias"], (5, 3)))
  model, v, x = conv
  want = model.apply(v, jnp.zeros((2, 6, 6, 4)), method=lambda m, h: m.head(m.up_0(h)))
  got = jax.jit(lambda v, x: hooks.patch(model.apply, v, x, path="mid", edit_fn=zero))(v, x)
  chex.assert_trees_all_close(got, want, atol=1e-6)


def test_several_edits_at_once(mlp):
  model, v, x = mlp
  p = v["params"]
  got = hooks.patch(model.apply, v, x, edits={"enc": lambda h: -h, "dec": lambda h: 2.0 * h})
  want = 2.0 * dense(p["dec"], jax.nn.relu(dense(p["mid"]["lin"], -dense(p["enc"], x))))
  chex.assert_trees_all_close(got, want, atol=1e-6)
  also = hooks.patch(model.apply, v, x, path="enc", edit_fn=lambda h: -h,
                     edits={"dec": lambda h: 2.0 * h})
  chex.assert_trees_all_equal(also, got)


def test_capture_with_edits_returns_edited_activations(mlp):
  model, v, x = mlp
  out, acts = hooks.capture(model.apply, v, x, paths=("mid", "dec"), edits={"mid": zero})
  chex.assert_trees_all_equal(acts["mid"], jnp.zeros((5, 8)))
  chex.assert_trees_all_equal(out, acts["dec"],
                              hooks.patch(model.apply, v, x, path="mid", edit_fn=zero))


def test_edits_change_only_downstream_values(conv):
  model, v, x = conv
  _, clean = hooks.capture(model.apply, v, x, paths=CONV_PATHS)
  _, edited = hooks.capture(model.apply, v, x, paths=CONV_PATHS,
                            edits={"down_0/res_1": lambda h: 2.0 * h})
  upstream = ["stem", "down_0/res_0", "down_0/res_0/conv", "down_0/res_1/conv"]
  for path in CONV_PATHS:
    same = bool(jnp.array_equal(clean[path], edited[path]))
    assert same == (path in upstream), path
  chex.assert_trees_all_equal(edited["down_0/res_1"], 2.0 * clean["down_0/res_1"])


def test_edit_changing_shape_or_dtype_raises_data_error(mlp):
  model, v, x = mlp
  with pytest.raises(DataError, match=r"'mid'.*float32\[5, 4\].*float32\[5, 8\]"):
    hooks.patch(model.apply, v, x, path="mid", edit_fn=lambda h: h[:, :4])
  with pytest.raises(DataError, match=r"'mid'.*float16\[5, 8\]"):
    jax.jit(lambda v, x: hooks.patch(model.apply, v, x, path="mid",
                                     edit_fn=lambda h: h.astype(jnp.float16)))(v, x)
  with pytest.raises(DataError, match="same tree"):
    hooks.capture(model.apply, v, x, paths=("mid",), edits={"mid": lambda h: (h, h)})


def test_unknown_path_raises_config_error_listing_close_names(mlp, conv):
  model, v, x = mlp
  with pytest.raises(ConfigError, match=r"'mdi'.*closest: mid.*available: enc, mid, mid/lin, dec"):
    hooks.capture(model.apply, v, x, paths=("mdi",))
  model, v, x = conv
  with pytest.raises(ConfigError, match=r"'up_0/res_2'.*closest: up_0/res_1, up_0/res_0"):
    hooks.patch(model.apply, v, x, path="up_0/res_2", edit_fn=zero)


def test_bad_arguments_raise_config_error(mlp):
  model, v, x = mlp
  with pytest.raises(ConfigError, match="jitted"):
    hooks.capture(jax.jit(model.apply), v, x, paths=("mid",))
  with pytest.raises(ConfigError, match="root"):
    hooks.capture(model.apply, v, x, paths=("",))
  with pytest.raises(ConfigError, match="no edit"):
    hooks.patch(model.apply, v, x)
  with pytest.raises(ConfigError, match="together"):
    hooks.patch(model.apply, v, x, path="mid")
  with pytest.raises(ConfigError, match="both"):
    hooks.patch(model.apply, v, x, path="mid", edit_fn=zero, edits={"mid": zero})


def test_lifted_transform_can_be_patched_not_captured():
  model, v, x = setup_model(Remat(), (3, 4))
  assert hooks.module_paths(model.apply, v, x) == ["blk", "blk/lin", "out"]
  with pytest.raises(ConfigError, match="lifted transform"):
    hooks.capture(model.apply, v, x, paths=("blk",))
  out, acts = hooks.capture(model.apply, v, x, paths=("out",))
  chex.assert_trees_all_equal(out, acts["out"])
  chex.assert_trees_all_equal(hooks.patch(model.apply, v, x, path="blk", edit_fn=zero),
                              jnp.broadcast_to(v["params"]["out"]["bias"], (3, 2)))


def test_other_method_names_are_hooked():
  class Coder(nn.Module):
    def setup(self):
      self.w = nn.Dense(3)

    def encode(self, x):
      return self.w(x)

    def __call__(self, x):
      return x

  class Outer(nn.Module):
    def setup(self):
      self.coder = Coder()

    def __call__(self, x):
      return self.coder(self.coder.encode(x))

  model, v, x = setup_model(Outer(), (2, 4))
  assert hooks.module_paths(model.apply, v, x, method_name="encode") == ["coder"]
  out, acts = hooks.capture(model.apply, v, x, paths=("coder",), method_name="encode")
  chex.assert_trees_all_equal(acts["coder"], out)


def test_reduce_spatial_shapes_values_and_errors():
  act = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
  chex.assert_shape(hooks.reduce_spatial(act, "flatten"), (2, 60))
  np.testing.assert_array_equal(hooks.reduce_spatial(act, "pool"), act.mean(axis=(1, 2)))
  pos = hooks.reduce_spatial(jnp.asarray(act), "position")
  chex.assert_shape(pos, (24, 5))
  np.testing.assert_array_equal(pos[(1 * 3 + 2) * 4 + 3], act[1, 2, 3])
  with pytest.raises(DataError, match=r"\(n, H, W, C\).*shape \(2, 60\)"):
    hooks.reduce_spatial(act.reshape(2, 60), "pool")
  with pytest.raises(ConfigError, match="mode='mean'"):
    hooks.reduce_spatial(act, "mean")


@pytest.mark.parametrize("mode", ["flatten", "pool", "position"])
def test_edit_spatial_inverts_reduce_spatial(mode):
  act = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 4, 5)), jnp.float32)
  np.testing.assert_array_equal(hooks.edit_spatial(act, mode, lambda r: r), act)
  shift = jnp.arange(hooks.reduce_spatial(act, mode).shape[1], dtype=jnp.float32)
  out = hooks.edit_spatial(act, mode, lambda r: r + shift)
  chex.assert_shape(out, act.shape)
  np.testing.assert_allclose(hooks.reduce_spatial(out, mode),
                             hooks.reduce_spatial(act, mode) + shift, atol=1e-5)
  if mode == "pool":  # Spatial detail is kept: every position moves by the same vector.
    np.testing.assert_allclose(out - act, jnp.broadcast_to(shift, act.shape), atol=1e-5)
  with pytest.raises(DataError, match="same shape"):
    hooks.edit_spatial(act, mode, lambda r: r[:1])


def test_captured_activations_round_trip_through_write_shards(conv, tmp_path):
  model, v, x = conv
  _, acts = hooks.capture(model.apply, v, x, paths=("mid",))
  rows = np.asarray(hooks.reduce_spatial(acts["mid"], "position"))
  data.write_shards(tmp_path / "mid", rows, rows_per_shard=50)
  source = data.open_source(tmp_path / "mid")
  assert (source.num_examples, source.dim) == (72, 4)
  np.testing.assert_array_equal(source.get(np.arange(72)), rows)
