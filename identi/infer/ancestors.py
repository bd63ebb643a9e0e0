"""Shared ancestors: a dictionary of tree paths re-expressed over the directions its atoms share.

Under a hierarchy whose parent fires with exactly one of its children (SAELens's synthetic
hierarchies), an SAE or a refined dictionary does not learn the parent as an atom: it learns one
atom per path, a leaf plus its ancestors, because a parent never fires alone. The parent is then
absent from every code, although the codes hold it: its activity is the sum of its paths'. The
paths of siblings share the parent's direction (cosine about 0.75 in SAELens's worlds, about 0.5
between cousins), so the parent is the direction a group of atoms has in common.

`ancestor_map` finds those directions without the truth and re-expresses the dictionary over them:

1. **Shared directions**, by the grouping `AncestorSettings.grouping` names (`GROUPINGS`).
   Cosines below ``chance_sigmas`` / sqrt(d) never make a group: random directions in d
   dimensions reach them (cosines of random unit vectors have standard deviation 1 / sqrt(d)).
   Groups with at least ``min_members`` atoms are kept; of modes within ``merge_cosine`` the one
   with more members stays.
   - ``'mean_shift'`` (the default): spherical mean-shift over the unit atoms, each weighted by
     its usage (how many rows' codes use it), at each membership cosine of ``cosines`` (coarse
     groups at low cosines, siblings at high ones): every atom starts a mode; a mode moves to the
     usage-weighted mean direction of the atoms within the cosine, ``iterations`` times.
   - ``'linkage'``: average-linkage clustering of the unit atoms by cosine (every atom weighs the
     same); each merge of the dendrogram is a group, its mode the mean direction of its members,
     if the average cosine between the two groups it merges is at least ``gap`` above the
     average cosine at which it merges into the next larger group. Without that gap a binary
     dendrogram splits a set of equally close siblings into partial groups that no concept stands
     for. It needs no cosine grid, so it also finds parents whose children share less than the
     grid's lowest cosine.
   - ``'union'``: the modes of both, together from most to fewest members (where both find a
     group, its two modes are within ``merge_cosine`` and the one with more members stays).
2. **Pure directions.** A mode is the sum of its own direction and its ancestors'. Modes are
   visited from most to fewest members; each is made orthogonal (Gram-Schmidt) to the pure
   directions of its chain of larger modes, where the next link is the larger mode of highest
   cosine with the current one (at least ``chain_cosine``, at most ``max_chain`` links). A mode
   with less than ``min_pure`` of its norm left is dropped.
3. **Decomposition.** Each atom u is a non-negative combination of some pure directions p (by
   non-negative least squares) plus its own remainder r: u = sum_k w_k p_k + r. Which
   directions, by ``selection`` (`SELECTIONS`):
   - ``'cosine'`` (the default): the at most ``max_ancestors`` of highest cosine with the atom,
     above ``min_cosine``. Where the grouping found one ancestor as several nearby modes, they
     all pass and take the slots of the atom's other ancestors.
   - ``'pursuit'``: at most ``max_ancestors`` one at a time (orthogonal matching pursuit with
     non-negative weights), each the direction with the largest projection on what the atom's
     unit vector (or unit profile) keeps after the fit on those already chosen, while that
     projection is above ``min_cosine`` and above chance (``chance_sigmas`` / sqrt(d)). A second
     mode of an ancestor already chosen has little left to explain, so the slot goes to the next
     ancestor. Then the chain of each chosen direction (the larger modes step 2 made it
     orthogonal to, its own ancestors) joins: an atom under a parent is under the parent's
     ancestors too, even where its profile keeps too little of them to pass the bar (a row
     profile subtracts the mean of the other rows, which hold a frequent root too).
   - ``'remainder'`` (with profiles and ``exact=False`` only): 'pursuit' on the profile, then the
     same pursuit continued on the atom itself, after the fit on the directions chosen so far: at
     most ``max_ancestors`` more, each while its projection on what the atom keeps is above the
     same bar, with its chain. A profile mixes the rows where OMP uses the atom wrongly, and its
     pursuit may spend a slot on a sibling's direction; the parent it missed then stays in the
     atom's own remainder, which is then not a part, and the parent's unit is off on the atom's
     rows. A direction the profile's fit gives no weight takes the atom's own weight, so that the
     atom carries it.
4. **Codes.** Codes c over the atoms become codes over the units [own remainders r / |r|, pure
   directions]: z = c @ weights, with weights[j, j] = |r_j| and weights[j, m + k] = w_jk. The
   reconstruction is the same (z @ directions = c @ atoms), codes stay non-negative, and a
   parent's code is the weighted sum of its paths' codes.

**Row profiles** (`row_profiles`, passed as `profiles`): steps 1-3 may read, in place of each
atom, the mean of the rows that use it minus the mean of the others. A dictionary does not always
learn whole paths: an atom may be a leaf with little of its parents, whose share another atom on
the same rows carries. The rows still hold the whole path wherever the atom fires, so the
profiles of one parent's atoms share its direction even where the atoms do not.

**Fitted codes** (`support_fit`): spread codes tie a parent's magnitude to its paths' codes,
while under SAELens's hierarchies a parent's magnitude varies on its own. Re-fitting each row on
the units its spread codes use (non-negative least squares) gives each unit its own magnitude.
With profiles, `ancestor_map(..., exact=False)` takes each atom's own remainder from the atom
itself (what it carries of its ancestors removed) rather than from its profile's weights: the
remainders are nearer the parts, and the fit, not the fixed proportions, reconstructs the rows.

**Nested atoms** (`nested_atoms`, `nested_supports`): where siblings exclude each other, a
dictionary may learn a parent's path with one "base" child as one broad atom, which fires on every
row of the parent, and each other child as a narrow atom that fires on top of it and cancels the
base child. The narrow atoms' rows lie inside the broad atom's. Keeping the broad atom's own unit
(the base child) off the rows where a narrow atom fires, and fitting the units' directions to
those supports (`identi.infer.refine_on_supports`), turns the narrow atoms' units into the
children.

Where the atoms are already the parts (no group of atoms shares a direction), no mode has enough
members and the map is the identity. docs/decisions.md records the settings' origin and where the
stage applies the map.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from identi.errors import ConfigError, DataError
from identi.infer.duplicates import distinct_atoms
from identi.infer.omp import bucket_size, check_positive_int, support_nnls


@dataclasses.dataclass(frozen=True)
class AncestorSettings:
  """The knobs of :func:`ancestor_map` (see the module docstring)."""

  cosines: tuple[float, ...] = (0.8, 0.6, 0.45, 0.3)
  chance_sigmas: float = 3.0
  iterations: int = 15
  min_members: int = 3
  merge_cosine: float = 0.98
  chain_cosine: float = 0.3
  max_chain: int = 7
  min_pure: float = 0.3
  max_ancestors: int = 4
  min_cosine: float = 0.15
  grouping: str = "mean_shift"
  gap: float = 0.05
  selection: str = "cosine"

  def validate(self) -> "AncestorSettings":
    if not self.cosines or not all(isinstance(c, numbers.Real) and 0.0 < c < 1.0
                                   for c in self.cosines):
      raise ConfigError(f"AncestorSettings field 'cosines' is {self.cosines!r}; it must be a "
                        "non-empty tuple of cosines in (0, 1), e.g. (0.8, 0.6, 0.45, 0.3)")
    if not isinstance(self.chance_sigmas, numbers.Real) or self.chance_sigmas < 0:
      raise ConfigError(f"AncestorSettings field 'chance_sigmas' is {self.chance_sigmas!r}; it "
                        "must be a number >= 0 (0 keeps every cosine)")
    for name in ("iterations", "min_members", "max_chain", "max_ancestors"):
      value = getattr(self, name)
      if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"AncestorSettings field '{name}' is {value!r}; it must be an integer "
                          ">= 1")
    if self.grouping not in GROUPINGS:
      raise ConfigError(f"AncestorSettings field 'grouping' is {self.grouping!r}; use one of "
                        f"{sorted(GROUPINGS)}")
    if self.selection not in SELECTIONS:
      raise ConfigError(f"AncestorSettings field 'selection' is {self.selection!r}; use one of "
                        f"{list(SELECTIONS)}")
    for name in ("merge_cosine", "chain_cosine", "min_pure", "min_cosine", "gap"):
      value = getattr(self, name)
      if not isinstance(value, numbers.Real) or not 0.0 < value < 1.0:
        raise ConfigError(f"AncestorSettings field '{name}' is {value!r}; it must be in (0, 1)")
    return self


@dataclasses.dataclass(frozen=True)
class AncestorMap:
  """The result of :func:`ancestor_map` for m atoms of dimension d and p pure directions.

  directions: float32 (m + p, d) the units' directions: rows 0..m-1 each atom's own remainder
  (unit norm, or 0 where an atom is wholly its ancestors), rows m.. the pure directions (unit
  norm). weights: float32 (m, m + p), codes over the atoms @ weights = codes over the units.
  modes: the number of shared directions found before they were made pure."""
  directions: np.ndarray
  weights: np.ndarray
  modes: int

  @property
  def num_ancestors(self) -> int:
    return self.directions.shape[0] - self.weights.shape[0]

  def codes(self, atom_codes) -> np.ndarray:
    """Codes (n, m + p) over the units of codes (n, m) over the atoms."""
    atom_codes = np.asarray(atom_codes, np.float32)
    if atom_codes.ndim != 2 or atom_codes.shape[1] != self.weights.shape[0]:
      raise DataError(f"AncestorMap.codes got codes of shape {atom_codes.shape}; they must be "
                      f"(n, {self.weights.shape[0]}), one column per atom of the map")
    return atom_codes @ self.weights


def _unit(v: np.ndarray) -> np.ndarray:
  return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _largest_first(modes: list[np.ndarray], members: list[int], unit: np.ndarray,
                   s: AncestorSettings) -> np.ndarray:
  """(q, d) the modes from most to fewest members, without those within `merge_cosine` of a mode
  with more members."""
  if not modes:
    return np.zeros((0, unit.shape[1]))
  stacked = np.stack(modes)
  kept: list[int] = []
  for i in np.argsort(-np.asarray(members), kind="stable"):
    if not kept or float(np.max(stacked[kept] @ stacked[i])) <= s.merge_cosine:
      kept.append(int(i))
  return stacked[kept]


def _mean_shift_groups(unit: np.ndarray, usage: np.ndarray,
                       s: AncestorSettings) -> tuple[list[np.ndarray], list[int]]:
  """The mean-shift's modes and their member counts, before `_largest_first`."""
  modes, members = [], []
  floor = s.chance_sigmas / np.sqrt(unit.shape[1])
  for tau in [t for t in s.cosines if t >= floor]:
    v = unit.copy()
    for _ in range(s.iterations):
      inside = (unit @ v.T > tau) * usage[:, None]
      v = _unit(inside.T @ unit)
    count = (unit @ v.T > tau).sum(0)
    keep = count >= s.min_members
    modes.extend(v[keep])
    members.extend(count[keep].tolist())
  return modes, members


def _linkage_groups(unit: np.ndarray, s: AncestorSettings) -> tuple[list[np.ndarray], list[int]]:
  """The linkage's groups' mean directions and their sizes, before `_largest_first`."""
  from scipy.cluster.hierarchy import linkage  # Imported here, as scipy.optimize below.

  n = unit.shape[0]
  if n < max(2, s.min_members):
    return [], []
  merges = linkage(unit, method="average", metric="cosine")
  similarity = 1.0 - merges[:, 2]  # The average cosine between the two merged groups.
  joins = np.full(n + merges.shape[0], -np.inf)  # The similarity at which a node is merged.
  for t, (a, b) in enumerate(merges[:, :2].astype(int)):
    joins[a] = joins[b] = similarity[t]
  floor = s.chance_sigmas / np.sqrt(unit.shape[1])
  groups: list[list[int]] = [[i] for i in range(n)]
  modes, members = [], []
  for t, (a, b) in enumerate(merges[:, :2].astype(int)):
    group = groups[a] + groups[b]
    groups.append(group)
    if (len(group) >= s.min_members and similarity[t] >= floor
        and similarity[t] - joins[n + t] >= s.gap):
      modes.append(_unit(unit[group].mean(0)))
      members.append(len(group))
  return modes, members


def mean_shift_modes(unit: np.ndarray, usage: np.ndarray, s: AncestorSettings) -> np.ndarray:
  """Step 1 by spherical mean-shift at each membership cosine (grouping ``'mean_shift'``)."""
  return _largest_first(*_mean_shift_groups(unit, usage, s), unit, s)


def linkage_modes(unit: np.ndarray, usage: np.ndarray, s: AncestorSettings) -> np.ndarray:
  """Step 1 by average-linkage clustering (grouping ``'linkage'``); `usage` is not used."""
  del usage  # Every atom weighs the same: a group is a set of atoms, however often each fires.
  return _largest_first(*_linkage_groups(unit, s), unit, s)


def union_modes(unit: np.ndarray, usage: np.ndarray, s: AncestorSettings) -> np.ndarray:
  """Step 1 by both (grouping ``'union'``): the mean-shift's modes and the linkage's groups,
  together from most to fewest members, of modes within `merge_cosine` the one with more."""
  ms_modes, ms_members = _mean_shift_groups(unit, usage, s)
  lk_modes, lk_members = _linkage_groups(unit, s)
  return _largest_first(ms_modes + lk_modes, ms_members + lk_members, unit, s)


#: Step 1's groupings by name (`AncestorSettings.grouping`).
GROUPINGS = {"mean_shift": mean_shift_modes, "linkage": linkage_modes, "union": union_modes}

#: Step 3's ways to choose an atom's ancestors (`AncestorSettings.selection`).
SELECTIONS = ("cosine", "pursuit", "remainder")


def shared_directions(unit: np.ndarray, usage: np.ndarray,
                      s: AncestorSettings) -> np.ndarray:
  """Step 1: (q, d) modes of the unit atoms, from most to fewest members, by `s.grouping`."""
  return GROUPINGS[s.grouping](unit, usage, s)


def pure_directions(modes: np.ndarray, s: AncestorSettings) -> np.ndarray:
  """Step 2: (p, d) the modes made orthogonal to their chains of larger modes."""
  return pure_chains(modes, s)[0]


def pure_chains(modes: np.ndarray, s: AncestorSettings) -> tuple[np.ndarray, list[list[int]]]:
  """Step 2 with each pure direction's chain: (p, d) `pure_directions` and, for each, the indices
  (into those p) of the larger modes it was made orthogonal to, nearest first."""
  pure: list[np.ndarray | None] = []
  chains: list[list[int]] = []
  for i in range(modes.shape[0]):
    chain, j = [], i
    while len(chain) < s.max_chain:
      larger = [k for k in range(j) if pure[k] is not None]
      if not larger:
        break
      cosine = modes[larger] @ modes[j]
      if float(cosine.max()) < s.chain_cosine:
        break
      j = larger[int(np.argmax(cosine))]
      chain.append(j)
    r = modes[i].copy()
    for k in chain:
      r -= (r @ pure[k]) * pure[k]
    norm = float(np.linalg.norm(r))
    pure.append(r / norm if norm > s.min_pure else None)
    chains.append(chain)
  kept = [i for i, p in enumerate(pure) if p is not None]
  position = {i: k for k, i in enumerate(kept)}  # Chains hold only kept modes.
  return (np.stack([pure[i] for i in kept]) if kept else np.zeros((0, modes.shape[1])),
          [[position[j] for j in chains[i]] for i in kept])


def choose_ancestors(pure: np.ndarray, target: np.ndarray, s: AncestorSettings,
                     chains: list[list[int]] | None = None) -> np.ndarray:
  """Step 3's choice: indices of the pure directions (p, d) that decompose the unit vector
  `target` (d,), by `s.selection` (see the module docstring), in the order chosen. With
  'pursuit', the `chains` of `pure_chains` (None: no chains) add each chosen direction's chain
  after the directions the pursuit chose; 'remainder' chooses as 'pursuit' does here
  (`ancestor_map` continues it on the atom)."""
  if s.selection == "cosine":
    cosine = pure @ target
    candidates = np.argsort(-cosine, kind="stable")[:s.max_ancestors]
    return candidates[cosine[candidates] > s.min_cosine]
  return pursue_ancestors(pure, target, s, chains)


def pursue_ancestors(pure: np.ndarray, target: np.ndarray, s: AncestorSettings,
                     chains: list[list[int]] | None = None, chosen=()) -> np.ndarray:
  """The pursuit of step 3: indices of pure directions (p, d) for the unit vector `target` (d,),
  after those already `chosen` (kept first, in order). Non-negative orthogonal matching pursuit:
  at most `s.max_ancestors` more, each the direction of largest projection on what the fit on
  all chosen so far leaves of `target`, while that projection is above max(`s.min_cosine`,
  `s.chance_sigmas` / sqrt(d)); then the `chains` (`pure_chains`) of the new ones join.
  'remainder' calls it on an atom's profile, then on the atom with the profile's choice as
  `chosen`."""
  from scipy.optimize import nnls  # Imported here: scipy.optimize is slow to import.

  floor = max(s.min_cosine, s.chance_sigmas / np.sqrt(pure.shape[1]))
  chosen = [int(c) for c in chosen]
  start = len(chosen)
  remainder = target
  if chosen:
    w, _ = nnls(pure[chosen].T, target)
    remainder = target - w @ pure[chosen]
  while len(chosen) - start < min(s.max_ancestors, pure.shape[0]):
    projection = pure @ remainder
    projection[chosen] = -np.inf
    best = int(np.argmax(projection))
    if projection[best] <= floor:
      break
    chosen.append(best)
    w, _ = nnls(pure[chosen].T, target)
    remainder = target - w @ pure[chosen]
  if chains is not None:
    for k in chosen[start:]:
      chosen += [j for j in chains[k] if j not in chosen]
  return np.asarray(chosen, np.int64)


def row_profiles(x, codes) -> np.ndarray:
  """(m, d) each atom's row profile: the mean of the rows x (n, d) whose codes (n, m) use the atom
  minus the mean of the other rows (0 for an atom that no row or every row uses).

  Under a hierarchy a parent fires on every row where any path below it fires, so an atom's
  profile holds the atom's whole path, ancestors included, however the dictionary splits that
  path among atoms (a leaf's atom may carry none of its parent, which another atom on the same
  rows carries). `ancestor_map(..., profiles=row_profiles(x, codes))` groups atoms by their
  profiles."""
  x = np.asarray(x, np.float64)
  codes = np.asarray(codes)
  if x.ndim != 2 or codes.ndim != 2 or codes.shape[0] != x.shape[0]:
    raise DataError(f"row_profiles got rows of shape {x.shape} and codes of shape {codes.shape}; "
                    "pass (n, d) rows and their (n, m) codes, one row of codes per row")
  if not (np.all(np.isfinite(x)) and np.all(np.isfinite(codes))):
    raise DataError("row_profiles got NaN or infinite rows or codes; pass finite arrays")
  fires = (codes > 0).astype(np.float64)
  count = fires.sum(0)
  total = x.sum(0)
  inside = fires.T @ x
  rest = np.maximum(x.shape[0] - count, 1)[:, None]
  out = inside / np.maximum(count, 1)[:, None] - (total[None, :] - inside) / rest
  out[(count == 0) | (count == x.shape[0])] = 0.0
  return out


def ancestor_map(atoms, usage, settings: AncestorSettings | None = None,
                 profiles=None, exact: bool = True) -> AncestorMap:
  """The atoms re-expressed over their own remainders and the directions they share.

  Args:
    atoms: (m, d) dictionary atoms as rows (any norms; zero rows keep a zero unit).
    usage: (m,) non-negative weights, e.g. how many rows' codes use each atom.
    settings: `AncestorSettings` (defaults if None).
    profiles: optional (m, d) vectors that steps 1-3 read in place of the atoms (`row_profiles`):
      the groups, the pure directions and each atom's weights on them come from its profile; its
      own remainder is still the atom minus those weighted directions, so codes @ weights @
      directions still equals codes @ atoms. An atom with a zero profile keeps no ancestor.
    exact: with profiles, False makes each atom's own remainder the atom minus what the atom
      itself carries of its ancestors (non-negative least squares of the atom on them) while the
      codes are still shared out by the profiles' weights: the remainders are closer to the
      parts, but codes @ weights no longer reconstruct codes @ atoms, so re-fit the codes to the
      rows (`support_fit`). Without profiles both give the same map. The selection 'remainder'
      needs profiles and exact=False.

  Returns:
    `AncestorMap`; deterministic given its inputs.
  """
  from scipy.optimize import nnls  # Imported here: scipy.optimize is slow to import.

  s = (settings or AncestorSettings()).validate()
  atoms = np.asarray(atoms)
  usage = np.asarray(usage)
  if atoms.ndim != 2 or atoms.shape[0] == 0 or atoms.shape[1] == 0:
    raise DataError(f"ancestor_map atoms have shape {atoms.shape}; they must be a non-empty "
                    "(atoms, features) matrix, one atom per row (an SAE's W_dec)")
  if usage.shape != (atoms.shape[0],):
    raise DataError(f"ancestor_map usage has shape {usage.shape}; it must be ({atoms.shape[0]},), "
                    "one weight per atom, e.g. (codes > 0).sum(0)")
  if not (np.all(np.isfinite(atoms)) and np.all(np.isfinite(usage))):
    raise DataError("ancestor_map got NaN or infinite atoms or usage; pass a trained dictionary "
                    "and finite counts")
  if np.any(usage < 0):
    raise DataError("ancestor_map usage has negative entries; pass non-negative weights such as "
                    "the number of rows that use each atom")
  if s.selection == "remainder" and (profiles is None or exact):
    raise ConfigError("ancestor_map selection 'remainder' continues each profile's pursuit on its "
                      "atom and weighs what it adds by the atom: pass profiles (row_profiles) and "
                      "exact=False, or choose selection 'pursuit'")
  norms = np.linalg.norm(atoms.astype(np.float64), axis=1)
  alive = norms > 0
  unit = np.zeros(atoms.shape, np.float64)
  unit[alive] = atoms[alive] / norms[alive, None]
  read, readable = unit, alive  # What steps 1-3 read: the unit atoms, or their unit profiles.
  if profiles is not None:
    profiles = np.asarray(profiles, np.float64)
    if profiles.shape != atoms.shape or not np.all(np.isfinite(profiles)):
      raise DataError(f"ancestor_map profiles have shape {profiles.shape}; they must be finite "
                      f"and {atoms.shape}, one per atom, e.g. row_profiles(x, codes)")
    p_norms = np.linalg.norm(profiles, axis=1)
    readable = alive & (p_norms > 0)
    read = np.zeros(atoms.shape, np.float64)
    read[readable] = profiles[readable] / p_norms[readable, None]
  modes = shared_directions(read[readable], usage[readable].astype(np.float64), s)
  pure, chains = pure_chains(modes, s)
  m, p = atoms.shape[0], pure.shape[0]
  weights = np.zeros((m, m + p))
  own = np.zeros(atoms.shape, np.float64)
  for j in np.flatnonzero(alive):
    r = unit[j]
    candidates = (choose_ancestors(pure, read[j], s, chains) if readable[j]
                  else np.zeros(0, np.int64))
    if s.selection == "remainder":
      candidates = pursue_ancestors(pure, unit[j], s, chains, candidates)
    if candidates.size:
      w, _ = nnls(pure[candidates].T, read[j])
      weights[j, m + candidates] = w
      if not exact and profiles is not None:  # What the atom itself carries of its ancestors.
        w, _ = nnls(pure[candidates].T, unit[j])
        if s.selection == "remainder":
          weights[j, m + candidates] = np.where(weights[j, m + candidates] > 0,
                                                weights[j, m + candidates], w)
      r = unit[j] - w @ pure[candidates]
    norm = float(np.linalg.norm(r))
    if norm > 1e-6:
      weights[j, j] = norm
      own[j] = r / norm
  # Codes are over the atoms as given: an atom of norm n carries n times a unit atom's share.
  weights *= norms[:, None]
  directions = np.concatenate([own, pure]).astype(np.float32)
  return AncestorMap(directions, weights.astype(np.float32), int(modes.shape[0]))


def nested_atoms(codes, *, share: float = 0.7, ratio: float = 0.7,
                 min_nested: int = 1) -> np.ndarray:
  """(k, 2) int32 pairs (broad, narrow) of atoms whose codes (n, m) nest: at least `share` of the
  rows that use the narrow atom also use the broad one, which fires on at least 1 / `ratio` times
  as many rows; broad atoms with fewer than `min_nested` narrow ones are left out. Sorted by broad
  atom, then narrow atom.

  Under a hierarchy whose siblings exclude each other, a dictionary may learn a parent's path
  together with one of its children (the "base" child) as one broad atom that fires on every row
  of the parent, and the other children as narrow atoms that fire on top of it and cancel the base
  child. Reconstruction is the same as with the true parts, and it needs fewer atoms where the
  base child fires. `nested_supports` then keeps the broad atom's own unit off the rows where a
  narrow one fires."""
  codes = np.asarray(codes)
  if codes.ndim != 2 or not np.all(np.isfinite(codes)):
    raise DataError(f"nested_atoms got codes of shape {codes.shape}; pass finite (n, m) codes over "
                    "the atoms, one row per sample")
  for name, value in (("share", share), ("ratio", ratio)):
    if not isinstance(value, numbers.Real) or not 0.0 < value <= 1.0:
      raise ConfigError(f"nested_atoms argument {name}={value!r} is invalid: pass a fraction in "
                        "(0, 1], e.g. 0.7")
  min_nested = check_positive_int("min_nested", min_nested, "nested_atoms")
  fires = (codes > 0).astype(np.float32)
  count = fires.sum(0).astype(np.float64)
  both = (fires.T @ fires).astype(np.float64)  # [a, b]: rows that use a and b.
  nested = ((both >= share * count[None, :]) & (count[None, :] > 0)
            & (count[None, :] <= ratio * count[:, None]))
  np.fill_diagonal(nested, False)
  nested &= (nested.sum(1) >= min_nested)[:, None]
  return np.argwhere(nested).astype(np.int32).reshape(-1, 2)


def nested_supports(atom_codes, weights, nested) -> np.ndarray:
  """Codes (n, m + p) over the units of codes (n, m) over the atoms (`AncestorMap.codes`), with
  the own unit of each broad atom of `nested` (`nested_atoms` pairs) set to 0 on the rows where
  one of its narrow atoms fires: there the broad atom stands for the parent's path alone. Pass
  them to `support_fit` as the units each row may use."""
  atom_codes = np.asarray(atom_codes, np.float32)
  weights = np.asarray(weights, np.float32)
  nested = np.asarray(nested)
  m = weights.shape[0]
  if atom_codes.ndim != 2 or atom_codes.shape[1] != m or weights.ndim != 2 \
      or weights.shape[1] < m:
    raise DataError(f"nested_supports got codes {atom_codes.shape} and weights {weights.shape}; "
                    "pass (n, m) codes over the atoms and the map's (m, m + p) weights")
  if nested.ndim != 2 or nested.shape[1] != 2 or (nested.size and (
      nested.min() < 0 or nested.max() >= m)):
    raise DataError(f"nested_supports got nested pairs of shape {nested.shape}; pass the (k, 2) "
                    f"atom pairs of nested_atoms, indices in [0, {m})")
  out = atom_codes @ weights
  fires = atom_codes > 0
  for broad in np.unique(nested[:, 0]):
    narrow = nested[nested[:, 0] == broad, 1]
    out[fires[:, narrow].any(axis=1), broad] = 0.0
  return out


def merge_duplicates(directions, weights, usage, max_cosine: float
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Units (u, d) without duplicates: ``(directions, weights, owner)`` with each unit whose
  direction lies within `max_cosine` of a more used unit merged into it.

  Units are visited from most to least used (`usage` (u,), e.g. how many rows' supports hold each
  unit; ties to the lower index); a unit whose cosine with a unit already kept exceeds
  `max_cosine` joins the kept unit of highest cosine among those (the units kept are those of
  `identi.infer.duplicates.distinct_atoms`, as in `identi.infer.minimal_atoms`). A unit that
  joins gives its column of the map's `weights` (m, u) to the unit it joins and its direction
  becomes 0 (a latent that never fires); owner[i] is the unit
  that unit i's rows now use (i itself where it is kept). Two units in one direction are one
  concept whose activity they split: an atom whose ancestors missed a root keeps the root in its
  own remainder, and several such atoms give the root as many copies. Merging changes what the
  units reconstruct, so re-fit the codes (`support_fit`); deterministic."""
  directions = np.asarray(directions, np.float32)
  weights = np.asarray(weights, np.float32)
  usage = np.asarray(usage)
  u = directions.shape[0]
  if directions.ndim != 2 or weights.ndim != 2 or weights.shape[1] != u or usage.shape != (u,):
    raise DataError(f"merge_duplicates got directions {directions.shape}, weights "
                    f"{weights.shape} and usage {usage.shape}; pass (u, d) unit directions, the "
                    "(m, u) weights of their map and one usage per unit")
  if not isinstance(max_cosine, numbers.Real) or not 0.0 < max_cosine < 1.0:
    raise ConfigError(f"merge_duplicates max_cosine={max_cosine!r} is invalid: pass a cosine in "
                      "(0, 1), e.g. 0.9")
  unit = directions.astype(np.float64)
  norms = np.linalg.norm(unit, axis=1)
  unit /= np.maximum(norms, 1e-12)[:, None]
  order = np.argsort(-usage, kind="stable")
  rank = np.empty(u, np.int64)
  rank[order] = np.arange(u)
  keep = distinct_atoms(unit, usage, float(max_cosine))
  kept = order[keep[order]]  # In the order they were visited.
  merged = np.flatnonzero(~keep & (norms > 0))
  owner = np.arange(u)
  if merged.size:  # Each joins the kept unit of highest cosine among those visited before it.
    cosine = unit[merged] @ unit[kept].T
    cosine[rank[kept][None, :] > rank[merged][:, None]] = -np.inf
    owner[merged] = kept[np.argmax(cosine, axis=1)]
  weights, directions = weights.copy(), directions.copy()
  np.add.at(weights.T, owner[merged], weights[:, merged].T)
  weights[:, merged] = 0.0
  directions[merged] = 0.0
  return directions, weights, owner


def code_floors(codes, fraction: float, *, quantile: float = 0.9) -> np.ndarray:
  """(u,) float32 floors of codes (n, u): `fraction` times each unit's `quantile` of its positive
  codes (0 for a unit that never fires).

  A unit's support holds every row where an atom that carries it fires. Where an atom carries a
  unit it does not share (a false ancestor edge, a sibling's branch), the fit gives that unit a
  small code on the row, a small part of the unit's typical code, while its true codes are not
  (docs/decisions.md measures both). `floored_fit` drops the codes below the floors."""
  codes = np.asarray(codes, np.float32)
  if codes.ndim != 2 or not np.all(np.isfinite(codes)):
    raise DataError(f"code_floors got codes of shape {codes.shape}; pass finite (n, u) codes")
  for name, value in (("fraction", fraction), ("quantile", quantile)):
    if not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
      raise ConfigError(f"code_floors argument {name}={value!r} is invalid: pass a fraction in "
                        "[0, 1), e.g. 0.25 (0: no floor)")
  out = np.zeros(codes.shape[1], np.float32)
  for j, column in enumerate(np.ascontiguousarray(codes.T)):
    positive = column[column > 0]
    if positive.size:
      out[j] = fraction * np.quantile(positive, quantile)
  return out


def floored_fit(x, directions, codes, floors, *, batch_size: int = 1024) -> np.ndarray:
  """Codes (n, u): the fitted `codes` with each code below its unit's floor (`code_floors`)
  dropped from its row's support, and each row fitted again on the units left (`support_fit`)."""
  codes = np.asarray(codes, np.float32)
  floors = np.asarray(floors, np.float32)
  if codes.ndim != 2 or floors.shape != (codes.shape[1],) or not np.all(np.isfinite(floors)) \
      or np.any(floors < 0):
    raise DataError(f"floored_fit got codes {codes.shape} and floors {floors.shape}; pass the "
                    "(n, u) codes and (u,) non-negative floors of code_floors")
  kept = np.where(codes >= floors[None, :], codes, 0.0).astype(np.float32)
  return support_fit(x, directions, kept, batch_size=batch_size)


@functools.partial(jax.jit, static_argnames=("slots",))
def _support_fit(x: jax.Array, directions: jax.Array, codes: jax.Array, *,
                 slots: int) -> jax.Array:
  idx, coef = support_nnls(x, directions, codes, slots=slots)
  return jnp.zeros_like(codes).at[jnp.arange(codes.shape[0])[:, None], idx].set(coef)


def support_fit(x, directions, codes, *, batch_size: int = 1024) -> np.ndarray:
  """Codes (n, u) re-fitted to the rows x (n, d): each row's non-negative least squares on the
  units (`directions`, (u, d)) its `codes` (n, u) use, started from those codes.

  `AncestorMap.codes` shares an atom's code out over its units in fixed proportions, so a
  parent's code is tied to its children's; fitting the units a row uses to the row itself gives
  each unit its own magnitude. The fit is the inner loop of Lawson and Hanson's method from those
  codes (`identi.infer.omp.support_nnls`): a row's support can only shrink and its error can only
  fall. Deterministic, whatever `batch_size`; rows without codes stay 0."""
  x = np.asarray(x, np.float32)
  directions = np.asarray(directions, np.float32)
  codes = np.asarray(codes, np.float32)
  if (x.ndim != 2 or directions.ndim != 2 or codes.ndim != 2 or x.shape[1] != directions.shape[1]
      or codes.shape != (x.shape[0], directions.shape[0])):
    raise DataError(f"support_fit got rows {x.shape}, directions {directions.shape} and codes "
                    f"{codes.shape}; pass rows (n, d), unit directions (u, d) and codes (n, u) "
                    "over those units, e.g. AncestorMap.codes(...) and AncestorMap.directions")
  if not all(np.all(np.isfinite(a)) for a in (x, directions, codes)) or np.any(codes < 0):
    raise DataError("support_fit got NaN, infinite or negative values; pass finite rows and "
                    "directions and non-negative codes")
  batch_size = check_positive_int("batch_size", batch_size, "support_fit")
  out = np.zeros_like(codes)
  d = jnp.asarray(directions)
  for i in range(0, x.shape[0], batch_size):
    c = codes[i:i + batch_size]
    used = int(np.max(np.sum(c > 0, axis=1), initial=0))
    if used:  # One compiled shape per bucket of the largest support.
      slots = min(bucket_size(used), c.shape[1])
      out[i:i + batch_size] = np.asarray(_support_fit(jnp.asarray(x[i:i + batch_size]), d,
                                                      jnp.asarray(c), slots=slots))
  return out


__all__ = ["GROUPINGS", "SELECTIONS", "AncestorMap", "AncestorSettings", "ancestor_map",
           "choose_ancestors", "code_floors", "floored_fit", "linkage_modes", "mean_shift_modes",
           "merge_duplicates", "nested_atoms", "nested_supports", "pursue_ancestors",
           "pure_chains", "pure_directions", "row_profiles", "shared_directions", "support_fit",
           "union_modes"]
