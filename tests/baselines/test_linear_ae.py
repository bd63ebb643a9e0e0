"""Tests for identi.baselines.linear_ae."""
import chex
import jax
import numpy as np
import pytest

from identi.baselines import fit_linear_ae
from identi.errors import ConfigError
from identi.generators import sparse_superposition
from identi.metrics import fvu
from identi.metrics.mcc import mcc


def _low_rank(n=2048, d=16, rank=4, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=(n, rank)) @ rng.normal(size=(rank, d)) * 3.0 + 5.0).astype(np.float32)


def test_reaches_low_fvu_on_low_rank_data():
  x = _low_rank()
  model = fit_linear_ae(0, x, 4, num_steps=1500, learning_rate=3e-3)
  assert model.name == "linear_ae" and model.width == 4
  codes = model.encode(x)
  chex.assert_shape(codes, (2048, 4))
  assert float(fvu(x, model.decode(codes))) < 0.01
  # Too narrow to hold the rank-4 signal: at least the variance of the weakest direction is lost.
  narrow = fit_linear_ae(0, x, 2, num_steps=1500, learning_rate=3e-3)
  s = np.linalg.svd(x - x.mean(0), compute_uv=False)
  lost = np.sum(s[2:] ** 2) / np.sum(s ** 2)
  assert float(fvu(x, narrow.decode(narrow.encode(x)))) >= lost - 1e-3


def test_same_seed_same_weights_and_errors():
  x = _low_rank(n=256)
  a = fit_linear_ae(jax.random.key(3), x, 4, num_steps=20)
  b = fit_linear_ae(3, x, 4, num_steps=20)
  np.testing.assert_array_equal(a.W_enc, b.W_enc)
  with pytest.raises(ConfigError, match="num_steps=0"):
    fit_linear_ae(0, x, 4, num_steps=0)
  with pytest.raises(ConfigError, match="width=-1"):
    fit_linear_ae(0, x, -1)


def test_demo_world_linear_ae_stays_below_the_minimality_free_floor():
  data = sparse_superposition(jax.random.key(0), 8192)
  model = fit_linear_ae(0, data["x"][:4096], 256, num_steps=500)
  assert float(fvu(data["x"], model.decode(model.encode(data["x"])))) < 0.05
  assert mcc(data["z"][4096:], np.asarray(model.encode(data["x"][4096:]))).mcc <= 0.75
