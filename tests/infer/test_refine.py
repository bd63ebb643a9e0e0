"""Tests for identi.infer.refine (alternating inference and least-squares decoder updates)."""
import functools

import numpy as np
import pytest

from helpers import planted_codes
from identi.errors import ConfigError, DataError
from identi.infer.omp import omp
from identi.infer.refine import atom_usage, refine_dictionary, refine_on_supports

_INFER = functools.partial(omp, max_atoms=6)


def _problem(n=1024, n_atoms=64, d=32, active=3, noise=0.15, seed=0):
  """Planted sparse data from a true dictionary and a perturbed copy of that dictionary."""
  codes, true = planted_codes(n=n, n_atoms=n_atoms, d=d, active=active, seed=seed)
  rng = np.random.default_rng(seed + 1)
  perturbed = true + noise * rng.normal(size=true.shape)
  perturbed /= np.linalg.norm(perturbed, axis=1, keepdims=True)
  return (codes @ true).astype(np.float32), true.astype(np.float32), perturbed.astype(np.float32)


def _recon_error(x, dictionary):
  codes = np.asarray(_INFER(x, dictionary))
  return float(np.mean(np.sum(np.square(x - codes @ dictionary), axis=1)))


def _mean_cosine(a, b):
  cos = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
  return float(np.mean(cos))


def test_refinement_lowers_reconstruction_error_and_moves_towards_the_truth():
  x, true, perturbed = _problem()
  refined = np.asarray(refine_dictionary(x, perturbed, infer_fn=_INFER, num_rounds=3,
                                         batch_size=512))
  # Measured: error 0.745 -> 0.024, mean cosine to the true atoms 0.768 -> 0.976.
  assert _recon_error(x, refined) < 0.1 * _recon_error(x, perturbed)
  assert _mean_cosine(refined, true) > _mean_cosine(perturbed, true) + 0.15
  np.testing.assert_allclose(np.linalg.norm(refined, axis=1), 1.0, rtol=1e-5)


def test_unused_atoms_keep_their_rows_and_row_norms_are_preserved():
  x, _, perturbed = _problem(n=256)
  scaled = perturbed * np.linspace(0.5, 2.0, 64, dtype=np.float32)[:, None]

  def never_atom_0(xs, dictionary):
    return _INFER(xs, dictionary).at[:, 0].set(0.0)

  refined = np.asarray(refine_dictionary(x, scaled, infer_fn=never_atom_0, num_rounds=1))
  np.testing.assert_array_equal(refined[0], scaled[0])
  assert np.abs(refined[1:] - scaled[1:]).max() > 1e-3
  np.testing.assert_allclose(np.linalg.norm(refined, axis=1), np.linalg.norm(scaled, axis=1),
                             rtol=1e-5)


def test_b_dec_is_subtracted_before_inference():
  x, true, _ = _problem(n=256)
  b_dec = np.full((32,), 3.0, np.float32)
  seen = []

  def record(xs, dictionary):
    seen.append(np.asarray(xs))
    return _INFER(xs, dictionary)

  refined = refine_dictionary(x + b_dec, true, infer_fn=record, num_rounds=1, b_dec=b_dec)
  np.testing.assert_allclose(seen[0], x, atol=1e-5)
  # The true dictionary is already a fixed point of noiseless exact inference.
  np.testing.assert_allclose(refined, true, atol=1e-3)


def _best_cosines(dictionary, true):
  a = dictionary / np.linalg.norm(dictionary, axis=1, keepdims=True)
  b = true / np.linalg.norm(true, axis=1, keepdims=True)
  return (a @ b.T).max(axis=0)


def _max_pair_cosine(dictionary):
  unit = dictionary / np.linalg.norm(dictionary, axis=1, keepdims=True)
  gram = unit @ unit.T
  np.fill_diagonal(gram, 0.0)
  return float(gram.max())


def test_duplicates_are_replaced_by_missing_atoms():
  x, true, _ = _problem(n=2048, noise=0.0)
  # Atoms 60-63 start as near-copies of atoms 0-3: four true atoms have none.
  start = true.copy()
  start[60:] = true[:4] + 0.01 * np.random.default_rng(5).normal(size=(4, 32))
  start /= np.linalg.norm(start, axis=1, keepdims=True)
  run = lambda dup: np.asarray(refine_dictionary(x, start, infer_fn=_INFER, num_rounds=8,
                                                 batch_size=512, duplicate_cosine=dup))
  plain, replaced = run(None), run(0.9)
  # Measured: without replacement the copies stay (pair cosine 0.995), 56 true atoms have an atom
  # above cosine 0.95 (mean best cosine 0.967); with it no pair is above 0.53, 60 atoms are
  # recovered (mean 0.984).
  assert _max_pair_cosine(plain) > 0.99
  assert _max_pair_cosine(replaced) < 0.9
  best_plain, best = _best_cosines(plain, true), _best_cosines(replaced, true)
  assert (best > 0.95).sum() >= (best_plain > 0.95).sum() + 3
  assert best.mean() > best_plain.mean() + 0.01
  np.testing.assert_allclose(np.linalg.norm(replaced, axis=1), 1.0, rtol=1e-5)
  np.testing.assert_array_equal(replaced, run(0.9))  # Deterministic.


def test_atom_usage_is_each_atoms_code_energy():
  x, true, _ = _problem(n=512)
  b_dec = np.full((32,), 2.0, np.float32)
  usage = atom_usage(x + b_dec, true, infer_fn=_INFER, b_dec=b_dec, batch_size=200)
  codes = np.asarray(_INFER(x, true))
  np.testing.assert_allclose(usage, np.square(codes.astype(np.float64)).sum(0), rtol=1e-4)
  assert usage.shape == (64,) and usage.dtype == np.float64
  with pytest.raises(ConfigError, match="not a function"):
    atom_usage(x, true, infer_fn=None)


def test_bad_input_raises_errors_naming_the_fix():
  x, _, perturbed = _problem(n=16)
  with pytest.raises(DataError, match=r"returned codes of shape \(16, 3\)"):
    refine_dictionary(x, perturbed, infer_fn=lambda xs, d: np.zeros((16, 3)), num_rounds=1)
  with pytest.raises(ConfigError, match="ridge=-1"):
    refine_dictionary(x, perturbed, infer_fn=_INFER, num_rounds=1, ridge=-1.0)
  with pytest.raises(ConfigError, match="num_rounds=0"):
    refine_dictionary(x, perturbed, infer_fn=_INFER, num_rounds=0)
  with pytest.raises(ConfigError, match="not a function"):
    refine_dictionary(x, perturbed, infer_fn="omp", num_rounds=1)
  with pytest.raises(ConfigError, match="duplicate_cosine=1.5"):
    refine_dictionary(x, perturbed, infer_fn=_INFER, num_rounds=1, duplicate_cosine=1.5)


def test_refining_on_fixed_supports_is_refining_with_their_fit():
  """With each sample's support that of its planted code, the updates are the method of optimal
  directions with the fit on those supports: from the perturbed dictionary to the truth."""
  from identi.infer import ancestors  # pylint: disable=g-import-not-at-top
  x, true, perturbed = _problem()
  codes, _ = planted_codes(n=1024, n_atoms=64, d=32, active=3, seed=0)
  supports = (codes > 0).astype(np.float32)
  refined = refine_on_supports(x, perturbed, supports, num_rounds=3, batch_size=300)
  assert refined.dtype == np.float32 and refined.shape == perturbed.shape
  assert _mean_cosine(refined, true) > 0.99 > _mean_cosine(perturbed, true) + 0.15
  np.testing.assert_allclose(np.linalg.norm(refined, axis=1), 1.0, rtol=1e-5)
  # One round by hand: fit on the supports, then least squares; no sample's atoms change.
  fitted = ancestors.support_fit(x, perturbed, supports)
  assert not (fitted > 0)[supports == 0].any()
  once = np.linalg.solve(fitted.T.astype(np.float64) @ fitted, fitted.T.astype(np.float64) @ x)
  once /= np.linalg.norm(once, axis=1, keepdims=True)
  one_round = refine_on_supports(x, perturbed, supports, num_rounds=1, ridge=0.0)
  np.testing.assert_allclose(one_round, once, atol=2e-4)


def test_refining_on_supports_names_bad_inputs():
  x, _, perturbed = _problem(n=16)
  with pytest.raises(DataError, match=r"supports of shape \(16, 3\)"):
    refine_on_supports(x, perturbed, np.ones((16, 3)), num_rounds=1)
  with pytest.raises(ConfigError, match="num_rounds=0"):
    refine_on_supports(x, perturbed, np.ones((16, 64)), num_rounds=0)
  with pytest.raises(ConfigError, match="ridge=-1"):
    refine_on_supports(x, perturbed, np.ones((16, 64)), num_rounds=1, ridge=-1.0)


def test_refining_on_supports_with_a_floor_fits_the_directions_to_the_floored_codes():
  from identi.infer import ancestors  # pylint: disable=g-import-not-at-top
  x, _, perturbed = _problem()
  codes, _ = planted_codes(n=1024, n_atoms=64, d=32, active=3, seed=0)
  supports = (codes > 0).astype(np.float32)
  # One round by hand: fit, drop the codes below 0.3 of their atom's 0.9 quantile, fit again,
  # then least squares.
  fitted = ancestors.support_fit(x, perturbed, supports)
  floored = ancestors.floored_fit(x, perturbed, fitted, ancestors.code_floors(fitted, 0.3))
  assert (floored > 0).sum() < (fitted > 0).sum()  # The floor drops some codes.
  once = np.linalg.solve(floored.T.astype(np.float64) @ floored,
                         floored.T.astype(np.float64) @ x)
  once /= np.linalg.norm(once, axis=1, keepdims=True)
  one_round = refine_on_supports(x, perturbed, supports, num_rounds=1, ridge=0.0, floor=0.3)
  np.testing.assert_allclose(one_round, once, atol=2e-4)
  assert not np.allclose(one_round, refine_on_supports(x, perturbed, supports, num_rounds=1,
                                                       ridge=0.0), atol=1e-3)
  with pytest.raises(ConfigError, match="floor=1.0"):
    refine_on_supports(x, perturbed, supports, num_rounds=1, floor=1.0)
