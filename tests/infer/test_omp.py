"""Tests for identi.infer.omp (non-negative orthogonal matching pursuit)."""
import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from helpers import planted_codes
from identi.errors import ConfigError, DataError
from identi.generators import sparse_superposition
from identi.infer.omp import bucket_size, omp
from identi.metrics.mcc import mcc



def test_hand_computed_two_step_example():
  # Atoms e1, e2 and (1, 1)/sqrt(2); x = (2, 1). Cosines with x: 0.894, 0.447, 0.949, so step 1
  # picks atom 2 with coefficient 3/sqrt(2), leaving r = (0.5, -0.5); only e1 correlates
  # positively with r, and the LS fit on {atom 2, e1} is x = sqrt(2) * atom2 + 1 * e1.
  s = 1.0 / math.sqrt(2.0)
  dictionary = np.array([[1.0, 0.0], [0.0, 1.0], [s, s]], np.float32)
  x = np.array([[2.0, 1.0]], np.float32)
  np.testing.assert_allclose(omp(x, dictionary, max_atoms=1), [[0.0, 0.0, 3.0 * s]], rtol=1e-6)
  np.testing.assert_allclose(omp(x, dictionary, max_atoms=3), [[1.0, 0.0, math.sqrt(2.0)]],
                             rtol=1e-5, atol=1e-6)


def test_recovers_planted_codes_exactly_on_noiseless_data():
  codes, dictionary = planted_codes()
  out = np.asarray(omp(codes @ dictionary, dictionary, max_atoms=8))
  chex.assert_shape(out, codes.shape)
  np.testing.assert_array_equal(out > 0, codes > 0)
  np.testing.assert_allclose(out, codes, atol=1e-4)


def test_stopping_rule_adds_no_more_atoms_than_needed():
  codes, dictionary = planted_codes(active=4)
  out = np.asarray(omp(codes @ dictionary, dictionary, max_atoms=8, tol=1e-6))
  np.testing.assert_array_equal(np.sum(out > 0, axis=1), 4)


def test_max_atoms_caps_the_support_and_tol_stops_early():
  codes, dictionary = planted_codes(active=6)
  x = codes @ dictionary
  capped = np.asarray(omp(x, dictionary, max_atoms=3))
  assert np.all(np.sum(capped > 0, axis=1) <= 3)
  assert np.mean(np.sum(capped > 0, axis=1) == 3) > 0.9
  # A loose tolerance stops before the support is complete, with the residual within tolerance.
  loose = np.asarray(omp(x, dictionary, max_atoms=8, tol=0.2))
  resid = np.sum(np.square(x - loose @ dictionary), axis=1)
  assert np.mean(np.sum(loose > 0, axis=1)) < 5
  assert np.all(resid <= 0.2 * np.sum(np.square(x), axis=1) + 1e-5)


def test_codes_are_non_negative_even_for_negative_data():
  _, dictionary = planted_codes(n=1)
  x = np.random.default_rng(1).normal(size=(64, 64)).astype(np.float32)
  out = np.asarray(omp(x, dictionary, max_atoms=8))
  assert np.all(out >= 0)
  # -d_0 correlates negatively with d_0 itself, so d_0 is never used for it.
  assert float(np.asarray(omp(-dictionary[:1], dictionary, max_atoms=8))[0, 0]) == 0.0


def test_full_support_equals_lawson_hanson_nnls():
  # With unit atoms, max_atoms = n_atoms and tol = 0, NN-OMP is the Lawson-Hanson NNLS algorithm.
  rng = np.random.default_rng(2)
  dictionary = rng.normal(size=(20, 8))
  dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)
  x = rng.normal(size=(40, 8))
  out = np.asarray(omp(x, dictionary, max_atoms=20, tol=0.0))
  ref = np.stack([scipy.optimize.nnls(dictionary.T, xi)[0] for xi in x])
  np.testing.assert_allclose(out, ref, atol=1e-2)
  assert np.mean(np.max(np.abs(out - ref), axis=1) < 1e-4) > 0.85


def test_coefficients_are_nnls_on_their_support_after_drops():
  rng = np.random.default_rng(3)
  dictionary = rng.normal(size=(20, 8))
  dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)
  x = rng.normal(size=(40, 8))
  out = np.asarray(omp(x, dictionary, max_atoms=6, tol=0.0))
  for xi, ci in zip(x, out):
    support = np.flatnonzero(ci > 0)
    ref, _ = scipy.optimize.nnls(dictionary[support].T, xi)
    np.testing.assert_allclose(ci[support], ref, atol=1e-4)


def test_batched_equals_per_sample_and_jit_works():
  codes, dictionary = planted_codes(n=8, active=5, seed=4)
  x = codes @ dictionary + 0.05 * np.random.default_rng(5).normal(size=(8, 64)).astype(np.float32)
  batched = np.asarray(omp(x, dictionary, max_atoms=8))
  single = np.concatenate([np.asarray(omp(x[i:i + 1], dictionary, max_atoms=8)) for i in range(8)])
  np.testing.assert_allclose(batched, single, atol=1e-5)
  jitted = jax.jit(functools.partial(omp, max_atoms=8))(jnp.asarray(x), jnp.asarray(dictionary))
  np.testing.assert_allclose(jitted, batched, atol=1e-5)


def test_b_dec_is_subtracted_and_warm_start_keeps_good_atoms():
  codes, dictionary = planted_codes(seed=6)
  b_dec = np.linspace(-1.0, 1.0, 64).astype(np.float32)
  x = codes @ dictionary + b_dec
  np.testing.assert_allclose(omp(x, dictionary, max_atoms=8, b_dec=b_dec), codes, atol=1e-4)
  # Warm start from the true support plus one wrong atom per sample: the wrong atom gets 0.
  init = (codes > 0).astype(np.float32)
  init[np.arange(64), np.argmin(codes, axis=1)] = 0.5
  warm = np.asarray(omp(x, dictionary, max_atoms=8, b_dec=b_dec, init_support=init))
  np.testing.assert_allclose(warm, codes, atol=1e-4)


def test_an_excluded_atom_is_coded_as_if_it_were_a_zero_row():
  codes, dictionary = planted_codes(n=16, seed=7)
  x = codes @ dictionary
  exclude = np.argmax(codes, axis=1).astype(np.int32)
  exclude[:4] = -1  # These samples may use every atom.
  out = np.asarray(omp(x, dictionary, max_atoms=8, exclude=exclude))
  for i in range(16):
    zeroed = dictionary.copy()
    if exclude[i] >= 0:
      zeroed[exclude[i]] = 0.0
    expected = np.asarray(omp(x[i:i + 1], zeroed, max_atoms=8))[0]
    np.testing.assert_allclose(out[i], expected, atol=1e-5)
  assert not out[np.arange(4, 16), exclude[4:]].any()
  np.testing.assert_allclose(out[:4], codes[:4], atol=1e-4)
  assert np.linalg.norm(out[4:] @ dictionary - x[4:]) > 0.1  # Without the biggest atom: a residual.


def test_bucket_sizes_pad_by_at_most_a_quarter_and_keep_powers_of_two():
  sizes = np.arange(1, 5000)
  buckets = np.array([bucket_size(int(n)) for n in sizes])
  assert (buckets >= sizes).all() and (buckets <= np.maximum(sizes * 1.25, 8)).all()
  assert all(bucket_size(2 ** p) == 2 ** p for p in range(14))
  assert len(set(buckets[(sizes > 64) & (sizes <= 4096)].tolist())) == 24  # 4 per doubling.


def test_padded_calls_give_the_unpadded_codes_bit_for_bit():
  # Outside a trace, omp pads the batch (37 -> 40) and the atoms (100 -> 112); under jit it
  # codes the exact shapes. Warm start, exclusion and per-row tolerances included.
  codes, dictionary = planted_codes(n=37, n_atoms=100, d=24, active=6, seed=8)
  rng = np.random.default_rng(9)
  x = codes @ dictionary + 0.02 * rng.normal(size=(37, 24)).astype(np.float32)
  init = np.where(rng.uniform(size=codes.shape) < 0.05, 1.0, codes).astype(np.float32)
  exclude = np.where(rng.uniform(size=37) < 0.5, np.argmax(codes, axis=1), -1).astype(np.int32)
  tol = rng.uniform(1e-5, 1e-2, size=37).astype(np.float32)
  kwargs = dict(max_atoms=8)
  eager = np.asarray(omp(x, dictionary, init_support=init, exclude=exclude, tol=tol, **kwargs))
  traced = np.asarray(jax.jit(lambda *a: omp(a[0], a[1], init_support=a[2], exclude=a[3],
                                             tol=a[4], **kwargs))(x, dictionary, init, exclude,
                                                                  tol))
  assert eager.shape == (37, 100)
  np.testing.assert_array_equal(eager, traced)
  np.testing.assert_array_equal(np.asarray(omp(x[:33], dictionary, tol=tol[:33], **kwargs)),
                                np.asarray(omp(x, dictionary, tol=tol, **kwargs))[:33])


def test_demo_world_true_dictionary_reaches_the_minimal_code_ceiling():
  data = sparse_superposition(jax.random.key(0), 4096)
  out = np.asarray(omp(data["x"], data["A"].T, max_atoms=16))
  assert mcc(data["z"], out).mcc > 0.97


def test_bad_input_raises_errors_naming_the_fix():
  _, dictionary = planted_codes(n=1)
  x = np.zeros((2, 64), np.float32)
  with pytest.raises(DataError, match="must be 2-D"):
    omp(x[0], dictionary, max_atoms=2)
  with pytest.raises(DataError, match="has 63 features"):
    omp(x[:, :63], dictionary, max_atoms=2)
  with pytest.raises(DataError, match=r"b_dec has shape \(3,\)"):
    omp(x, dictionary, max_atoms=2, b_dec=np.zeros(3))
  with pytest.raises(DataError, match="init_support"):
    omp(x, dictionary, max_atoms=2, init_support=np.zeros((2, 5)))
  with pytest.raises(DataError, match=r"exclude has shape \(3,\)"):
    omp(x, dictionary, max_atoms=2, exclude=np.zeros(3, np.int32))
  with pytest.raises(DataError, match="integer atom indices"):
    omp(x, dictionary, max_atoms=2, exclude=np.zeros(2, np.float32))
  with pytest.raises(ConfigError, match="max_atoms=200 exceeds the 128"):
    omp(x, dictionary, max_atoms=200)
  with pytest.raises(ConfigError, match="max_atoms=0"):
    omp(x, dictionary, max_atoms=0)
  with pytest.raises(ConfigError, match=r"tol=1\.5"):
    omp(x, dictionary, max_atoms=2, tol=1.5)
