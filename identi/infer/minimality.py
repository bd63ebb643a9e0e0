"""Dictionary-level minimality: from an SAE's dictionary to the smallest one the data need.

Where selection ties a whole's parts together (an HSM world with a small leak), SAEs do not learn
the parts. For a pair of parts a_i, a_j that mostly fire together they learn a composite atom
(~ a_i + a_j) and "difference" atoms (~ a_i - 0.6 a_j): the same plane, a different basis. The
codes of that basis are non-negative, but the difference atoms lie outside the cone of the data,
and the composite is a non-negative combination of other atoms. Minimality at the level of the
dictionary removes both defects, step by step:

1. **Cone edges** (`sharpen`). The leak makes every part fire without its siblings, so every
   part is an extreme ray of the cone of the data. An atom t that the codes never use without
   partner atoms s (s in the support of more than ``co_use`` of t's samples) is moved to
   t + sum_s rho_s s, with rho_s the ``quantile`` of the ratio c_s / c_t over t's samples: the
   edge of the cone on t's side. The move is kept only if t's samples are still explained, on
   the same supports with non-negative coefficients, within ``tol`` of their energy; a true part
   fails that test (its solo samples would need a negative partner), so the truth is a fixed
   point.
2. **Composites** (`drop_composites`). An atom that is a non-negative combination of two or
   three other atoms (cosine above ``composite_cosine``) is not minimal and is dropped.
3. **Unneeded atoms** (`drop_unneeded`). An atom whose samples, coded again without it, lose less
   than ``tol`` of their energy is dropped (half of such atoms per pass, cheapest first). Beyond
   `EXACT_RECODE_ATOMS` atoms a sample is coded again over its support and the `NEIGHBORS`
   atoms nearest the removed one, so that recoding a sample costs the same for any number of
   atoms.
4. **Missing atoms** (`seed_from_residuals`). Samples whose residual exceeds ``seed_residual`` of
   their energy are grouped by direction (cosine above ``seed_cosine``); each group of at least
   ``min_uses`` samples adds its mean direction as an atom, and steps 1-3 run again.
5. **Polish** (`identi.infer.refine_dictionary`, the method of optimal directions).

Where parts almost never fire without each other (SAELens's hierarchies: a parent fires with
exactly one child, at 0.85-1.15 times its magnitude), the cone is too narrow for steps 1-4: a
wide dictionary keeps nearly all its atoms through them. `refined_dictionary` then prunes it:
refine by the method of optimal directions with duplicate atoms replaced by missing ones
(`identi.infer.refine_dictionary`), keep the ``keep`` most used atoms and polish them.

Codes throughout are non-negative OMP codes (`identi.infer.omp`) with ``max_atoms`` and ``tol``.
Every step is deterministic given its inputs; the atoms come back with unit norm, as rows.

Wide inputs (`in_span`). When the inputs have more features than the dictionary has atoms (a
U-Net block of 4,096 values read by 104 atoms), every code and every residual comparison is
computed in the span of the atoms: x is split into its part in that span (coordinates x Q, with Q
an orthonormal basis of the atoms) and the part outside it, whose energy no code can remove. OMP
then runs on n_atoms coordinates instead of d features, with each row's stopping energy lowered
by its energy outside the span, so the codes are the full problem's up to round-off (differences
of residual energies are exact; only the round-off floor of a selectable correlation is taken
relative to the row's energy in the span). Seeding and the polish leave the span; the basis is
taken again from the dictionary at every call. With d <= n_atoms nothing changes.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from identi.errors import ConfigError, DataError
from identi.infer import ancestors
from identi.infer.omp import check_positive_int, check_problem, omp, support_nnls
from identi.infer.refine import atom_usage, refine_dictionary

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class MinimalitySettings:
  """The knobs of :func:`minimal_dictionary` (see the module docstring)."""

  max_atoms: int = 16
  tol: float = 1e-3
  quantile: float = 0.05
  co_use: float = 0.5
  composite_cosine: float = 0.99
  min_uses: int = 20
  max_samples: int = 400
  sharpen_rounds: int = 6
  seed_rounds: int = 2
  seed_residual: float = 1e-2
  seed_cosine: float = 0.9
  polish_rounds: int = 6
  batch_size: int = 4096

  def validate(self) -> "MinimalitySettings":
    for name in ("max_atoms", "min_uses", "max_samples", "batch_size"):
      check_positive_int(name, getattr(self, name), "MinimalitySettings")
    for name in ("sharpen_rounds", "seed_rounds", "polish_rounds"):
      value = getattr(self, name)
      if not isinstance(value, numbers.Integral) or value < 0:
        raise ConfigError(f"MinimalitySettings field '{name}' is {value!r}; it must be an integer "
                          ">= 0")
    for name in ("tol", "quantile", "co_use", "seed_residual"):
      value = getattr(self, name)
      if not isinstance(value, numbers.Real) or not 0.0 < value < 1.0:
        raise ConfigError(f"MinimalitySettings field '{name}' is {value!r}; it must be in (0, 1)")
    for name in ("composite_cosine", "seed_cosine"):
      value = getattr(self, name)
      if not isinstance(value, numbers.Real) or not 0.0 < value <= 1.0:
        raise ConfigError(f"MinimalitySettings field '{name}' is {value!r}; it must be in (0, 1]")
    return self


def _unit_rows(dictionary: np.ndarray) -> np.ndarray:
  norms = np.linalg.norm(dictionary, axis=1, keepdims=True)
  return (dictionary / np.maximum(norms, 1e-12)).astype(np.float32)


@functools.partial(jax.tree_util.register_dataclass,
                   data_fields=["x", "dictionary", "outside", "tol"], meta_fields=[])
@dataclasses.dataclass(frozen=True)
class Span:
  """Rows in the span of a dictionary's atoms (module docstring, "Wide inputs").

  x: (n, m) coordinates of the rows in the span (the rows themselves when there is no
  reduction); dictionary: (n_atoms, m) the atoms' coordinates; outside: (n,) each row's energy
  outside the span (0 without a reduction); tol: (n,) or scalar, OMP's relative stopping energy
  that stops each row where the full problem stops."""
  x: jax.Array
  dictionary: jax.Array
  outside: jax.Array
  tol: jax.Array


def in_span(x, dictionary, tol: float, *, basis: jax.Array | None = None) -> Span:
  """`Span` of rows x (n, d) and atoms (n_atoms, d); a reduction only when d > n_atoms. `basis`:
  the atoms' `span_basis`, when the caller codes several chunks over the same atoms."""
  x = jnp.asarray(x, jnp.float32)
  dictionary = jnp.asarray(dictionary, jnp.float32)
  if x.shape[1] <= dictionary.shape[0]:
    return Span(x, dictionary, jnp.zeros(x.shape[0], jnp.float32), jnp.float32(tol))
  if basis is None:
    basis = span_basis(dictionary)
  return _reduce(x, dictionary, basis, jnp.float32(tol))


def span_basis(dictionary) -> jax.Array | None:
  """An orthonormal basis (d, n_atoms) of the atoms' span when d > n_atoms, else None."""
  if dictionary.shape[1] <= dictionary.shape[0]:
    return None
  return jnp.linalg.qr(jnp.asarray(dictionary, jnp.float32).T)[0]


def _coordinates(v, basis: jax.Array | None) -> jax.Array:
  """Rows v in the basis (the rows themselves without one)."""
  v = jnp.asarray(v, jnp.float32)
  return v if basis is None else jnp.matmul(v, basis, precision=jax.lax.Precision.HIGHEST)


@jax.jit
def _reduce(x: jax.Array, dictionary: jax.Array, basis: jax.Array, tol: jax.Array) -> Span:
  xs = _coordinates(x, basis)
  full = jnp.sum(jnp.square(x), -1)
  inside = jnp.sum(jnp.square(xs), -1)
  outside = jnp.maximum(full - inside, 0.0)
  # OMP stops a row when its residual in the span falls to tol * full - outside.
  row_tol = (tol * full - outside) / jnp.maximum(inside, jnp.finfo(jnp.float32).tiny)
  return Span(xs, _coordinates(dictionary, basis), outside, row_tol)


def span_omp(x, dictionary, *, max_atoms: int, tol: float,
             basis: jax.Array | None = None) -> jax.Array:
  """`identi.infer.omp` of centred rows x over the atoms, computed in their span (`in_span`)."""
  sp = in_span(x, dictionary, tol, basis=basis)
  return omp(sp.x, sp.dictionary, max_atoms=max_atoms, tol=sp.tol)


def codes(x: np.ndarray, dictionary: np.ndarray, s: MinimalitySettings, *,
          max_atoms: int | None = None) -> np.ndarray:
  """Non-negative OMP codes (n, atoms) of centred rows x over the atoms, in chunks; at most
  `max_atoms` atoms per row (default: the settings' cap, at most the number of atoms)."""
  max_atoms = max_atoms or min(s.max_atoms, dictionary.shape[0])
  d = jnp.asarray(dictionary)
  basis = span_basis(d)
  out = [np.asarray(span_omp(jnp.asarray(x[i:i + s.batch_size]), d, max_atoms=max_atoms,
                             tol=s.tol, basis=basis))
         for i in range(0, x.shape[0], s.batch_size)]
  return np.concatenate(out) if out else np.zeros((0, dictionary.shape[0]), np.float32)


#: Ridge on the Gram matrix of `prune_codes`' least-squares fits (the atoms have unit norm).
_PRUNE_RIDGE = 1e-6


def prune_codes(x, dictionary, codes, tol: float, *, batch_size: int = 4096) -> np.ndarray:
  """Each row's codes (n, atoms) over the atoms (atoms, d) without the atoms the row does not
  need: minimality row by row, the test `drop_unneeded` applies to the whole dictionary.

  Greedy pursuit adds atoms until a row's residual falls below `tol` of its energy, and an atom
  added early can become superfluous once later ones are in; where atoms are a hierarchy's paths
  (SAELens's trees), a sibling's path is picked to absorb a deviation of the shared ancestors'
  magnitudes, and its own part then fires where it is absent. Here the atom whose removal raises
  the row's least-squares error least is dropped while that rise is below `tol` times the row's
  energy (one atom at a time, at least one kept); the row is then fitted by non-negative least
  squares on the atoms it keeps (`identi.infer.ancestors.support_fit`). x must be centred as for
  `codes`; deterministic, whatever `batch_size`. Returns float32 (n, atoms)."""
  x, dictionary = check_problem(x, dictionary, None, owner="prune_codes")
  x, dictionary = np.asarray(x, np.float64), np.asarray(dictionary, np.float64)
  codes = np.asarray(codes, np.float32)
  if codes.shape != (x.shape[0], dictionary.shape[0]):
    raise DataError(f"prune_codes got codes of shape {codes.shape}; they must be "
                    f"({x.shape[0]}, {dictionary.shape[0]}), one row of codes per sample over "
                    "the atoms, e.g. codes(x, dictionary, settings)")
  if not np.all(np.isfinite(codes)) or np.any(codes < 0):
    raise DataError("prune_codes got NaN, infinite or negative codes; pass non-negative codes, "
                    "e.g. codes(x, dictionary, settings)")
  if not isinstance(tol, numbers.Real) or not 0.0 < tol < 1.0:
    raise ConfigError(f"prune_codes argument tol={tol!r} is invalid: pass the relative residual "
                      "energy a row may lose, in (0, 1), e.g. 1e-3 (OMP's tol)")
  batch_size = check_positive_int("batch_size", batch_size, "prune_codes")
  keep = codes > 0
  for i in range(0, x.shape[0], batch_size):
    used = keep[i:i + batch_size]
    slots = int(np.max(np.sum(used, axis=1), initial=0))
    if slots < 2:
      continue
    idx = np.argsort(~used, axis=1, kind="stable")[:, :slots]  # Each row's atoms first.
    active = np.take_along_axis(used, idx, axis=1)
    atoms = dictionary[idx]  # (rows, slots, d)
    gram = np.einsum("nsd,ntd->nst", atoms, atoms)
    corr = np.einsum("nsd,nd->ns", atoms, x[i:i + batch_size])
    budget = tol * np.sum(np.square(x[i:i + batch_size]), axis=1)
    eye = np.eye(slots)
    live = np.flatnonzero(np.sum(active, axis=1) > 1)  # Rows that may still lose an atom.
    while live.size:
      on = active[live]
      # Inactive slots get an identity block, so they fit 0 and leave the others' fit unchanged.
      g = np.where(on[:, :, None] & on[:, None, :], gram[live] + _PRUNE_RIDGE * eye, eye)
      inverse = np.linalg.inv(g)
      c = np.einsum("nst,nt->ns", inverse, np.where(on, corr[live], 0.0))
      rise = np.where(on, np.square(c) / np.diagonal(inverse, axis1=1, axis2=2), np.inf)
      cheapest = np.argmin(rise, axis=1)
      drop = rise[np.arange(live.size), cheapest] < budget[live]
      live, cheapest = live[drop], cheapest[drop]
      active[live, cheapest] = False
      live = live[np.sum(active[live], axis=1) > 1]
    kept = np.zeros_like(used)
    np.put_along_axis(kept, idx, active, axis=1)
    keep[i:i + batch_size] = kept
  return ancestors.support_fit(x.astype(np.float32), dictionary.astype(np.float32),
                               np.where(keep, codes, 0.0).astype(np.float32))


@functools.partial(jax.jit, static_argnames=("slots",))
def _support_residuals(x: jax.Array, dictionary: jax.Array, c: jax.Array, t: jax.Array,
                       atom: jax.Array, *, slots: int) -> jax.Array:
  """Residual energy per row of x on its support (c > 0, at most `slots` atoms) by NNLS, with
  atom t replaced by `atom`."""
  dictionary = dictionary.at[t].set(atom)
  # From the old coefficients: a feasible start for any atoms.
  idx, coef = support_nnls(x, dictionary, c, slots=slots)

  def energy(a, xr, cf):
    r = xr - jnp.matmul(cf, a, precision=jax.lax.Precision.HIGHEST)
    return jnp.sum(jnp.square(r))

  return jax.vmap(energy)(dictionary[idx], x, coef)


def _rows_using(c: np.ndarray, t: int, s: MinimalitySettings) -> np.ndarray:
  return np.flatnonzero(c[:, t] > 0)[:s.max_samples]


def _padded(rows: np.ndarray, s: MinimalitySettings) -> tuple[np.ndarray, np.ndarray]:
  """Rows padded to max_samples (one compiled shape) and the mask of the real ones."""
  out = np.zeros(s.max_samples, np.int64)
  out[:rows.size] = rows
  return out, np.arange(s.max_samples) < rows.size


def sharpen(x: np.ndarray, dictionary: np.ndarray, c: np.ndarray,
            s: MinimalitySettings) -> tuple[np.ndarray, int, int]:
  """Step 1: moves atoms outside the data cone onto its edge; (dictionary, kept, refused)."""
  out = dictionary.copy()
  slots = min(s.max_atoms, dictionary.shape[0])
  # Residual energies are compared between two atoms of the span: computed in it.
  basis = span_basis(dictionary)
  d_j = _coordinates(dictionary, basis)
  kept = refused = 0
  for t in range(dictionary.shape[0]):
    on = c[:, t] > 0
    if on.sum() < s.min_uses:
      continue
    ratios = c[on] / c[on, t:t + 1]
    share = (ratios > 0).mean(0)
    share[t] = 0.0
    partners = np.flatnonzero(share > s.co_use)
    if partners.size == 0:
      continue
    rho = np.array([np.quantile(ratios[ratios[:, p] > 0, p], s.quantile) for p in partners])
    proposal = dictionary[t] + rho @ dictionary[partners]
    proposal = proposal / max(float(np.linalg.norm(proposal)), 1e-12)
    rows, real = _padded(_rows_using(c, t, s), s)
    xr, cr = _coordinates(x[rows], basis), jnp.asarray(c[rows])
    old = np.asarray(_support_residuals(xr, d_j, cr, t, d_j[t], slots=slots))[real].sum()
    new = np.asarray(_support_residuals(xr, d_j, cr, t, _coordinates(proposal[None], basis)[0],
                                        slots=slots))[real].sum()
    if new <= old + s.tol * float(np.sum(np.square(x[rows[real]]))):
      out[t] = proposal
      kept += 1
    else:
      refused += 1
  return out, kept, refused


def drop_composites(dictionary: np.ndarray, s: MinimalitySettings) -> np.ndarray:
  """Step 2: drops atoms that are non-negative combinations of 2-3 other atoms."""
  keep = np.ones(dictionary.shape[0], bool)
  for t in range(dictionary.shape[0]):
    others = np.where((keep & (np.arange(keep.size) != t))[:, None], dictionary, 0.0)
    coef = np.asarray(omp(jnp.asarray(dictionary[t:t + 1]), jnp.asarray(others),
                          max_atoms=min(3, keep.size), tol=1e-6))[0]
    fit = coef @ others
    cosine = float(fit @ dictionary[t]) / max(float(np.linalg.norm(fit)), 1e-12)
    if cosine > s.composite_cosine and (coef > 0).sum() >= 2:
      keep[t] = False
  return dictionary[keep]


#: Rows of one call of the batched recoding in `drop_unneeded` (the last call's are padded): one
#: compiled program for every pass.
_RECODE_ROWS = 2048
#: `drop_unneeded` recodes a sample without an atom over all live atoms while there are at most
#: `EXACT_RECODE_ATOMS`; beyond, over its own support and the `NEIGHBORS` live atoms nearest the
#: removed one, so that recoding a sample costs the same for any number of atoms.
EXACT_RECODE_ATOMS = 1024
NEIGHBORS = 32


@functools.partial(jax.jit, static_argnames=("max_atoms",))
def _recode_without(x: jax.Array, dictionary: jax.Array, t: jax.Array, tol: jax.Array, *,
                    max_atoms: int) -> jax.Array:
  """Residual energy of each row x[i] when coded without atom t[i]."""
  c = omp(x, dictionary, max_atoms=max_atoms, tol=tol, exclude=t)
  return jnp.sum(jnp.square(x - jnp.matmul(c, dictionary, precision=jax.lax.Precision.HIGHEST)),
                 -1)


@functools.partial(jax.jit, static_argnames=("max_atoms",))
def _recode_without_near(x: jax.Array, dictionary: jax.Array, candidates: jax.Array,
                         t: jax.Array, tol: jax.Array, *, max_atoms: int) -> jax.Array:
  """Residual energy of each row x[i] coded over atoms candidates[i] without atom t[i]."""

  def one(xr, idx, ti, tr):
    atoms = jnp.where((idx == ti)[:, None], 0.0, dictionary[idx])  # A zero row is never chosen.
    c = omp(xr[None], atoms, max_atoms=max_atoms, tol=tr)[0]
    return jnp.sum(jnp.square(xr - jnp.matmul(c, atoms, precision=jax.lax.Precision.HIGHEST)))

  return jax.vmap(one)(x, candidates, t, jnp.broadcast_to(tol, x.shape[:1]))


def nearest_atoms(dictionary: np.ndarray, alive: np.ndarray, count: int) -> np.ndarray:
  """(n_atoms, count) indices of each atom's live atoms of highest cosine, itself excluded."""
  unit = jnp.asarray(_unit_rows(dictionary))
  cos = jnp.matmul(unit, unit.T, precision=jax.lax.Precision.HIGHEST)
  cos = jnp.where(jnp.asarray(alive)[None, :] & ~jnp.eye(unit.shape[0], dtype=bool), cos, -jnp.inf)
  return np.asarray(jax.lax.top_k(cos, min(count, unit.shape[0]))[1])


def _recoding_costs(x: np.ndarray, dictionary: np.ndarray, alive: np.ndarray, c: np.ndarray,
                    s: MinimalitySettings) -> np.ndarray:
  """Per live atom, the energy its samples lose when coded without it, over their energy (-1 for
  an atom no sample uses, inf for a dropped one). The samples of all atoms are coded at once.

  Beyond `EXACT_RECODE_ATOMS` live atoms a sample is coded again over its own support and the
  `NEIGHBORS` live atoms nearest the removed one (those that can take its share of the sample);
  an atom outside that set could only lower the loss, so the estimate errs towards keeping an
  atom."""
  cost = np.where(alive, -1.0, np.inf)
  used = {t: _rows_using(c, t, s) for t in np.flatnonzero(alive)}
  used = {t: rows for t, rows in used.items() if rows.size}
  if not used:
    return cost
  rows = np.concatenate(list(used.values()))
  atom = np.concatenate([np.full(r.size, t, np.int32) for t, r in used.items()])
  pad = -rows.size % _RECODE_ROWS
  rows = np.concatenate([rows, np.zeros(pad, rows.dtype)])
  atom = np.concatenate([atom, np.full(pad, -1, np.int32)])
  slots = min(s.max_atoms, int(alive.sum()))
  near = nearest_atoms(dictionary, alive, NEIGHBORS) if alive.sum() > EXACT_RECODE_ATOMS else None
  after = []
  basis = span_basis(dictionary)
  for i in range(0, rows.size, _RECODE_ROWS):
    r, t = rows[i:i + _RECODE_ROWS], atom[i:i + _RECODE_ROWS]
    sp = in_span(x[r], dictionary, s.tol, basis=basis)
    if near is None:
      energy = _recode_without(sp.x, sp.dictionary, jnp.asarray(t), sp.tol, max_atoms=slots)
    else:
      support = np.asarray(jax.lax.top_k(jnp.asarray(c[r]), slots)[1])
      candidates = np.concatenate([support, near[np.maximum(t, 0)]], 1).astype(np.int32)
      energy = _recode_without_near(sp.x, sp.dictionary, jnp.asarray(candidates), jnp.asarray(t),
                                    sp.tol, max_atoms=slots)
    after.append(np.asarray(energy + sp.outside))
  after = np.concatenate(after)
  row_energy = np.sum(np.square(x), 1)
  row_before = np.sum(np.square(x - c[:, alive] @ dictionary[alive]), 1)
  start = 0
  for t, r in used.items():
    before, energy = float(np.sum(row_before[r])), float(np.sum(row_energy[r]))
    cost[t] = (after[start:start + r.size].sum() - before) / max(energy, 1e-12)
    start += r.size
  return cost


def drop_unneeded(x: np.ndarray, dictionary: np.ndarray, s: MinimalitySettings) -> np.ndarray:
  """Step 3: drops atoms whose samples, coded without them, lose less than tol of their energy.

  A dropped atom becomes a zero row, which OMP never selects, so that every pass runs the programs
  the first one compiled."""
  dictionary = dictionary.copy()
  alive = np.ones(dictionary.shape[0], bool)
  while alive.sum() > 1:
    c = codes(x, dictionary, s, max_atoms=min(s.max_atoms, int(alive.sum())))
    cost = _recoding_costs(x, dictionary, alive, c, s)
    low = np.flatnonzero(cost < s.tol)
    if low.size == 0:
      break
    drop = low[np.argsort(cost[low], kind="stable")][:max(1, low.size // 2)]
    alive[drop] = False
    dictionary[drop] = 0.0
    logger.info("minimality: dropped %d unneeded atoms, %d left", drop.size, alive.sum())
  return dictionary[alive]


def seed_from_residuals(x: np.ndarray, dictionary: np.ndarray, s: MinimalitySettings,
                        max_rows: int = 4096) -> np.ndarray:
  """Step 4: adds the mean direction of each large group of similar residuals as an atom."""
  c = codes(x, dictionary, s)
  resid = x - c @ dictionary
  share = np.sum(np.square(resid), 1) / np.maximum(np.sum(np.square(x), 1), 1e-12)
  big = np.flatnonzero(share > s.seed_residual)[:max_rows]
  if big.size == 0:
    return dictionary
  unit = _unit_rows(resid[big])
  alive = np.ones(big.size, bool)
  new = []
  while alive.any():
    idx = np.flatnonzero(alive)
    sims = unit[idx] @ unit[idx].T
    counts = (sims > s.seed_cosine).sum(1)
    j = int(np.argmax(counts))
    if counts[j] < s.min_uses:
      break
    members = idx[sims[j] > s.seed_cosine]
    new.append(unit[members].mean(0))
    alive[members] = False
  if not new:
    return dictionary
  return np.concatenate([dictionary, _unit_rows(np.stack(new))])


def _sharpen_until_fixed(x, dictionary, s, report, tag):
  for _ in range(s.sharpen_rounds):
    c = codes(x, dictionary, s)
    dictionary, kept, refused = sharpen(x, dictionary, c, s)
    dictionary = drop_composites(dictionary, s)
    report.append({"step": f"{tag}sharpen", "moved": kept, "refused": refused,
                   "atoms": int(dictionary.shape[0])})
    logger.info("minimality: %ssharpen moved %d atoms (refused %d), %d atoms", tag, kept,
                refused, dictionary.shape[0])
    if kept == 0:
      break
  return dictionary


def minimal_dictionary(x, dictionary, *, b_dec=None, settings: MinimalitySettings | None = None,
                       give_up_above: int | None = None) -> tuple[np.ndarray, list]:
  """The minimal dictionary of data x, starting from `dictionary` (see the module docstring).

  Args:
    x: (n, d) inputs in the dictionary's space (for an SAE, x * input_scale); a few thousand to
      tens of thousands of rows.
    dictionary: (n_atoms, d) atoms as rows (an SAE's W_dec); zero rows are ignored.
    b_dec: optional (d,) offset subtracted from x.
    settings: `MinimalitySettings` (defaults if None).
    give_up_above: if the first pass of the tests (sharpening, then dropping unneeded atoms)
      leaves more atoms than this, stop there: the report ends with a "given up" step and the
      atoms are that pass's. For a caller that sets aside a dictionary wider than it can use.

  Returns:
    (atoms, report): float32 (m, d) unit-norm atoms, m <= n_atoms + seeded, and one dict per
    step (what it did, atoms after it).
  """
  s = (settings or MinimalitySettings()).validate()
  if give_up_above is not None:
    give_up_above = check_positive_int("give_up_above", give_up_above, "minimal_dictionary")
  x, dictionary = check_problem(x, dictionary, b_dec, owner="minimal_dictionary")
  x = np.asarray(x, np.float32)
  if b_dec is not None:
    x = x - np.asarray(b_dec, np.float32)
  dictionary = np.asarray(dictionary, np.float32)
  dictionary = _unit_rows(dictionary[np.linalg.norm(dictionary, axis=1) > 0])
  if dictionary.shape[0] == 0:
    raise ConfigError("minimal_dictionary got a dictionary of zero rows only; pass a trained "
                      "SAE's W_dec")
  report: list[dict[str, Any]] = [{"step": "start", "atoms": int(dictionary.shape[0])}]
  dictionary = _sharpen_until_fixed(x, dictionary, s, report, "")
  dictionary = drop_unneeded(x, dictionary, s)
  report.append({"step": "drop_unneeded", "atoms": int(dictionary.shape[0])})
  if give_up_above is not None and dictionary.shape[0] > give_up_above:
    report.append({"step": "given up", "atoms": int(dictionary.shape[0])})
    logger.info("minimality: %d atoms after the first pass, more than %d: given up",
                dictionary.shape[0], give_up_above)
    return dictionary, report
  for r in range(s.seed_rounds):
    before = dictionary.shape[0]
    dictionary = seed_from_residuals(x, dictionary, s)
    report.append({"step": "seed", "added": int(dictionary.shape[0] - before),
                   "atoms": int(dictionary.shape[0])})
    if dictionary.shape[0] == before:
      break
    dictionary = _sharpen_until_fixed(x, dictionary, s, report, f"seed {r + 1}: ")
    dictionary = drop_unneeded(x, dictionary, s)
    report.append({"step": "drop_unneeded", "atoms": int(dictionary.shape[0])})
  if s.polish_rounds:
    infer_fn = functools.partial(span_omp, max_atoms=min(s.max_atoms, dictionary.shape[0]),
                                 tol=s.tol)
    dictionary = _unit_rows(np.asarray(refine_dictionary(
        jnp.asarray(x), jnp.asarray(dictionary), infer_fn=infer_fn, num_rounds=s.polish_rounds,
        batch_size=s.batch_size)))
    report.append({"step": "polish", "rounds": s.polish_rounds, "atoms": int(dictionary.shape[0])})
  logger.info("minimality: %d atoms", dictionary.shape[0])
  return dictionary, report


#: `refined_dictionary`: an atom above this cosine with a more-used atom is replaced.
DUPLICATE_COSINE = 0.9


def refined_dictionary(x, dictionary, *, keep: int, rounds: int, b_dec=None,
                       settings: MinimalitySettings | None = None) -> tuple[np.ndarray, list]:
  """A wide dictionary refined, pruned to the `keep` most used atoms, and polished.

  `rounds` rounds of `identi.infer.refine_dictionary` with duplicates replaced
  (`DUPLICATE_COSINE`), then the `keep` atoms with the most code energy (`atom_usage`, kept in
  their order), then ``settings.polish_rounds`` rounds on those. Codes are non-negative OMP with
  the settings' ``max_atoms`` and ``tol``. Arguments and return value as `minimal_dictionary`'s.
  """
  s = (settings or MinimalitySettings()).validate()
  keep = check_positive_int("keep", keep, "refined_dictionary")
  rounds = check_positive_int("rounds", rounds, "refined_dictionary")
  x, dictionary = check_problem(x, dictionary, b_dec, owner="refined_dictionary")
  dictionary = np.asarray(dictionary, np.float32)
  dictionary = dictionary[np.linalg.norm(dictionary, axis=1) > 0]
  if dictionary.shape[0] == 0:
    raise ConfigError("refined_dictionary got a dictionary of zero rows only; pass a trained "
                      "SAE's W_dec")
  infer_fn = lambda n: functools.partial(span_omp, max_atoms=min(s.max_atoms, n), tol=s.tol)
  report: list[dict[str, Any]] = [{"step": "start", "atoms": int(dictionary.shape[0])}]
  atoms = refine_dictionary(x, dictionary, infer_fn=infer_fn(dictionary.shape[0]),
                            num_rounds=rounds, batch_size=s.batch_size,
                            duplicate_cosine=DUPLICATE_COSINE)
  report.append({"step": "refine", "rounds": rounds, "atoms": int(atoms.shape[0])})
  if atoms.shape[0] > keep:
    usage = atom_usage(x, atoms, infer_fn=infer_fn(atoms.shape[0]), batch_size=s.batch_size)
    atoms = atoms[np.sort(np.argsort(-usage, kind="stable")[:keep])]
    report.append({"step": "keep", "atoms": keep})
  if s.polish_rounds:
    atoms = refine_dictionary(x, atoms, infer_fn=infer_fn(atoms.shape[0]),
                              num_rounds=s.polish_rounds, batch_size=s.batch_size)
    report.append({"step": "polish", "rounds": s.polish_rounds, "atoms": int(atoms.shape[0])})
  logger.info("refined dictionary: %d atoms", atoms.shape[0])
  return _unit_rows(np.asarray(atoms)), report


__all__ = ["DUPLICATE_COSINE", "EXACT_RECODE_ATOMS", "MinimalitySettings", "NEIGHBORS", "Span",
           "codes", "drop_composites", "drop_unneeded", "in_span", "minimal_dictionary",
           "nearest_atoms", "refined_dictionary", "seed_from_residuals", "sharpen", "span_basis",
           "span_omp"]
