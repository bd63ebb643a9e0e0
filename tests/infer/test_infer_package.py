"""Tests for identi.infer.minimal_codes (identi/infer/__init__.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from identi.errors import ConfigError, DataError
from identi.generators import sparse_superposition
from identi.infer import minimal_atoms, minimal_codes
from identi.metrics.mcc import mcc
from identi.sae import make_sae

_SCALE = 2.0

# The module's fixtures are expensive: one worker runs all its tests (make test's --dist loadgroup).
pytestmark = pytest.mark.xdist_group("infer_package")


@pytest.fixture(scope="session")
def world():
  """A TopK SAE (k=4) whose tied weights are the demo world's true dictionary, input_scale 2."""
  data = sparse_superposition(jax.random.key(0), 2048)
  model = make_sae("topk", 64, 256, k=4)
  variables = model.init(jax.random.key(1), jnp.zeros((1, 64)))
  a = jnp.asarray(data["A"])
  params = {**variables["params"], "W_enc": a, "W_dec": a.T, "b_dec": jnp.zeros((64,))}
  variables = {"params": params, "stats": {"input_scale": jnp.asarray(_SCALE)}}
  return data, model, variables


def test_omp_codes_beat_the_encoder_in_encoder_units(world):
  data, model, variables = world
  enc = np.asarray(model.apply(variables, data["x"], method=model.encode))
  codes = minimal_codes(model, variables, data["x"])
  assert codes.shape == (2048, 256) and codes.dtype == np.float32
  assert np.all(np.sum(codes > 0, axis=1) <= 8)  # max_atoms defaults to 2 k
  # Scaled space: x_s = 2 x = (2 z) A^T, so the sparsest code is 2 z, as the encoder's would be.
  exact = np.all((codes > 0) == (data["z"] > 0), axis=1)
  assert np.mean(exact) > 0.95
  np.testing.assert_allclose(codes[exact], _SCALE * data["z"][exact], atol=1e-3)
  assert mcc(data["z"], codes).mcc > 0.97 > mcc(data["z"], enc).mcc


def test_chunking_and_fista_path(world):
  data, model, variables = world
  whole = minimal_codes(model, variables, data["x"])
  chunked = minimal_codes(model, variables, data["x"], batch_size=700)
  np.testing.assert_allclose(chunked, whole, atol=1e-5)
  codes = minimal_codes(model, variables, data["x"], method="fista", lam=0.02, num_iters=100)
  assert np.all(codes >= 0)
  assert mcc(data["z"], codes).mcc > 0.97


def test_bad_input_raises_errors_naming_the_fix(world):
  data, model, variables = world
  with pytest.raises(ConfigError, match="method='lasso' is unknown"):
    minimal_codes(model, variables, data["x"], method="lasso")
  with pytest.raises(DataError, match=r"shape \(2048, 63\)"):
    minimal_codes(model, variables, data["x"][:, :63])
  with pytest.raises(DataError, match=r"lack stats \['input_scale'\]"):
    minimal_codes(model, {"params": variables["params"]}, data["x"])
  with pytest.raises(ConfigError, match="pass an identi SAE module"):
    minimal_codes(object(), variables, data["x"])


@pytest.fixture(scope="session")
def duplicated(world):
  """The world's SAE with 256 extra atoms: near-copies (cosine 0.9) that the encoder never uses."""
  data, _, variables = world
  model = make_sae("topk", 64, 512, k=4)
  a = np.asarray(variables["params"]["W_dec"])
  noise = np.array(jax.random.normal(jax.random.key(2), a.shape))
  noise -= np.sum(noise * a, axis=1, keepdims=True) * a
  noise /= np.linalg.norm(noise, axis=1, keepdims=True)
  copies = 0.9 * a + np.sqrt(1 - 0.81) * noise
  params = dict(model.init(jax.random.key(3), jnp.zeros((1, 64)))["params"])
  params.update(W_dec=jnp.asarray(np.concatenate([a, copies])), b_dec=jnp.zeros((64,)),
                W_enc=jnp.asarray(np.concatenate([a.T, np.zeros_like(a.T)], axis=1)))
  return data, model, {"params": params, "stats": variables["stats"]}


def test_minimal_atoms_drop_the_less_used_of_near_duplicates(duplicated):
  data, model, variables = duplicated
  mask = minimal_atoms(model, variables, data["x"])
  np.testing.assert_array_equal(mask, np.arange(512) < 256)
  assert minimal_atoms(model, variables, data["x"], max_cosine=0.95).all()  # 0.9 < 0.95
  codes = minimal_codes(model, variables, data["x"], atoms=mask)
  assert not codes[:, 256:].any()
  assert mcc(data["z"], codes).mcc > 0.97
  chunked = minimal_codes(model, variables, data["x"], atoms=mask, batch_size=700)
  np.testing.assert_allclose(chunked, codes, atol=1e-5)


def test_minimal_atoms_bad_input(duplicated):
  data, model, variables = duplicated
  with pytest.raises(ConfigError, match="max_cosine=1.5 is outside"):
    minimal_atoms(model, variables, data["x"], max_cosine=1.5)
  with pytest.raises(DataError, match=r"bool \(512,\) mask"):
    minimal_codes(model, variables, data["x"], atoms=np.ones(256, bool))
  with pytest.raises(DataError, match="at least one True"):
    minimal_codes(model, variables, data["x"], atoms=np.zeros(512, bool))
