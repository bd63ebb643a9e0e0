"""Dictionary-level minimality recovers parts that an SAE-like dictionary merges."""

import dataclasses

import numpy as np
import pytest

from identi.errors import ConfigError
from identi.infer import minimality

D_IN, PAIRS = 24, 6


def _world(n=6000, together=0.75, seed=0):
  """Parts in pairs that fire together in `together` of the samples where either fires."""
  rng = np.random.default_rng(seed)
  parts = rng.normal(size=(2 * PAIRS, D_IN))
  parts /= np.linalg.norm(parts, axis=1, keepdims=True)
  z = np.zeros((n, 2 * PAIRS))
  for p in range(PAIRS):
    fires = rng.random(n) < 0.3
    both = fires & (rng.random(n) < together)
    alone = fires & ~both
    first = rng.random(n) < 0.5
    z[both, 2 * p] = z[both, 2 * p + 1] = 1
    z[alone & first, 2 * p] = 1
    z[alone & ~first, 2 * p + 1] = 1
  z *= rng.lognormal(0.0, 0.25, size=z.shape)
  return (z @ parts).astype(np.float32), parts.astype(np.float32)


def _merged(parts, alpha=0.6):
  """What SAEs learn under strong selection: per pair a composite and two difference atoms."""
  atoms = []
  for p in range(PAIRS):
    a, b = parts[2 * p], parts[2 * p + 1]
    atoms += [a + b, a - alpha * b, b - alpha * a]
  atoms = np.stack(atoms)
  return (atoms / np.linalg.norm(atoms, axis=1, keepdims=True)).astype(np.float32)


def _best_cosines(parts, atoms):
  return (atoms @ parts.T).max(0)


SETTINGS = minimality.MinimalitySettings(max_atoms=8, max_samples=200, polish_rounds=2)


def test_minimal_dictionary_recovers_the_parts_of_a_merged_dictionary():
  x, parts = _world()
  merged = _merged(parts)
  assert _best_cosines(parts, merged).max() < 0.9  # No part is an atom of the merged basis.
  atoms, report = minimality.minimal_dictionary(x, merged, settings=SETTINGS)
  cos = _best_cosines(parts, atoms)
  assert cos.min() > 0.99, cos
  assert atoms.shape[0] == 2 * PAIRS, (atoms.shape, report)  # The composites are gone.
  assert report[0] == {"step": "start", "atoms": 3 * PAIRS}
  np.testing.assert_allclose(np.linalg.norm(atoms, axis=1), 1.0, atol=1e-5)
  # Asked to give up above one atom fewer, it stops after the first pass, which is the full
  # run's first pass; no seeds, no polish.
  first = [r["step"] for r in report].index("drop_unneeded") + 1
  early, early_report = minimality.minimal_dictionary(x, merged, settings=SETTINGS,
                                                      give_up_above=2 * PAIRS - 1)
  assert early_report[:first] == report[:first]
  assert early_report[first:] == [{"step": "given up", "atoms": 2 * PAIRS}]
  assert _best_cosines(parts, early).min() > 0.99 and early.shape[0] == 2 * PAIRS
  with pytest.raises(ConfigError, match="give_up_above"):
    minimality.minimal_dictionary(x, merged, settings=SETTINGS, give_up_above=0)


def test_the_true_parts_are_a_fixed_point_of_sharpening():
  x, parts = _world(seed=1)
  codes = minimality.codes(x, parts, SETTINGS)
  out, moved, refused = minimality.sharpen(x, parts, codes, SETTINGS)
  assert moved == 0 and refused > 0  # Pairs fire together, but their solo samples forbid a move.
  np.testing.assert_array_equal(out, parts)


def test_composites_and_unneeded_atoms_are_dropped():
  x, parts = _world(seed=2)
  composite = (parts[0] + parts[1]) / np.linalg.norm(parts[0] + parts[1])
  kept = minimality.drop_composites(np.concatenate([parts, composite[None]]), SETTINGS)
  np.testing.assert_array_equal(kept, parts)
  junk = np.random.default_rng(3).normal(size=(4, D_IN)).astype(np.float32) * 1e-3
  lean = minimality.drop_unneeded(x, np.concatenate([parts, junk]), SETTINGS)
  assert lean.shape[0] == 2 * PAIRS and _best_cosines(parts, lean).min() > 0.999


def test_beyond_exact_recoding_neighbours_drop_the_same_atoms(monkeypatch):
  """Recoding over a sample's support and the removed atom's nearest atoms (the path of large
  dictionaries) drops the junk and keeps every part, like recoding over all atoms."""
  x, parts = _world(seed=2)
  junk = np.random.default_rng(3).normal(size=(4, D_IN)).astype(np.float32) * 1e-3
  near_parts = parts[:4] + 0.3 * parts[4:8]  # Mixtures: the parts can replace them.
  near_parts /= np.linalg.norm(near_parts, axis=1, keepdims=True)
  start = np.concatenate([parts, near_parts, junk])
  exact = minimality.drop_unneeded(x, start, SETTINGS)
  monkeypatch.setattr(minimality, "EXACT_RECODE_ATOMS", 0)
  monkeypatch.setattr(minimality, "NEIGHBORS", 4)
  near = minimality.drop_unneeded(x, start, SETTINGS)
  assert near.shape[0] < start.shape[0] - junk.shape[0]  # Mixtures dropped too, not only junk.
  assert _best_cosines(parts, near).min() > 0.999
  np.testing.assert_array_equal(near, exact)


def test_a_missing_part_is_seeded_from_residuals():
  x, parts = _world(seed=4)
  seeded = minimality.seed_from_residuals(x, parts[1:], SETTINGS)
  assert seeded.shape[0] > parts.shape[0] - 1
  # The seeded atom points at the missing part (its siblings' share is what sharpening removes).
  assert (seeded[parts.shape[0] - 1:] @ parts[0]).max() > 0.8 > (parts[1:] @ parts[0]).max()


@pytest.mark.parametrize("field,value", [("tol", 0.0), ("quantile", 1.5), ("max_atoms", 0),
                                         ("seed_rounds", -1), ("composite_cosine", 0.0)])
def test_settings_out_of_range_are_refused(field, value):
  with pytest.raises(ConfigError, match=field):
    minimality.MinimalitySettings(**{field: value}).validate()


def test_a_dictionary_of_zero_rows_is_refused():
  x, _ = _world(n=100)
  with pytest.raises(ConfigError, match="zero rows"):
    minimality.minimal_dictionary(x, np.zeros((4, D_IN), np.float32))


def test_codes_of_wide_inputs_are_computed_in_the_span_of_the_atoms_like_the_full_problem():
  """d = 96 features, 18 atoms: the stage codes in the atoms' span (18 coordinates); the codes
  are full OMP's, and each row's energy splits into its span part and the rest."""
  from identi.infer import omp  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(3)
  x, parts = _world(n=2000, seed=3)
  lift = np.linalg.qr(rng.normal(size=(96, D_IN)))[0].T  # (24, 96), orthonormal rows.
  wide = x @ lift + 0.02 * rng.normal(size=(2000, 96)).astype(np.float32)
  atoms = (_merged(parts) @ lift).astype(np.float32)
  sp = minimality.in_span(wide, atoms, 1e-3)
  assert sp.x.shape == (2000, 18) and sp.dictionary.shape == (18, 18)
  np.testing.assert_allclose(np.sum(np.square(np.asarray(sp.x)), 1) + np.asarray(sp.outside),
                             np.sum(np.square(wide), 1), rtol=1e-4)
  for tol in (1e-3, 0.05):  # 0.05: most rows stop on energy before max_atoms.
    got = minimality.codes(wide, atoms, dataclasses.replace(SETTINGS, tol=tol))
    want = np.asarray(omp(wide, atoms, max_atoms=SETTINGS.max_atoms, tol=tol))
    assert np.mean((got > 0) == (want > 0)) > 0.9999
    np.testing.assert_allclose(got, want, atol=2e-4)
  # Inputs no wider than the dictionary are coded as they are.
  narrow = minimality.in_span(x, np.concatenate([_merged(parts), parts]), 1e-3)  # 30 atoms.
  assert narrow.x.shape == x.shape and float(np.asarray(narrow.outside).max()) == 0.0


def test_refined_dictionary_prunes_a_wide_dictionary_to_the_parts():
  x, parts = _world(together=0.0)  # Parts that fire on their own: no composite to undo.
  rng = np.random.default_rng(3)
  # Twice as wide as needed: two noisy copies of every part.
  wide = np.concatenate([parts + 0.15 * rng.normal(size=parts.shape),
                         parts + 0.15 * rng.normal(size=parts.shape)]).astype(np.float32)
  s = minimality.MinimalitySettings(max_atoms=4, polish_rounds=2)
  atoms, report = minimality.refined_dictionary(x, wide, keep=len(parts), settings=s, rounds=8)
  assert atoms.shape == parts.shape
  np.testing.assert_allclose(np.linalg.norm(atoms, axis=1), 1.0, rtol=1e-5)
  assert [r["step"] for r in report] == ["start", "refine", "keep", "polish"]
  unit = wide / np.linalg.norm(wide, axis=1, keepdims=True)
  before, after = _best_cosines(parts, unit), _best_cosines(parts, atoms)
  # Measured: the worst part's best atom goes from cosine 0.76 to 0.98.
  assert after.min() > 0.95 and after.min() > before.min() + 0.15
  with pytest.raises(ConfigError, match="keep=0"):
    minimality.refined_dictionary(x, wide, keep=0, rounds=1)


def test_pruned_codes_drop_the_atoms_a_row_does_not_need_one_at_a_time():
  """A row loses an atom only while the loss is below tol of its energy, the cheapest first, and
  keeps at least one; the kept atoms are fitted again."""
  eye = np.eye(8, dtype=np.float32)
  dictionary = np.stack([eye[0], eye[1], eye[2], eye[3], eye[0]])  # Atom 4 repeats atom 0.
  x = np.stack([3 * eye[0] + 2 * eye[1] + 0.01 * eye[2],  # Atom 2 adds 1e-4 of 13.
                eye[3],  # One atom, needed.
                0.02 * eye[0],  # A tiny row keeps one atom.
                eye[0] + eye[1]]).astype(np.float32)  # Either copy of atom 0 suffices.
  codes = np.array([[3, 2, 0.01, 0, 0], [0, 0, 0, 1, 0], [0.02, 1e-3, 0, 0, 0],
                    [0.5, 1, 0, 0, 0.5]], np.float32)
  pruned = minimality.prune_codes(x, dictionary, codes, 1e-3)
  np.testing.assert_allclose(pruned[0], [3, 2, 0, 0, 0], atol=1e-5)
  np.testing.assert_allclose(pruned[1], [0, 0, 0, 1, 0], atol=1e-6)
  np.testing.assert_allclose(pruned[2], [0.02, 0, 0, 0, 0], atol=1e-6)
  # Each copy costs nothing while the other is there; dropping both loses half the row, so
  # exactly one goes and the row is still reconstructed exactly.
  assert np.sum(pruned[3] > 0) == 2 and pruned[3, 1] > 0 and pruned[3, 2] == 0, pruned[3]
  np.testing.assert_allclose(pruned[3] @ dictionary, x[3], atol=1e-5)
  # A tolerance below the cheapest loss keeps every atom (fitted again on the same supports).
  kept = minimality.prune_codes(x[:1], dictionary, codes[:1], 1e-6)
  np.testing.assert_array_equal(kept > 0, codes[:1] > 0)
  # Row by row: the same whatever the batch.
  np.testing.assert_array_equal(
      minimality.prune_codes(x, dictionary, codes, 1e-3, batch_size=1), pruned)


@pytest.mark.parametrize("change,match", [
    (lambda x, d, c, t: (x, d, c[:, :3], t), "codes of shape"),
    (lambda x, d, c, t: (x, d, -c, t), "negative"),
    (lambda x, d, c, t: (x, d, np.where(c > 0, np.nan, c), t), "NaN"),
    (lambda x, d, c, t: (x, d, c, 0.0), "tol=0.0"),
    (lambda x, d, c, t: (x, d, c, 1.5), "tol=1.5")])
def test_pruned_codes_refuse_bad_input_with_the_fix(change, match):
  eye = np.eye(4, dtype=np.float32)
  x, d, c = eye[:2], eye, np.eye(2, 4, dtype=np.float32)
  with pytest.raises((ConfigError, ValueError), match=match):
    minimality.prune_codes(*change(x, d, c, 1e-3))
