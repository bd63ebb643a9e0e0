"""Tests of the matching-pursuit SAE (identi/sae/mp.py) against a NumPy matching pursuit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from identi.errors import ConfigError
from identi.sae import MPSAE, init_sae, make_sae

D_IN, D_SAE, K, B = 8, 24, 3, 20


def _setup(tied=True):
  model = MPSAE(d_in=D_IN, d_sae=D_SAE, k=K, tied=tied)
  x = jax.random.normal(jax.random.key(0), (B, D_IN)) + 0.3
  variables = init_sae(model, jax.random.key(1), x)
  w_dec = variables["params"]["W_dec"] * jnp.linspace(0.5, 1.5, D_SAE)[:, None]
  return model, {**variables, "params": {**variables["params"], "W_dec": w_dec}}, x


def _numpy_mp(r, atoms, w_dec, k):
  codes = np.zeros((len(r), len(atoms)))
  norms_sq = (atoms ** 2).sum(axis=1)
  for n in range(len(r)):
    res = r[n].astype(np.float64)
    for _ in range(k):
      corr = atoms @ res
      i = int(np.argmax(corr / np.sqrt(norms_sq)))
      a = max(corr[i] / norms_sq[i], 0.0)
      codes[n, i] += a
      res = res - a * w_dec[i]
  return codes


@pytest.mark.parametrize("tied", [True, False])
def test_codes_are_non_negative_matching_pursuit(tied):
  model, variables, x = _setup(tied)
  codes = np.asarray(model.apply(variables, x, method="encode"))
  p = jax.tree.map(np.asarray, variables["params"])
  r = np.asarray(x) * float(variables["stats"]["input_scale"]) - p["b_dec"]
  atoms = p["W_dec"] if tied else p["W_enc"].T
  np.testing.assert_allclose(codes, _numpy_mp(r, atoms, p["W_dec"], K), rtol=1e-4, atol=1e-5)
  assert np.all(codes >= 0) and np.all((codes > 0).sum(axis=1) <= K)
  assert np.mean((codes > 0).sum(axis=1)) > 1.5


def test_more_steps_reconstruct_better_and_gradients_reach_the_dictionary():
  _, variables, x = _setup()
  mse = [float(MPSAE(d_in=D_IN, d_sae=D_SAE, k=k).apply(variables, x, method="loss")[1]["mse"])
         for k in (1, 2, 4)]
  assert mse[0] > mse[1] > mse[2]
  model = MPSAE(d_in=D_IN, d_sae=D_SAE, k=K)
  grads = jax.grad(lambda p: model.apply({**variables, "params": p}, x, method="loss")[0])(
      variables["params"])
  assert float(jnp.abs(grads["W_dec"]).max()) > 0 and float(jnp.abs(grads["b_dec"]).max()) > 0


def test_bad_hyper_parameters_are_refused():
  with pytest.raises(ConfigError, match="field 'k' is 30 but d_sae is 24"):
    make_sae("mp", D_IN, D_SAE, k=30)
  with pytest.raises(ConfigError, match="field 'tied' is 'yes'"):
    make_sae("mp", D_IN, D_SAE, k=2, tied="yes")
