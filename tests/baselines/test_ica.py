"""Tests for identi.baselines.ica (FastICA)."""
import jax
import numpy as np
import pytest

from identi.baselines import fit_ica
from identi.errors import ConfigError, DataError
from identi.generators import sparse_superposition
from identi.metrics import fvu
from identi.metrics.mcc import mcc


@pytest.mark.parametrize("num_sources", [2, 4])
def test_unmixes_a_laplace_mixture(num_sources):
  rng = np.random.default_rng(num_sources)
  sources = rng.laplace(size=(4000, num_sources))
  mixing = rng.normal(size=(num_sources, num_sources))
  x = (sources @ mixing + 2.0).astype(np.float32)
  model = fit_ica(0, x, num_sources)
  codes = np.asarray(model.encode(x))
  result = mcc(sources, codes)
  assert result.mcc > 0.95
  # Unit-variance sources, reconstruction exact at full width.
  np.testing.assert_allclose(codes.std(0), 1.0, rtol=1e-3)
  assert float(fvu(x, model.decode(codes))) < 1e-4


def test_skewed_sources_come_out_positive():
  rng = np.random.default_rng(7)
  sources = rng.exponential(size=(4000, 3))
  x = (sources @ rng.normal(size=(3, 3))).astype(np.float32)
  codes = np.asarray(fit_ica(1, x, 3).encode(x))
  corr = np.corrcoef(sources.T, codes.T)[:3, 3:]
  # Each source's best-matching unit is positively correlated with it.
  assert np.all(corr[np.arange(3), np.argmax(np.abs(corr), axis=1)] > 0.95)


def test_errors_name_the_fix():
  rng = np.random.default_rng(0)
  x = (rng.normal(size=(200, 2)) @ rng.normal(size=(2, 4))).astype(np.float32)
  with pytest.raises(DataError, match="rank 2 < width=3"):
    fit_ica(0, x, 3)
  with pytest.raises(ConfigError, match="width=5 exceeds the data dimension 4"):
    fit_ica(0, x, 5)
  with pytest.raises(ConfigError, match="alpha=3"):
    fit_ica(0, x, 2, alpha=3.0)


def test_demo_world_ica_stays_below_the_minimality_free_floor():
  data = sparse_superposition(jax.random.key(0), 8192)
  model = fit_ica(0, data["x"][:4096], 64)
  assert mcc(data["z"][4096:], np.asarray(model.encode(data["x"][4096:]))).mcc <= 0.75
