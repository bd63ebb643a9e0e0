"""Shared ancestors (identi.infer.ancestors): a dictionary of tree paths mapped onto its parents."""

import numpy as np
import pytest

from identi.errors import ConfigError, DataError
from identi.infer import ancestors


def _hierarchy(seed=0, d=96, roots=4, leaves=6, n=4000, parent=1.0, noise=0.0):
  """Orthonormal roots and leaves; each row fires one path (a root with exactly one of its
  children, as in SAELens's hierarchies) or two. A path atom is parent x root + leaf (+ noise of
  norm about `noise`): siblings' cosine is 0.5 at parent 1. Returns (path atoms, codes over them,
  the roots' activity (n, roots), the root directions)."""
  rng = np.random.default_rng(seed)
  basis = np.linalg.qr(rng.normal(size=(d, roots * (leaves + 1))))[0].T
  root_dirs, leaf_dirs = basis[:roots], basis[roots:].reshape(roots, leaves, d)
  atoms = np.stack([parent * root_dirs[r] + leaf_dirs[r, l] for r in range(roots)
                    for l in range(leaves)])
  atoms += noise * rng.normal(size=atoms.shape) / np.sqrt(d)
  atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
  codes = np.zeros((n, roots * leaves))
  for i in range(n):
    for path in rng.choice(roots * leaves, size=rng.integers(1, 3), replace=False):
      codes[i, path] = rng.lognormal(0.0, 0.3)
  root_activity = codes.reshape(n, roots, leaves).sum(-1)
  return atoms.astype(np.float32), codes.astype(np.float32), root_activity, root_dirs


def _corr(a, b):
  a, b = a - a.mean(0), b - b.mean(0)
  return (a.T @ b) / np.outer(np.linalg.norm(a, axis=0), np.linalg.norm(b, axis=0)).clip(1e-12)


def test_the_parents_of_a_dictionary_of_paths_are_found_and_coded():
  atoms, codes, root_activity, root_dirs = _hierarchy()
  amap = ancestors.ancestor_map(atoms, (codes > 0).sum(0))
  assert amap.num_ancestors == root_dirs.shape[0]
  found = amap.directions[atoms.shape[0]:]
  cos = np.abs(found @ root_dirs.T)
  assert sorted(cos.argmax(1)) == list(range(root_dirs.shape[0]))
  assert cos.max(1).min() > 0.85, cos
  # No atom carries a root; the map's units do.
  assert _corr(root_activity, codes).max(1).max() < 0.6
  unit_codes = amap.codes(codes)
  assert _corr(root_activity, unit_codes).max(1).min() > 0.99


@pytest.mark.parametrize("grouping", ["linkage", "union"])
@pytest.mark.parametrize("parent,noise", [(1.0, 0.0), (1.0, 0.3), (0.7, 0.0)])
def test_the_linkage_groupings_find_each_parent_once(grouping, parent, noise):
  """Siblings equally close (noise 0) or not: the gap keeps the partial groups of a binary
  dendrogram out (of six worlds with noise, one gains one extra group). At parent 0.7 the
  siblings' cosine (0.33) is below every membership cosine of the mean-shift grid that clears
  the chance floor, so only linkage finds the parents; the union of both groupings finds each
  parent once too (where both find it, their modes are within `merge_cosine`)."""
  settings = ancestors.AncestorSettings(grouping=grouping)
  extra = 0
  for seed in range(6):
    atoms, codes, root_activity, root_dirs = _hierarchy(seed=seed, parent=parent, noise=noise)
    usage = (codes > 0).sum(0)
    amap = ancestors.ancestor_map(atoms, usage, settings)
    extra += amap.num_ancestors - root_dirs.shape[0]
    cos = np.abs(amap.directions[atoms.shape[0]:] @ root_dirs.T)
    assert set(cos.argmax(1)) == set(range(root_dirs.shape[0])), seed
    assert _corr(root_activity, amap.codes(codes)).max(1).min() > 0.99, seed
    np.testing.assert_allclose(amap.codes(codes) @ amap.directions, codes @ atoms, atol=1e-4)
    if parent < 1.0:
      assert ancestors.ancestor_map(atoms, usage).num_ancestors == 0  # mean-shift: none
    # Without the gap, sets of equally close siblings split into partial groups of their own.
    if noise == 0.0:
      loose = ancestors.AncestorSettings(grouping=grouping, gap=1e-9)
      assert ancestors.ancestor_map(atoms, usage, loose).num_ancestors > root_dirs.shape[0]
  assert 0 <= extra <= (1 if noise else 0)


def test_row_profiles_are_each_atoms_rows_against_the_rest():
  x = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 4.0], [7.0, 6.0]])
  codes = np.array([[1.0, 0.0, 2.0], [0.5, 0.0, 1.0], [0.0, 0.0, 3.0], [0.0, 0.0, 0.5]])
  profiles = ancestors.row_profiles(x, codes)
  np.testing.assert_allclose(profiles[0], [2.0, 1.0] - np.array([6.0, 5.0]))
  np.testing.assert_array_equal(profiles[1:], 0.0)  # Never used; used by every row.
  with pytest.raises(DataError, match="one row of codes per row"):
    ancestors.row_profiles(x, codes[:3])
  with pytest.raises(DataError, match="NaN"):
    ancestors.row_profiles(np.full((4, 2), np.nan), codes)


def test_profiles_find_parents_the_atoms_hardly_carry():
  """Each row fires a root with one of its leaves, but each atom is its leaf with at most 0.3 of
  the root (siblings' cosine below 0.09, under the chance floor): the atoms share no direction.
  Their row profiles hold the whole path, so grouping the profiles finds the roots; the codes and
  the reconstruction stay the atoms'."""
  rng = np.random.default_rng(5)
  d, roots, leaves, n = 128, 4, 6, 6000
  basis = np.linalg.qr(rng.normal(size=(d, roots * (leaves + 1))))[0].T
  root_dirs, leaf_dirs = basis[:roots], basis[roots:].reshape(roots * leaves, d)
  share = rng.uniform(0.0, 0.3, roots * leaves)
  atoms = leaf_dirs + share[:, None] * np.repeat(root_dirs, leaves, 0)
  atoms = (atoms / np.linalg.norm(atoms, axis=1, keepdims=True)).astype(np.float32)
  codes = np.zeros((n, roots * leaves), np.float32)
  x = np.zeros((n, d))
  for i in range(n):
    for root in np.flatnonzero(rng.random(roots) < 0.15):  # Roots fire independently,
      path = root * leaves + rng.integers(leaves)  # each with one of its leaves.
      codes[i, path] = rng.lognormal(0.0, 0.1)
      x[i] += rng.lognormal(0.0, 0.1) * root_dirs[root] + codes[i, path] * leaf_dirs[path]
  root_activity = (codes.reshape(n, roots, leaves) > 0).any(-1).astype(np.float64)
  usage = (codes > 0).sum(0)
  for grouping in ("mean_shift", "linkage"):
    settings = ancestors.AncestorSettings(grouping=grouping)
    assert ancestors.ancestor_map(atoms, usage, settings).num_ancestors == 0
    amap = ancestors.ancestor_map(atoms, usage, settings,
                                  profiles=ancestors.row_profiles(x, codes))
    assert amap.num_ancestors == roots, grouping
    cos = np.abs(amap.directions[atoms.shape[0]:] @ root_dirs.T)
    assert sorted(cos.argmax(1)) == list(range(roots)) and cos.max(1).min() > 0.85, cos
    assert _corr(root_activity, amap.codes(codes)).max(1).min() > 0.95, grouping
    np.testing.assert_allclose(amap.codes(codes) @ amap.directions, codes @ atoms, atol=1e-4)
  with pytest.raises(DataError, match="profiles have shape"):
    ancestors.ancestor_map(atoms, usage, profiles=np.ones((3, d)))


def test_the_map_keeps_the_reconstruction_and_non_negative_codes():
  atoms, codes, _, _ = _hierarchy(seed=1)
  atoms = atoms * np.linspace(0.5, 2.0, atoms.shape[0])[:, None].astype(np.float32)  # Any norms.
  amap = ancestors.ancestor_map(atoms, (codes > 0).sum(0))
  unit_codes = amap.codes(codes)
  assert (unit_codes >= 0).all()
  np.testing.assert_allclose(unit_codes @ amap.directions, codes @ atoms, atol=1e-5)
  norms = np.linalg.norm(amap.directions, axis=1)
  assert np.all((np.abs(norms - 1) < 1e-5) | (norms == 0))


def test_atoms_that_are_already_the_parts_map_onto_themselves():
  rng = np.random.default_rng(2)
  atoms = np.linalg.qr(rng.normal(size=(64, 40)))[0].T.astype(np.float32)
  amap = ancestors.ancestor_map(atoms, np.full(40, 100.0))
  assert amap.num_ancestors == 0
  np.testing.assert_allclose(amap.weights, np.eye(40), atol=1e-6)
  np.testing.assert_allclose(amap.directions, atoms, atol=1e-6)


def test_chance_cosines_in_few_dimensions_make_no_ancestors():
  """Random atoms in 16 dimensions share directions only by chance; the chance floor skips the
  membership cosines such atoms reach, and without it the map would invent parents."""
  atoms = np.random.default_rng(3).normal(size=(64, 16)).astype(np.float32)
  usage = np.full(64, 10.0)
  assert ancestors.ancestor_map(atoms, usage).num_ancestors == 0
  loose = ancestors.AncestorSettings(chance_sigmas=0.0)
  assert ancestors.ancestor_map(atoms, usage, loose).num_ancestors > 0


def test_the_map_is_deterministic_and_zero_atoms_stay_zero():
  atoms, codes, _, _ = _hierarchy(seed=4)
  atoms[3] = 0.0
  a = ancestors.ancestor_map(atoms, (codes > 0).sum(0))
  b = ancestors.ancestor_map(atoms.copy(), (codes > 0).sum(0))
  np.testing.assert_array_equal(a.weights, b.weights)
  np.testing.assert_array_equal(a.directions, b.directions)
  assert not a.weights[3].any() and not a.directions[3].any()


@pytest.mark.parametrize("atoms,usage,match", [
    (np.zeros((0, 4)), np.zeros(0), "non-empty"),
    (np.ones((3, 4)), np.ones(2), r"usage has shape \(2,\)"),
    (np.full((3, 4), np.nan), np.ones(3), "NaN"),
    (np.ones((3, 4)), -np.ones(3), "negative"),
])
def test_bad_inputs_are_named(atoms, usage, match):
  with pytest.raises(DataError, match=match):
    ancestors.ancestor_map(atoms, usage)


@pytest.mark.parametrize("field,value", [("cosines", ()), ("cosines", (0.5, 1.5)),
                                         ("iterations", 0), ("merge_cosine", 1.0),
                                         ("chance_sigmas", -1.0), ("grouping", "kmeans"),
                                         ("gap", 0.0)])
def test_impossible_settings_are_refused(field, value):
  with pytest.raises(ConfigError, match=field):
    ancestors.ancestor_map(np.eye(4), np.ones(4), ancestors.AncestorSettings(**{field: value}))


def test_codes_of_the_wrong_width_are_refused():
  amap = ancestors.ancestor_map(np.eye(4, dtype=np.float32), np.ones(4))
  with pytest.raises(DataError, match=r"\(n, 4\)"):
    amap.codes(np.ones((2, 5)))
