"""Dictionary refinement: alternate sparse inference with a least-squares decoder update.

Each round infers codes C = infer_fn(x - b_dec, D) with the current dictionary, then solves the
ridge-regularised normal equations (C^T C + ridge * s * I) D' = C^T (x - b_dec), where s is the mean
diagonal of C^T C, so ``ridge`` is relative to the code energy. Atoms that no sample used (zero
column in C) keep their old row; every updated row is rescaled to the norm its atom had before
refinement, so code units stay those of the input dictionary (unit rows for an SAE's W_dec stay
unit rows). This is the method of optimal directions (Engan et al. 1999) with a fixed norm.

With ``duplicate_cosine`` set, each round then replaces duplicates, K-SVD's replacement rule
(Aharon et al. 2006): an atom whose cosine with a more-used atom (larger code energy, ties to the
lower index) exceeds ``duplicate_cosine`` takes the direction of the residual of one of the round's
worst-explained samples (largest residual energy, one sample per replaced atom, ties to the lower
index), at its old norm. Two atoms on one concept split its activation between them, while
another concept has no atom; the sample the dictionary explains worst shows one that is missing.
`atom_usage` gives each atom's code energy, e.g. to keep the most used atoms of a dictionary
trained wider than needed.

The normal equations are accumulated over chunks of ``batch_size`` samples and solved with a dense
(n_atoms, n_atoms) Cholesky factorisation, which suits dictionaries up to a few thousand atoms.
"""

import numbers
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from identi.errors import ConfigError, DataError
from identi.infer import ancestors
from identi.infer.omp import check_positive_int, check_problem

_HIGHEST = jax.lax.Precision.HIGHEST

InferFn = Callable[[jax.Array, jax.Array], jax.Array]


@jax.jit
def _normal_terms(x: jax.Array, codes: jax.Array) -> tuple[jax.Array, jax.Array]:
  """C^T C and C^T X of one chunk."""
  return (jnp.matmul(codes.T, codes, precision=_HIGHEST),
          jnp.matmul(codes.T, x, precision=_HIGHEST))


@jax.jit
def _residual_energy(x: jax.Array, codes: jax.Array, dictionary: jax.Array) -> jax.Array:
  return jnp.sum(jnp.square(x - jnp.matmul(codes, dictionary, precision=_HIGHEST)), axis=-1)


@jax.jit
def _update(dictionary: jax.Array, norms: jax.Array, ctc: jax.Array, ctx: jax.Array,
            ridge: jax.Array) -> jax.Array:
  """Solves the ridge normal equations; keeps unused atoms; restores the row norms."""
  diag = jnp.diagonal(ctc)
  used = diag > 0
  scale = jnp.maximum(jnp.mean(diag), jnp.finfo(jnp.float32).tiny)
  system = ctc + ridge * scale * jnp.eye(ctc.shape[0]) + jnp.diag(jnp.where(used, 0.0, 1.0))
  chol = jnp.linalg.cholesky(system)
  solved = jax.scipy.linalg.cho_solve((chol, True), ctx)
  solved_norms = jnp.linalg.norm(solved, axis=-1, keepdims=True)
  ok = used[:, None] & (solved_norms > 0)
  rescaled = solved * (norms[:, None] / jnp.where(ok, solved_norms, 1.0))
  return jnp.where(ok, rescaled, dictionary)


def _normal_equations(x: jax.Array, dictionary: jax.Array,
                      chunk_codes: Callable[[int, jax.Array, jax.Array], jax.Array],
                      batch_size: int, residuals: bool = False
                      ) -> tuple[jax.Array, jax.Array, list[np.ndarray]]:
  """C^T C and C^T X over x in chunks of `batch_size`, the codes of the chunk starting at row
  `start` being chunk_codes(start, chunk, dictionary); with `residuals`, each chunk's residual
  energies too."""
  ctc = jnp.zeros((dictionary.shape[0], dictionary.shape[0]), jnp.float32)
  ctx = jnp.zeros_like(dictionary)
  residual_energy = []
  for start in range(0, x.shape[0], batch_size):
    chunk = x[start:start + batch_size]
    codes = chunk_codes(start, chunk, dictionary)
    terms = _normal_terms(chunk, codes)
    ctc, ctx = ctc + terms[0], ctx + terms[1]
    if residuals:
      residual_energy.append(np.asarray(_residual_energy(chunk, codes, dictionary)))
  return ctc, ctx, residual_energy


def _duplicates(dictionary: np.ndarray, energy: np.ndarray, max_cosine: float) -> np.ndarray:
  """Atoms whose cosine with a more-used atom (ties: the lower index) exceeds max_cosine."""
  unit = dictionary / np.maximum(np.linalg.norm(dictionary, axis=1, keepdims=True), 1e-30)
  cos = unit @ unit.T
  n = len(energy)
  index = np.arange(n)
  more_used = (energy[None, :] > energy[:, None]) | (
      (energy[None, :] == energy[:, None]) & (index[None, :] < index[:, None]))
  return ((cos > max_cosine) & more_used).any(axis=1)


def _replace(x: jax.Array, dictionary: jax.Array, norms: jax.Array, duplicate: np.ndarray,
             residual_energy: np.ndarray, infer_fn: InferFn) -> jax.Array:
  """Duplicates take the residual directions of the worst-explained samples (module docstring)."""
  worst = np.argsort(-residual_energy, kind="stable")[:int(duplicate.sum())]
  targets = np.flatnonzero(duplicate)[:len(worst)]
  rows = x[jnp.asarray(worst)]
  residual = np.asarray(rows - jnp.matmul(jnp.asarray(infer_fn(rows, dictionary), jnp.float32),
                                          dictionary, precision=_HIGHEST))
  length = np.linalg.norm(residual, axis=1)
  ok = length > 0
  out = np.array(dictionary)
  out[targets[ok]] = residual[ok] / length[ok, None] * np.asarray(norms)[targets[ok], None]
  return jnp.asarray(out)


def atom_usage(x: jax.Array, dictionary: jax.Array, *, infer_fn: InferFn,
               b_dec: jax.Array | None = None, batch_size: int = 4096) -> np.ndarray:
  """Each atom's code energy over x (the sum of its squared codes), float64 (n_atoms,).

  Args are those of `refine_dictionary`; e.g. ``np.argsort(-atom_usage(...))[:m]`` are the m most
  used atoms.
  """
  x, dictionary = check_problem(x, dictionary, b_dec, owner="atom_usage")
  batch_size = check_positive_int("batch_size", batch_size, "atom_usage")
  _check_infer_fn(infer_fn, "atom_usage")
  energy = np.zeros(dictionary.shape[0], np.float64)
  for start in range(0, x.shape[0], batch_size):
    codes = _codes(infer_fn, x[start:start + batch_size], dictionary, "atom_usage")
    energy += np.asarray(jnp.sum(jnp.square(codes), axis=0), np.float64)
  return energy


def _check_infer_fn(infer_fn, owner: str) -> None:
  if not callable(infer_fn):
    raise ConfigError(f"{owner} infer_fn is a {type(infer_fn).__name__}, not a function: "
                      "pass e.g. functools.partial(omp, max_atoms=8)")


def _codes(infer_fn, chunk: jax.Array, dictionary: jax.Array, owner: str) -> jax.Array:
  codes = jnp.asarray(infer_fn(chunk, dictionary), jnp.float32)
  if codes.shape != (chunk.shape[0], dictionary.shape[0]):
    raise DataError(f"{owner} infer_fn returned codes of shape {codes.shape}; it must return "
                    f"({chunk.shape[0]}, {dictionary.shape[0]}) (batch, n_atoms): check that it "
                    "takes (x, dictionary) and returns one code per atom")
  return codes


def refine_dictionary(x: jax.Array, dictionary: jax.Array, *, infer_fn: InferFn,
                      num_rounds: int, b_dec: jax.Array | None = None, ridge: float = 1e-4,
                      batch_size: int = 4096,
                      duplicate_cosine: float | None = None) -> jax.Array:
  """Refines a dictionary by alternating inference and least squares (see the module docstring).

  Args:
    x: (n, d) inputs in the dictionary's space (for an SAE, x * input_scale).
    dictionary: (n_atoms, d) atoms as rows.
    infer_fn: maps (x_centred (batch, d), dictionary) to non-negative codes (batch, n_atoms), e.g.
      ``functools.partial(omp, max_atoms=8)`` or ``functools.partial(fista, lam=0.1,
      num_iters=200)``.
    num_rounds: number of inference + update rounds.
    b_dec: optional (d,) offset subtracted from x (kept fixed).
    ridge: ridge weight relative to the mean code energy per atom, >= 0.
    batch_size: samples per inference chunk.
    duplicate_cosine: if set, in (0, 1]: after each round's update, atoms above this cosine with a
      more-used atom are replaced from the worst-explained samples (see the module docstring).

  Returns:
    float32 (n_atoms, d) refined dictionary with the input's row norms.
  """
  x, dictionary = check_problem(x, dictionary, b_dec, owner="refine_dictionary")
  num_rounds = check_positive_int("num_rounds", num_rounds, "refine_dictionary")
  batch_size = check_positive_int("batch_size", batch_size, "refine_dictionary")
  _check_infer_fn(infer_fn, "refine_dictionary")
  if not isinstance(ridge, numbers.Real) or not ridge >= 0.0:
    raise ConfigError(f"refine_dictionary argument ridge={ridge!r} is invalid: pass a float >= 0, "
                      "e.g. 1e-4")
  if duplicate_cosine is not None and (not isinstance(duplicate_cosine, numbers.Real)
                                       or not 0.0 < duplicate_cosine <= 1.0):
    raise ConfigError(f"refine_dictionary argument duplicate_cosine={duplicate_cosine!r} is "
                      "invalid: pass a cosine in (0, 1], e.g. 0.9, or None")
  norms = jnp.linalg.norm(dictionary, axis=-1)
  for _ in range(num_rounds):
    ctc, ctx, residual_energy = _normal_equations(
        x, dictionary, lambda start, chunk, d: _codes(infer_fn, chunk, d, "refine_dictionary"),
        batch_size, residuals=duplicate_cosine is not None)
    dictionary = _update(dictionary, norms, ctc, ctx, jnp.asarray(ridge, jnp.float32))
    if duplicate_cosine is not None:
      duplicate = _duplicates(np.asarray(dictionary), np.asarray(jnp.diagonal(ctc)),
                              float(duplicate_cosine))
      if duplicate.any():
        dictionary = _replace(x, dictionary, norms, duplicate, np.concatenate(residual_energy),
                              infer_fn)
  return dictionary


def refine_on_supports(x, dictionary, supports, *, num_rounds: int, ridge: float = 1e-4,
                       batch_size: int = 4096, floor: float = 0.0) -> np.ndarray:
  """The method of optimal directions with each sample's atoms fixed: each round fits every row of
  x (n, d) by non-negative least squares on the atoms its `supports` (n, n_atoms) use
  (`identi.infer.ancestors.support_fit`), then solves the same ridge normal equations as
  `refine_dictionary` (row norms kept, unused atoms unchanged). Where a structure decides which
  atoms a row may use (`identi.infer.ancestors.nested_supports`), this moves the atoms to what
  that structure explains, which a free pursuit would not. With `floor` > 0 each round's codes
  below `floor` times their atom's 0.9 quantile are dropped and the rows fitted again
  (`identi.infer.ancestors.code_floors`, `floored_fit`) before the update: small codes on rows a
  structure gives an atom by mistake would otherwise pull its direction towards those rows. x
  must already be centred. Returns the float32 (n_atoms, d) dictionary; deterministic."""
  x, dictionary = check_problem(x, dictionary, None, owner="refine_on_supports")
  supports = np.asarray(supports, np.float32)
  if supports.shape != (x.shape[0], dictionary.shape[0]):
    raise DataError(f"refine_on_supports got supports of shape {supports.shape}; they must be "
                    f"({x.shape[0]}, {dictionary.shape[0]}), one row of codes per sample")
  num_rounds = check_positive_int("num_rounds", num_rounds, "refine_on_supports")
  batch_size = check_positive_int("batch_size", batch_size, "refine_on_supports")
  if not isinstance(ridge, numbers.Real) or not ridge >= 0.0:
    raise ConfigError(f"refine_on_supports argument ridge={ridge!r} is invalid: pass a float >= "
                      "0, e.g. 1e-4")
  if not isinstance(floor, numbers.Real) or not 0.0 <= floor < 1.0:
    raise ConfigError(f"refine_on_supports argument floor={floor!r} is invalid: pass a fraction "
                      "in [0, 1), e.g. 0.25 (0: keep every code)")
  norms = jnp.linalg.norm(dictionary, axis=-1)
  rows = np.asarray(x)
  for _ in range(num_rounds):
    codes = ancestors.support_fit(rows, np.asarray(dictionary), supports)
    if floor > 0:
      codes = ancestors.floored_fit(rows, np.asarray(dictionary), codes,
                                    ancestors.code_floors(codes, floor))
    ctc, ctx, _ = _normal_equations(
        x, dictionary, lambda start, chunk, d: jnp.asarray(codes[start:start + chunk.shape[0]]),
        batch_size)
    dictionary = _update(dictionary, norms, ctc, ctx, jnp.asarray(ridge, jnp.float32))
  return np.asarray(dictionary, np.float32)
