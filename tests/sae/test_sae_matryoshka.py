"""Tests of the Matryoshka BatchTopK SAE (identi/sae/matryoshka.py)."""

import jax
import numpy as np
import pytest

from identi.errors import ConfigError
from identi.sae import BatchTopKSAE, MatryoshkaBatchTopKSAE, init_sae, make_sae

D_IN, D_SAE, K, B = 6, 16, 3, 32


def _setup(widths=(4, 8)):
  model = MatryoshkaBatchTopKSAE(d_in=D_IN, d_sae=D_SAE, k=K, widths=widths)
  x = 2.0 * jax.random.normal(jax.random.key(0), (B, D_IN)) + 0.5
  return model, init_sae(model, jax.random.key(1), x), x


def test_loss_adds_every_inner_prefix_reconstruction():
  model, variables, x = _setup()
  total, terms, codes = model.apply(variables, x, method="loss")
  p, s = variables["params"], float(variables["stats"]["input_scale"])
  x_s, codes = np.asarray(x) * s, np.asarray(codes)
  full = np.mean((x_s - (codes @ p["W_dec"] + p["b_dec"])) ** 2)
  inner = sum(np.mean((x_s - (codes[:, :w] @ p["W_dec"][:w] + p["b_dec"])) ** 2) for w in (4, 8))
  np.testing.assert_allclose(terms["mse"], full, rtol=1e-5)
  np.testing.assert_allclose(terms["prefix_mse"], inner, rtol=1e-5)
  np.testing.assert_allclose(total, full + inner + model.aux_alpha * terms["auxk"], rtol=1e-5)
  assert inner > full  # Shorter prefixes reconstruct worse: the terms are not trivial.


def test_codes_and_threshold_are_batchtopk():
  model, variables, x = _setup()
  plain = BatchTopKSAE(d_in=D_IN, d_sae=D_SAE, k=K)
  for train in (True, False):
    np.testing.assert_array_equal(
        model.apply(variables, x, method="encode", train=train),
        plain.apply(variables, x, method="encode", train=train))
  assert MatryoshkaBatchTopKSAE(d_in=4, d_sae=16, k=2).inner_widths == (4, 8)


@pytest.mark.parametrize("widths", [(8, 4), (0, 4), (4, 16), (4, 4), (2.5,)])
def test_bad_widths_are_refused(widths):
  with pytest.raises(ConfigError, match="field 'widths'.*strictly increasing"):
    make_sae("matryoshka", D_IN, D_SAE, k=K, widths=widths)
