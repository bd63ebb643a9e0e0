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


def _leaves_with_little_root(seed=5, d=128, roots=4, leaves=6, n=6000):
  """Each row fires a root with one of its leaves, but each atom is its leaf with at most 0.3 of
  the root. Returns (x, unit atoms, codes over them, root directions, leaf directions, root
  activity (n, roots) as 0/1)."""
  rng = np.random.default_rng(seed)
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
  return x.astype(np.float32), atoms, codes, root_dirs, leaf_dirs, root_activity


def test_profiles_find_parents_the_atoms_hardly_carry():
  """The atoms of `_leaves_with_little_root` share no direction (siblings' cosine below 0.09,
  under the chance floor). Their row profiles hold the whole path, so grouping the profiles finds
  the roots; the codes and the reconstruction stay the atoms'."""
  x, atoms, codes, root_dirs, _, root_activity = _leaves_with_little_root()
  d, roots = x.shape[1], root_dirs.shape[0]
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
                                         ("gap", 0.0), ("selection", "greedy")])
def test_impossible_settings_are_refused(field, value):
  with pytest.raises(ConfigError, match=field):
    ancestors.ancestor_map(np.eye(4), np.ones(4), ancestors.AncestorSettings(**{field: value}))


def _directions(d=64, seed=0):
  """Orthonormal e0..e3 and pure directions [p1, p1' (cosine 0.95 with p1), p2, p3]."""
  e = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, 4)))[0].T
  pure = np.stack([e[0], 0.95 * e[0] + np.sqrt(1 - 0.95 ** 2) * e[1], e[2], e[3]])
  return e, pure


def test_pursuit_gives_a_second_mode_of_one_ancestor_no_slot():
  e, pure = _directions()
  target = 0.8 * e[0] + 0.6 * e[2]  # Ancestors p1 and p2; p1' is a second mode of p1.
  two = {"max_ancestors": 2}
  by_cosine = ancestors.choose_ancestors(pure, target, ancestors.AncestorSettings(**two))
  assert by_cosine.tolist() == [0, 1]  # Cosines 0.80 and 0.76 against p2's 0.60.
  pursuit = ancestors.AncestorSettings(selection="pursuit", **two)
  assert ancestors.choose_ancestors(pure, target, pursuit).tolist() == [0, 2]


def test_pursuit_stops_below_chance():
  e, pure = _directions()  # d = 64: chance is 3 / 8 = 0.375.
  target = 0.9 * e[0] + 0.3 * e[3] + np.sqrt(1 - 0.81 - 0.09) * e[1]
  by_cosine = ancestors.choose_ancestors(pure, target, ancestors.AncestorSettings())
  assert 3 in by_cosine.tolist()  # A cosine of 0.3 is above min_cosine = 0.15.
  chosen = ancestors.choose_ancestors(pure, target, ancestors.AncestorSettings(selection="pursuit"))
  assert chosen.tolist() == [1]  # p1' (projection 0.95), then nothing above chance is left.
  # Above chance, the same share is an ancestor.
  wide = ancestors.AncestorSettings(selection="pursuit", chance_sigmas=2.0)  # 0.25 < 0.3.
  assert 3 in ancestors.choose_ancestors(pure, target, wide).tolist()


def test_pursuit_adds_the_chains_of_the_directions_it_chose():
  e, _ = _directions()  # d = 64: chance is 0.375.
  modes = np.stack([e[0], (e[0] + e[1]) / np.sqrt(2), e[2]])  # A root, its child's mode, another.
  pure, chains = ancestors.pure_chains(modes, ancestors.AncestorSettings())
  np.testing.assert_allclose(np.abs(pure @ e[:3].T), np.eye(3), atol=1e-6)
  assert chains == [[], [0], []]  # The child's mode was made orthogonal to the root.
  np.testing.assert_array_equal(ancestors.pure_directions(modes, ancestors.AncestorSettings()),
                                pure)
  target = 0.95 * e[1] + 0.2 * e[0] + np.sqrt(1 - 0.95 ** 2 - 0.2 ** 2) * e[3]
  s = ancestors.AncestorSettings(selection="pursuit")
  assert ancestors.choose_ancestors(pure, target, s).tolist() == [1]  # The root is below chance,
  assert ancestors.choose_ancestors(pure, target, s, chains).tolist() == [1, 0]  # but in the chain.
  # The cosine selection reads no chains: it takes the root for its cosine of 0.2 (above
  # min_cosine), and without that share leaves it out, chains or not.
  cosine = ancestors.AncestorSettings()
  assert ancestors.choose_ancestors(pure, target, cosine, chains).tolist() == [1, 0]
  assert ancestors.choose_ancestors(pure, 0.95 * e[1] + np.sqrt(1 - 0.95 ** 2) * e[3], cosine,
                                    chains).tolist() == [1]


def test_pursuit_maps_a_dictionary_of_paths_onto_one_root_each():
  atoms, codes, root_activity, root_dirs = _hierarchy()
  amap = ancestors.ancestor_map(atoms, (codes > 0).sum(0),
                                ancestors.AncestorSettings(selection="pursuit"))
  assert amap.num_ancestors == root_dirs.shape[0]
  # Each path atom keeps exactly its root; codes still reconstruct and find the roots.
  assert np.all((amap.weights[:, atoms.shape[0]:] > 0).sum(1) == 1)
  np.testing.assert_allclose(amap.codes(codes) @ amap.directions, codes @ atoms, atol=1e-4)
  assert _corr(root_activity, amap.codes(codes)).max(1).min() > 0.99


def test_the_pursuit_continued_on_the_atom_finds_the_parent_its_profile_missed():
  e = np.linalg.qr(np.random.default_rng(0).normal(size=(64, 5)))[0].T  # d = 64: chance 0.375.
  pure = e[:3]  # A root, a parent and the parent's sibling.
  atom = (e[0] + e[1] + e[3]) / np.sqrt(3)  # The path root, parent, leaf e3.
  # A profile mixed with the sibling's rows: the root, the sibling, too little of the parent.
  profile = 0.6 * e[0] + 0.5 * e[2] + 0.2 * e[1] + np.sqrt(1 - 0.36 - 0.25 - 0.04) * e[4]
  pursuit = ancestors.AncestorSettings(selection="pursuit", max_ancestors=2)
  chosen = ancestors.choose_ancestors(pure, profile, pursuit)
  assert chosen.tolist() == [0, 2]
  assert ancestors.pursue_ancestors(pure, profile, pursuit).tolist() == [0, 2]
  # The atom keeps the parent after the fit on the root and the sibling (projection 0.58).
  assert ancestors.pursue_ancestors(pure, atom, pursuit, chosen=chosen).tolist() == [0, 2, 1]
  # 'remainder' chooses on the profile as 'pursuit' does; ancestor_map continues on the atom.
  remainder = ancestors.AncestorSettings(selection="remainder", max_ancestors=2)
  assert ancestors.choose_ancestors(pure, profile, remainder).tolist() == [0, 2]
  # An atom that keeps nothing above chance gains nothing.
  leaf = (e[0] + e[3]) / np.sqrt(2)
  assert ancestors.pursue_ancestors(pure, leaf, pursuit, chosen=[0]).tolist() == [0]


def test_remainder_gives_an_atom_the_root_its_profile_missed():
  atoms, codes, _, root_dirs = _hierarchy()
  leaves = atoms.shape[0] // root_dirs.shape[0]
  # Atom 0 (root 0) has a profile mixed with another root's rows: root 1 and its own leaf.
  leaf0 = np.sqrt(2.0) * atoms[0] - root_dirs[0]
  profiles = atoms.astype(np.float64).copy()
  profiles[0] = leaf0 + 0.9 * root_dirs[1]
  usage = (codes > 0).sum(0)
  maps = {sel: ancestors.ancestor_map(atoms, usage, ancestors.AncestorSettings(selection=sel),
                                      profiles=profiles, exact=False)
          for sel in ("pursuit", "remainder")}
  m = atoms.shape[0]
  for amap in maps.values():
    assert amap.num_ancestors == root_dirs.shape[0]
  root_unit = np.abs(maps["remainder"].directions[m:] @ root_dirs.T).argmax(0)
  assert sorted(root_unit.tolist()) == list(range(root_dirs.shape[0]))
  # With the pursuit the profile decides: atom 0 carries root 1 only, and its own unit keeps its
  # root; continued on the atom it also carries root 0, and its own unit is its leaf.
  w = {sel: amap.weights[0, m:] for sel, amap in maps.items()}
  assert w["pursuit"][root_unit[0]] == 0 and w["pursuit"][root_unit[1]] > 0
  assert w["remainder"][root_unit[0]] > 0
  assert abs(maps["pursuit"].directions[0] @ root_dirs[0]) > 0.5
  assert maps["remainder"].directions[0] @ leaf0 > 0.9
  # The other atoms' choices are the pursuit's: their atoms keep nothing above chance.
  np.testing.assert_array_equal(maps["remainder"].weights[leaves:] > 0,
                                maps["pursuit"].weights[leaves:] > 0)


def test_remainder_is_refused_without_profiles_or_with_exact_codes():
  atoms, codes, _, _ = _hierarchy()
  s = ancestors.AncestorSettings(selection="remainder")
  with pytest.raises(ConfigError, match="pass profiles"):
    ancestors.ancestor_map(atoms, (codes > 0).sum(0), s)
  with pytest.raises(ConfigError, match="exact=False"):
    ancestors.ancestor_map(atoms, (codes > 0).sum(0), s, profiles=atoms, exact=True)


def test_merging_a_duplicate_unit_gives_the_root_its_whole_activity():
  """Three path atoms (root + leaf) carry the root's unit; a fourth atom is the root alone, and its
  own unit is the root again (cosine 0.95). Fitted codes split the root's activity between the two
  units; merged, the more used unit codes the root on every row."""
  rng = np.random.default_rng(0)
  d, n = 32, 4000
  basis = np.linalg.qr(rng.normal(size=(d, 4)))[0].T.astype(np.float32)  # root, 3 leaves.
  root, leaves = basis[0], basis[1:]
  noise = rng.normal(size=d).astype(np.float32)
  noise -= (noise @ root) * root
  twin = 0.95 * root + np.sqrt(1 - 0.95 ** 2) * noise / np.linalg.norm(noise)
  directions = np.concatenate([leaves, twin[None], root[None]]).astype(np.float32)
  weights = np.zeros((4, 5), np.float32)
  weights[np.arange(3), np.arange(3)] = 1.0
  weights[:3, 4] = 1.0
  weights[3, 3] = 1.0
  atom = rng.integers(0, 4, n)  # Which atom each row uses; atom 3: the root alone.
  a_root, a_leaf = rng.lognormal(0.0, 0.3, n), rng.lognormal(0.0, 0.3, n)
  x = a_root[:, None] * root + np.where(atom[:, None] < 3, a_leaf[:, None], 0.0) * np.concatenate(
      [leaves, np.zeros((1, d), np.float32)])[atom]
  atom_codes = np.eye(4, dtype=np.float32)[atom]
  supports = atom_codes @ weights
  usage = (supports > 0).sum(0)
  merged_dirs, merged_weights, owner = ancestors.merge_duplicates(directions, weights, usage, 0.9)
  assert owner.tolist() == [0, 1, 2, 4, 4]
  assert not merged_dirs[3].any() and np.array_equal(merged_dirs[4], directions[4])
  np.testing.assert_array_equal(merged_weights[:, 4], np.ones(4))
  assert not merged_weights[:, 3].any()
  np.testing.assert_array_equal(merged_weights[:, :3], weights[:, :3])
  before = ancestors.support_fit(x, directions, supports)
  after = ancestors.support_fit(x, merged_dirs, atom_codes @ merged_weights)
  assert not after[:, 3].any()
  assert np.corrcoef(before[:, 4], a_root)[0, 1] < 0.9
  assert np.corrcoef(after[:, 4], a_root)[0, 1] > 0.99
  assert np.abs(after @ merged_dirs - x).max() < 1e-3  # The root's twin was not needed.


def test_merging_joins_each_unit_to_a_kept_unit_not_along_a_chain():
  """a-b and b-c lie within the cosine, a-c does not: b joins a (more used), c stays, although b
  lies near it, so merges never chain across distinct directions."""
  a = np.array([1.0, 0.0, 0.0], np.float32)
  c = np.array([np.cos(0.7), np.sin(0.7), 0.0], np.float32)
  b = np.array([np.cos(0.35), np.sin(0.35), 0.0], np.float32)
  assert a @ b > 0.9 and b @ c > 0.9 and a @ c < 0.9
  directions = np.stack([a, b, c])
  weights = np.eye(3, dtype=np.float32)
  _, merged, owner = ancestors.merge_duplicates(directions, weights, np.array([9, 5, 2]), 0.9)
  assert owner.tolist() == [0, 0, 2]
  np.testing.assert_array_equal(merged, [[1, 0, 0], [1, 0, 0], [0, 0, 1]])
  # Ties of usage go to the lower index; zero directions are never kept.
  _, _, owner = ancestors.merge_duplicates(np.stack([b, a, 0 * a]), weights, np.ones(3), 0.9)
  assert owner.tolist() == [0, 0, 2]


def test_merging_refuses_mismatched_shapes_and_cosines():
  directions, weights = np.eye(3, dtype=np.float32), np.eye(3, dtype=np.float32)
  with pytest.raises(DataError, match=r"\(m, u\) weights"):
    ancestors.merge_duplicates(directions, weights[:, :2], np.ones(3), 0.9)
  with pytest.raises(DataError, match="one usage per unit"):
    ancestors.merge_duplicates(directions, weights, np.ones(2), 0.9)
  with pytest.raises(ConfigError, match=r"in \(0, 1\)"):
    ancestors.merge_duplicates(directions, weights, np.ones(3), 1.0)


def test_codes_of_the_wrong_width_are_refused():
  amap = ancestors.ancestor_map(np.eye(4, dtype=np.float32), np.ones(4))
  with pytest.raises(DataError, match=r"\(n, 4\)"):
    amap.codes(np.ones((2, 5)))


def _independent_magnitudes(seed=0, d=96, roots=4, leaves=6, n=3000):
  """Rows of one or two paths whose root and leaf have independent magnitudes (as in SAELens's
  hierarchies), the dictionary of path atoms (root + leaf) / sqrt(2), and the truth: (x, atoms,
  codes of x over the atoms by least squares on each row's true paths, root activity, leaf
  activity)."""
  rng = np.random.default_rng(seed)
  basis = np.linalg.qr(rng.normal(size=(d, roots * (leaves + 1))))[0].T
  root_dirs, leaf_dirs = basis[:roots], basis[roots:].reshape(roots * leaves, d)
  atoms = (np.repeat(root_dirs, leaves, 0) + leaf_dirs) / np.sqrt(2.0)
  x = np.zeros((n, d))
  codes = np.zeros((n, roots * leaves))
  root_activity, leaf_activity = np.zeros((n, roots)), np.zeros((n, roots * leaves))
  for i in range(n):
    paths = rng.choice(roots * leaves, size=rng.integers(1, 3), replace=False)
    for path in paths:
      a, b = rng.lognormal(0.0, 0.4, size=2)
      x[i] += a * root_dirs[path // leaves] + b * leaf_dirs[path]
      root_activity[i, path // leaves] += a
      leaf_activity[i, path] = b
    codes[i, paths] = np.linalg.lstsq(atoms[paths].T, x[i], rcond=None)[0].clip(0)
  return (x.astype(np.float32), atoms.astype(np.float32), codes.astype(np.float32),
          root_activity, leaf_activity)


def test_fitted_codes_give_each_unit_its_own_magnitude():
  """Spread codes tie a root's magnitude to its leaf's; fitting each row on the units it uses
  recovers both, on no more units and with no larger error than the spread codes."""
  x, atoms, codes, root_activity, leaf_activity = _independent_magnitudes()
  amap = ancestors.ancestor_map(atoms, (codes > 0).sum(0))
  assert amap.num_ancestors == root_activity.shape[1]
  spread = amap.codes(codes)
  fitted = ancestors.support_fit(x, amap.directions, spread, batch_size=512)
  assert fitted.shape == spread.shape and fitted.dtype == np.float32 and (fitted >= 0).all()
  assert not (fitted > 0)[spread == 0].any()  # The support can only shrink.
  err = lambda c: np.linalg.norm(x - c @ amap.directions, axis=1)
  assert np.all(err(fitted) <= err(spread) + 1e-4)
  best = lambda truth, c: _corr(truth, c).max(1)
  assert best(root_activity, spread).max() < 0.97
  assert best(root_activity, fitted).min() > 0.99
  assert best(leaf_activity, spread).mean() < 0.97
  assert best(leaf_activity, fitted).min() > 0.999
  again = ancestors.support_fit(x.copy(), amap.directions, spread.copy(), batch_size=1000)
  np.testing.assert_array_equal(fitted, again)  # Whatever the batches.


def test_inexact_remainders_are_what_each_atom_carries_beyond_its_ancestors():
  """With profiles, exact=False takes each atom's own remainder from the atom itself. In
  `_leaves_with_little_root` the profiles give each atom its root's whole share, which the atoms
  hardly carry: the exact remainders then point away from the leaves, the inexact ones are the
  leaves, and the fitted codes reconstruct each row no worse than the spread codes they start
  from, and the rows better than the atoms' codes do."""
  x, atoms, codes, _, leaf_dirs, root_activity = _leaves_with_little_root()
  usage, profiles = (codes > 0).sum(0), ancestors.row_profiles(x, codes)
  settings = ancestors.AncestorSettings(grouping="linkage")
  exact = ancestors.ancestor_map(atoms, usage, settings, profiles=profiles)
  inexact = ancestors.ancestor_map(atoms, usage, settings, profiles=profiles, exact=False)
  m, roots = atoms.shape[0], root_activity.shape[1]
  assert exact.num_ancestors == inexact.num_ancestors == roots
  np.testing.assert_array_equal(exact.weights[:, m:], inexact.weights[:, m:])  # Same sharing.
  leaf_cos = lambda amap: np.abs(np.sum(amap.directions[:m] * leaf_dirs, axis=1))
  assert leaf_cos(inexact).min() > 0.975, leaf_cos(inexact)
  assert leaf_cos(exact).max() < 0.9, leaf_cos(exact)
  spread = inexact.codes(codes)
  fitted = ancestors.support_fit(x, inexact.directions, spread)
  err = lambda recon: np.linalg.norm(x - recon, axis=1)
  assert np.all(err(fitted @ inexact.directions) <= err(spread @ inexact.directions) + 1e-4)
  assert np.mean(err(fitted @ inexact.directions)) < np.mean(err(codes @ atoms))
  assert _corr(root_activity, fitted).max(1).min() > 0.95
  # Without profiles, exact=False changes nothing.
  np.testing.assert_array_equal(ancestors.ancestor_map(atoms, usage, exact=False).weights,
                                ancestors.ancestor_map(atoms, usage).weights)


def test_fitted_codes_keep_rows_without_codes_at_zero():
  directions = np.eye(4, dtype=np.float32)
  codes = np.array([[0, 0, 0, 0], [1, 0, 2, 0]], np.float32)
  x = np.array([[5, 5, 5, 5], [3, 1, 4, 1]], np.float32)
  np.testing.assert_allclose(ancestors.support_fit(x, directions, codes),
                             [[0, 0, 0, 0], [3, 0, 4, 0]], atol=1e-6)


@pytest.mark.parametrize("x,directions,codes,match", [
    (np.ones((2, 3)), np.ones((4, 3)), np.ones((2, 5)), r"codes \(2, 5\)"),
    (np.ones((2, 3)), np.ones((4, 2)), np.ones((2, 4)), r"directions \(4, 2\)"),
    (np.full((2, 3), np.nan), np.ones((4, 3)), np.ones((2, 4)), "NaN"),
    (np.ones((2, 3)), np.ones((4, 3)), -np.ones((2, 4)), "negative"),
])
def test_support_fit_names_bad_inputs(x, directions, codes, match):
  with pytest.raises(DataError, match=match):
    ancestors.support_fit(x, directions, codes)


def _base_child(seed=0, d=64, parents=3, children=4, n=3000):
  """Exclusive siblings under parents that never fire alone, children's magnitudes 0.85-1.15 times
  their parent's; rows hold one or two parents' paths. The dictionary a learner may leave: per
  parent a broad atom, the parent with its child 0 (the base child), firing on every row of the
  parent, and a narrow atom per other child, its difference from the base child, firing on top.
  Returns (rows, codes over the atoms, which atoms are broad, units, the map's weights, the true
  child directions of the narrow atoms' units, index of the narrow atoms)."""
  rng = np.random.default_rng(seed)
  basis = np.linalg.qr(rng.normal(size=(d, parents * (children + 1))))[0].T
  p_dirs, c_dirs = basis[:parents], basis[parents:].reshape(parents, children, d)
  per = children  # Atoms per parent: 1 broad + (children - 1) narrow.
  m = parents * per
  x = np.zeros((n, d))
  fires = np.zeros((n, m), bool)
  for i in range(n):
    for p in rng.choice(parents, size=rng.integers(1, 3), replace=False):
      c = rng.integers(children)
      mp = rng.lognormal(0.0, 0.2)
      x[i] += mp * p_dirs[p] + mp * rng.uniform(0.85, 1.15) * c_dirs[p, c]
      fires[i, p * per] = True
      if c:
        fires[i, p * per + c] = True
  codes = fires * rng.uniform(0.5, 1.5, size=fires.shape)
  broad = np.arange(m) % per == 0
  # Units: the atoms' own remainders (the base child; the narrow differences), then the parents.
  own = np.zeros((m, d))
  weights = np.zeros((m, m + parents))
  for p in range(parents):
    own[p * per] = c_dirs[p, 0]
    weights[p * per, m + p] = 1.0
    for c in range(1, children):
      diff = c_dirs[p, c] - c_dirs[p, 0]
      own[p * per + c] = diff / np.linalg.norm(diff)
  weights[np.arange(m), np.arange(m)] = 1.0
  units = np.concatenate([own, p_dirs]).astype(np.float32)
  narrow = np.flatnonzero(~broad)
  truth = np.stack([c_dirs[j // per, j % per] for j in narrow])
  return (x.astype(np.float32), codes.astype(np.float32), broad, units,
          weights.astype(np.float32), truth, narrow)


def test_narrow_atoms_firing_inside_a_broad_atom_are_found():
  _, codes, broad, _, _, _, narrow = _base_child()
  pairs = ancestors.nested_atoms(codes)
  per = 4
  expected = [[j - j % per, j] for j in narrow]
  np.testing.assert_array_equal(pairs, expected)
  assert pairs.dtype == np.int32
  assert np.all(broad[pairs[:, 0]])
  # Each broad atom has 3 narrow ones: asking for 4 leaves none.
  assert ancestors.nested_atoms(codes, min_nested=4).shape == (0, 2)
  # Independent atoms never nest.
  rng = np.random.default_rng(1)
  independent = (rng.random((5000, 6)) < 0.3).astype(np.float32)
  assert ancestors.nested_atoms(independent).shape == (0, 2)


def test_nested_supports_keep_the_broad_atoms_own_unit_off_the_narrow_rows():
  _, codes, broad, _, weights, _, _ = _base_child()
  pairs = ancestors.nested_atoms(codes)
  spread = codes @ weights
  supports = ancestors.nested_supports(codes, weights, pairs)
  m = weights.shape[0]
  covered = np.zeros_like(codes, bool)  # Broad atom fires and one of its narrow atoms too.
  for b, j in pairs:
    covered[:, b] |= (codes[:, b] > 0) & (codes[:, j] > 0)
  np.testing.assert_array_equal(supports[:, :m][covered], 0.0)
  np.testing.assert_array_equal(supports[:, :m][~covered], spread[:, :m][~covered])
  np.testing.assert_array_equal(supports[:, m:], spread[:, m:])  # Ancestors untouched.
  assert covered[:, broad].any() and (supports[:, :m][:, broad] > 0).any()
  # Without pairs the supports are the spread codes.
  np.testing.assert_array_equal(
      ancestors.nested_supports(codes, weights, np.zeros((0, 2), np.int32)), spread)


def test_directions_fitted_to_nested_supports_become_the_children():
  """A narrow atom's unit is its child minus the base child (cosine 0.71 with the child). Fitted
  to supports that keep the base child off its rows, it becomes the child; fitted to the spread
  supports, where the base child cancels its difference, it stays where it is."""
  from identi.infer import refine_on_supports  # pylint: disable=g-import-not-at-top
  x, codes, _, units, weights, truth, narrow = _base_child()
  pairs = ancestors.nested_atoms(codes)
  cos = lambda u: np.abs(np.sum(u[narrow] * truth, axis=1))
  assert cos(units).max() < 0.72
  nested = refine_on_supports(x, units, ancestors.nested_supports(codes, weights, pairs),
                              num_rounds=3, batch_size=1000)
  spread = refine_on_supports(x, units, codes @ weights, num_rounds=3)
  assert cos(nested).min() > 0.99, cos(nested)
  assert cos(spread).max() < 0.8, cos(spread)
  np.testing.assert_allclose(np.linalg.norm(nested, axis=1), 1.0, rtol=1e-5)
  again = refine_on_supports(x, units, ancestors.nested_supports(codes, weights, pairs),
                             num_rounds=3, batch_size=1000)
  np.testing.assert_array_equal(nested, again)


@pytest.mark.parametrize("codes,weights,pairs,match", [
    (np.ones((2, 3)), np.ones((4, 6)), np.zeros((0, 2)), r"codes \(2, 3\)"),
    (np.ones((2, 4)), np.ones((4, 6)), np.array([[0, 4]]), "indices in"),
    (np.ones((2, 4)), np.ones((4, 6)), np.array([0, 1]), r"shape \(2,\)"),
])
def test_nested_supports_name_bad_inputs(codes, weights, pairs, match):
  with pytest.raises(DataError, match=match):
    ancestors.nested_supports(codes, weights, pairs)


@pytest.mark.parametrize("kwargs,error,match", [
    ({"share": 0.0}, ConfigError, "share"), ({"ratio": 1.5}, ConfigError, "ratio"),
    ({"min_nested": 0}, ConfigError, "min_nested"),
])
def test_nested_atoms_refuse_impossible_settings(kwargs, error, match):
  with pytest.raises(error, match=match):
    ancestors.nested_atoms(np.ones((4, 3)), **kwargs)


def test_nested_atoms_name_bad_codes():
  with pytest.raises(DataError, match="finite"):
    ancestors.nested_atoms(np.full((4, 3), np.nan))


def _leaky_rows(n=3000, units=40, d=64, seed=0):
  """Rows of 3 units each (codes in [1, 2]) plus a leak of 0.05 along 3 other units, and supports
  that hold both: the fit gives the leaking units small codes on rows that are not theirs."""
  rng = np.random.default_rng(seed)
  directions = np.linalg.qr(rng.normal(size=(d, units)))[0].T.astype(np.float32)
  true = np.zeros((n, units), np.float32)
  leak = np.zeros((n, units), np.float32)
  for i in range(n):
    picked = rng.choice(units, 6, replace=False)
    true[i, picked[:3]] = rng.uniform(1.0, 2.0, 3)
    leak[i, picked[3:]] = 0.05
  x = (true + leak) @ directions
  return x.astype(np.float32), directions, true, ((true + leak) > 0).astype(np.float32)


def test_code_floors_are_a_fraction_of_each_units_typical_code():
  codes = np.array([[0.0, 1.0, 0.0], [2.0, 3.0, 0.0], [4.0, 0.0, 0.0], [0.0, 5.0, 0.0]],
                   np.float32)
  floors = ancestors.code_floors(codes, 0.5, quantile=0.5)
  np.testing.assert_allclose(floors, [0.5 * 3.0, 0.5 * 3.0, 0.0])  # Medians 3 and 3; never fires.
  np.testing.assert_allclose(ancestors.code_floors(codes, 0.25),
                             [0.25 * np.quantile([2, 4], 0.9), 0.25 * np.quantile([1, 3, 5], 0.9),
                              0.0], rtol=1e-6)
  np.testing.assert_array_equal(ancestors.code_floors(codes, 0.0), 0.0)


def test_floored_fit_drops_the_small_codes_of_units_a_row_does_not_hold():
  x, directions, true, supports = _leaky_rows()
  fitted = ancestors.support_fit(x, directions, supports)
  leaking = (fitted > 0) & (true == 0)
  assert leaking.sum(1).min() == 3  # Every row's fit keeps its three leaking units,
  floors = ancestors.code_floors(fitted, 0.25)
  floored = ancestors.floored_fit(x, directions, fitted, floors)
  np.testing.assert_array_equal(floored > 0, true > 0)  # which the floors drop, and only those.
  # The rows are fitted again on the units left: the same as fitting on those supports.
  np.testing.assert_array_equal(
      floored, ancestors.support_fit(x, directions, np.where(fitted >= floors, fitted, 0.0)))
  np.testing.assert_allclose(floored[true > 0], true[true > 0], atol=1e-5)


@pytest.mark.parametrize("call,error,match", [
    (lambda: ancestors.code_floors(np.ones((3, 2)), 1.0), ConfigError, "fraction=1.0"),
    (lambda: ancestors.code_floors(np.ones((3, 2)), 0.2, quantile=-0.1), ConfigError,
     "quantile=-0.1"),
    (lambda: ancestors.code_floors(np.full((3, 2), np.nan), 0.2), DataError, "finite"),
    (lambda: ancestors.floored_fit(np.ones((3, 4)), np.eye(2, 4), np.ones((3, 2)), np.ones(3)),
     DataError, r"floors \(3,\)"),
    (lambda: ancestors.floored_fit(np.ones((3, 4)), np.eye(2, 4), np.ones((3, 2)), -np.ones(2)),
     DataError, "non-negative"),
])
def test_floors_name_bad_inputs(call, error, match):
  with pytest.raises(error, match=match):
    call()
