"""Non-negative orthogonal matching pursuit (NN-OMP): the sparsest non-negative code of x.

Causal minimality says the identifiable representation is the sparsest code that explains the
data. An SAE's one-layer encoder only approximates it; greedy sparse inference with the SAE's own
decoder gets much closer. For each sample, with dictionary rows d_j and x_c = x - b_dec:

1. Select the atom outside the support with the largest cosine between d_j and the residual r.
2. Solve the non-negative least squares (NNLS) problem min ||x_c - sum_S c_j d_j||, c >= 0, on the
   support S exactly, by the Lawson-Hanson active-set method warm-started from the previous
   solution: solve the unconstrained LS on the passive set (Cholesky of the masked Gram submatrix
   D_S D_S^T); while a coefficient is <= 0, step back along the segment from the previous feasible
   point until the first coefficient hits 0, drop it from the support and re-solve. Each step drops
   at least one atom, so at most ``max_atoms`` steps are needed. With the new atom added (its
   correlation with r is positive), this is one outer step of Lawson-Hanson NNLS truncated at
   ``max_atoms`` atoms, so the coefficients are the exact NNLS solution on the final support.
3. Drop atoms whose contribution c_j ||d_j|| is below float32 round-off (1e-5 ||x_c||): they are
   no part of the sparsest code, e.g. a wrong warm-start atom whose exact coefficient is 0.
4. Stop adding atoms for a sample when ||r||^2 <= tol * ||x_c||^2, when no atom outside the support
   has a correlation with r above float32 round-off (1e-5 ||x_c|| per unit atom norm), or when the
   support holds ``max_atoms`` atoms.

The support lives in ``max_atoms`` slots per sample, so every array has a static shape. The
selection loop is one ``lax.while_loop`` over the whole batch: an iteration scores every sample with
one (batch, d) x (d, n_atoms) matmul against the unit-norm atoms and updates only the samples still
adding atoms. An atom dropped by NNLS frees its slot and may be selected again, so the loop runs
until every sample has stopped, capped at 2 * ``max_atoms`` steps. The slot atoms and their Gram
matrix are carried in the loop and updated at the added atom's slot only. LS solves use the
Cholesky factor of the Gram submatrix plus one corrected-semi-normal-equations step, which keeps
float32 accuracy close to QR's.

Speed (``benchmarks/minimal_codes.py``): the loop used to be a per-sample ``_omp_one`` under
``jax.vmap``. It picked the atom with ``argmax`` (on CPU, XLA's argmax over the (batch, n_atoms)
scores costs about as much as the score matmul; ``top_k(., 1)`` returns the same first maximum
for a fraction of it), recomputed the slot Gram as a batch of small (k, d) x (d, k) matmuls (slow
on CPU) and gathered the slot atoms twice per step. At n_atoms = 16,384, d = 512, a batch of 1024
samples with 16 planted atoms and ``max_atoms`` = 32 (17 steps), on 2 shared CPU cores: 3.9 s ->
2.1 s of CPU time per batch (best wall time 7.6 s -> 3.4 s), codes equal within 1.2e-7; the score
matmul is now most of each step. Nothing of size n_atoms x n_atoms is formed.

Compiled shapes: called outside a trace, `omp` pads the batch and the atoms with zero rows to
`bucket_size` (at most 25% more, powers of two kept) and slices the codes back. A zero atom is never
selected and rows are coded independently, so the codes are those of the unpadded call bit for
bit, while calls of many sizes (the chunks of a data set, a dictionary that loses atoms) share a
few compiled programs.

Warm start: with ``init_support``, step 0 puts those atoms in the slots and runs the NNLS inner loop
from c = 0, which drops every atom whose coefficient is not positive; greedy steps follow.
"""

import functools
import numbers

import jax
import jax.numpy as jnp

from identi.errors import ConfigError, DataError

_HIGHEST = jax.lax.Precision.HIGHEST
#: An atom is added only if its correlation with the residual, divided by its norm, exceeds this
#: fraction of ||x - b_dec|| (float32 round-off leaves correlations of about 1e-6 ||x||).
_MIN_CORRELATION = 1e-5
#: Selection steps per sample are capped at this multiple of max_atoms (NNLS drops need extra).
_STEP_FACTOR = 2
#: Relative ridge added to the Gram diagonal so that Cholesky survives nearly collinear atoms.
_GRAM_RIDGE = 1e-6


def check_problem(x, dictionary, b_dec, *, owner: str) -> tuple[jax.Array, jax.Array]:
  """Validates shapes (trace-time only) and returns float32 (x - b_dec, dictionary).

  Args:
    x: (batch, d) inputs.
    dictionary: (n_atoms, d) atoms as rows (an SAE's W_dec).
    b_dec: None or (d,) offset subtracted from x (an SAE's b_dec).
    owner: name of the calling function, for error messages.
  """
  x_shape, d_shape = tuple(jnp.shape(x)), tuple(jnp.shape(dictionary))
  if len(d_shape) != 2 or 0 in d_shape:
    raise DataError(f"{owner} dictionary has shape {d_shape}; it must be 2-D (n_atoms, d) with "
                    "atoms as rows: pass an SAE's W_dec, or transpose a (d, n_atoms) matrix")
  d = d_shape[1]
  if len(x_shape) != 2:
    raise DataError(f"{owner} input x has shape {x_shape}; it must be 2-D (batch, {d}): "
                    f"reshape it to (-1, {d})")
  if x_shape[1] != d:
    raise DataError(f"{owner} input x has {x_shape[1]} features but the dictionary atoms have "
                    f"{d}: pass x in the dictionary's space (for an SAE, x * input_scale)")
  x = jnp.asarray(x, jnp.float32)
  if b_dec is not None:
    if tuple(jnp.shape(b_dec)) != (d,):
      raise DataError(f"{owner} b_dec has shape {tuple(jnp.shape(b_dec))}; it must be ({d},), "
                      "one offset per feature (an SAE's b_dec) or None")
    x = x - jnp.asarray(b_dec, jnp.float32)
  return x, jnp.asarray(dictionary, jnp.float32)


def bucket_size(n: int) -> int:
  """n rounded up to one of four sizes per power of two (8, 10, 12, 14, 16, 20, 24, 28, 32, ...;
  n itself up to 8): at most 25% larger, and powers of two are kept."""
  if n <= 8:
    return n
  step = 1 << (n.bit_length() - 3)
  return -(-n // step) * step


def check_positive_int(name: str, value, owner: str) -> int:
  """Returns `value` as int, or raises ConfigError unless it is a positive integer."""
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
    raise ConfigError(f"{owner} argument {name}={value!r} is invalid: pass an integer >= 1")
  return int(value)


def _masked_gram(gram: jax.Array, passive: jax.Array) -> jax.Array:
  """Gram restricted to the passive slots, identity elsewhere, with a tiny relative ridge."""
  both = passive[:, None] & passive[None, :]
  diag = jnp.diagonal(gram)
  ridge = jnp.where(passive, diag * (1.0 + _GRAM_RIDGE) + 1e-12, 1.0)
  return jnp.where(both, gram, 0.0) * (1.0 - jnp.eye(gram.shape[0])) + jnp.diag(ridge)


def _least_squares(atoms: jax.Array, x: jax.Array, chol: jax.Array,
                   passive: jax.Array) -> jax.Array:
  """LS coefficients on the passive slots (0 on the others) from the Cholesky factor of their Gram.

  One corrected-semi-normal-equations step (re-solving for the residual's correlations) recovers
  the accuracy that forming the Gram matrix loses in float32.
  """

  def solve(target):
    rhs = jnp.where(passive, jnp.matmul(atoms, target, precision=_HIGHEST), 0.0)
    return jnp.where(passive, jax.scipy.linalg.cho_solve((chol, True), rhs), 0.0)

  coef = solve(x)
  return coef + solve(x - jnp.matmul(coef, atoms, precision=_HIGHEST))


def nnls_slots(atoms: jax.Array, x: jax.Array, passive: jax.Array, coef: jax.Array,
               gram: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
  """Lawson-Hanson inner loop: NNLS of x on the slot atoms, from a feasible start.

  Args:
    atoms: (k, d) the atoms in the k slots.
    x: (d,) target.
    passive: (k,) bool, the slots in the support.
    coef: (k,) feasible start (>= 0, 0 outside `passive`).
    gram: optional (k, k) atoms @ atoms.T (entries of slots outside `passive` are ignored);
      computed when None.

  Returns:
    (passive, coef): the support with the atoms whose coefficient reached 0 removed, and the LS
    solution on it, all > 0.
  """
  k = atoms.shape[0]
  tiny = jnp.finfo(jnp.float32).tiny
  if gram is None:
    gram = jnp.matmul(atoms, atoms.T, precision=_HIGHEST)

  def cond(state):
    step, _, _, feasible = state
    return (~feasible) & (step < k)

  def body(state):
    step, passive, coef, _ = state
    sol = _least_squares(atoms, x, jnp.linalg.cholesky(_masked_gram(gram, passive)), passive)
    neg = passive & (sol <= 0.0)
    feasible = ~jnp.any(neg)
    ratio = jnp.where(neg, coef / jnp.maximum(coef - sol, tiny), jnp.inf)
    alpha = jnp.minimum(jnp.min(ratio), 1.0)
    stepped = coef + alpha * (sol - coef)
    keep = passive & (stepped > 0.0) & ~(neg & (ratio <= alpha))
    new_passive = jnp.where(feasible, passive, keep)
    new_coef = jnp.where(feasible, sol, jnp.where(keep, stepped, 0.0))
    return step + 1, new_passive, new_coef, feasible

  _, passive, coef, _ = jax.lax.while_loop(cond, body, (0, passive, coef, jnp.array(False)))
  return passive, coef


def support_nnls(x: jax.Array, dictionary: jax.Array, codes: jax.Array, *,
                 slots: int) -> tuple[jax.Array, jax.Array]:
  """Each row of x (n, d) fitted by non-negative least squares on the atoms of `dictionary` (m, d)
  its `codes` (n, m) use (the `slots` largest), from those codes (`nnls_slots`: a feasible start,
  so a row's support can only shrink and its error can only fall). Returns (idx (n, slots) the
  atoms, coef (n, slots) their coefficients, 0 where unused or dropped). Traceable; call it
  inside `jax.jit` with `slots` static."""
  values, idx = jax.lax.top_k(codes, slots)
  passive = values > 0

  def one(atoms, row, p, v):
    p, coef = nnls_slots(atoms, row, p, jnp.where(p, v, 0.0))
    return jnp.where(p, coef, 0.0)

  return idx, jax.vmap(one)(dictionary[idx], x, passive, values)


def _omp_batch(x: jax.Array, dictionary: jax.Array, norms: jax.Array, init_idx: jax.Array,
               init_in: jax.Array, exclude: jax.Array, tol: jax.Array,
               max_atoms: int) -> jax.Array:
  """NN-OMP for centred samples x (batch, d); returns their (batch, n_atoms) codes.

  One loop iteration is one selection step of every sample still adding atoms (the others keep
  their state), so the step scores the whole batch with one (batch, d) x (d, n_atoms) matmul. The
  slot atoms and their Gram matrix are carried and updated at the added atom's slot only.
  """
  batch, n_atoms = x.shape[0], dictionary.shape[0]
  rows = jnp.arange(batch)
  inv_norms = jnp.where(norms > 0, 1.0 / jnp.where(norms > 0, norms, 1.0), 0.0)
  unit = dictionary * inv_norms[:, None]
  target = tol * jnp.sum(jnp.square(x), axis=-1)
  min_corr = _MIN_CORRELATION * jnp.linalg.norm(x, axis=-1)
  warm = jnp.any(init_in, axis=-1)

  def cond(state):
    step, *_, active = state
    return jnp.any(active) & (step <= _STEP_FACTOR * max_atoms)

  def body(state):
    step, idx, atoms, gram, passive, coef, active = state
    resid = x - jnp.einsum("bk,bkd->bd", coef, atoms, precision=_HIGHEST)
    energy = jnp.sum(jnp.square(resid), axis=-1)
    score = jnp.matmul(resid, unit.T, precision=_HIGHEST)
    # Support atoms cannot be selected again. top_k(., 1) returns argmax's first maximum, and is
    # much cheaper on CPU.
    score = score.at[rows[:, None], idx].min(jnp.where(passive, -jnp.inf, jnp.inf))
    score = score.at[rows, exclude].min(-jnp.inf, mode="drop")  # n_atoms (none) is dropped.
    best_score, best = jax.lax.top_k(score, 1)
    best_score, best = best_score[:, 0], best[:, 0]
    add = (active & (energy > target) & (best_score > min_corr)
           & (jnp.sum(passive, axis=-1) < max_atoms) & ((step > 0) | ~warm))
    slot = jnp.argmin(passive, axis=-1)
    at_slot = add[:, None] & (jnp.arange(max_atoms) == slot[:, None])
    idx = jnp.where(at_slot, best[:, None].astype(idx.dtype), idx)
    atoms = atoms.at[rows, slot].set(jnp.where(add[:, None], dictionary[best], atoms[rows, slot]))
    row = jnp.einsum("bkd,bd->bk", atoms, atoms[rows, slot], precision=_HIGHEST)
    gram = jnp.where(at_slot[:, :, None], row[:, None, :],
                     jnp.where(at_slot[:, None, :], row[:, :, None], gram))
    new_passive = passive | at_slot
    new_passive, new_coef = jax.vmap(nnls_slots)(atoms, x, new_passive,
                                                 jnp.where(new_passive, coef, 0.0), gram)
    new_passive = new_passive & (new_coef * norms[idx] > min_corr[:, None])
    new_coef = jnp.where(new_passive, new_coef, 0.0)
    keep = active[:, None]
    return (step + 1, idx, atoms, gram, jnp.where(keep, new_passive, passive),
            jnp.where(keep, new_coef, coef), active & (add | (step == 0)))

  # With a warm start, step 0 only solves the NNLS of its support (from the feasible coef = 0).
  atoms = dictionary[init_idx]
  gram = jnp.einsum("bkd,bjd->bkj", atoms, atoms, precision=_HIGHEST)
  state = (0, init_idx, atoms, gram, init_in, jnp.zeros((batch, max_atoms), jnp.float32),
           jnp.ones((batch,), bool))
  _, idx, _, _, passive, coef, _ = jax.lax.while_loop(cond, body, state)
  codes = jnp.zeros((batch, n_atoms), jnp.float32)
  return codes.at[rows[:, None], idx].add(jnp.where(passive, coef, 0.0))


@functools.partial(jax.jit, static_argnames=("max_atoms",))
def _omp(x: jax.Array, dictionary: jax.Array, init: jax.Array | None, exclude: jax.Array,
         tol: jax.Array, *, max_atoms: int) -> jax.Array:
  norms = jnp.linalg.norm(dictionary, axis=-1)
  if init is None:
    init_idx = jnp.zeros((x.shape[0], max_atoms), jnp.int32)
    init_in = jnp.zeros((x.shape[0], max_atoms), bool)
  else:
    values, init_idx = jax.lax.top_k(init, max_atoms)
    init_in = values > 0
  exclude = jnp.where(exclude < 0, dictionary.shape[0], exclude)  # Out of bounds: none.
  return _omp_batch(x, dictionary, norms, init_idx, init_in, exclude, tol, max_atoms)


def omp(x: jax.Array, dictionary: jax.Array, *, max_atoms: int, tol: float = 1e-4,
        b_dec: jax.Array | None = None, init_support: jax.Array | None = None,
        exclude: jax.Array | None = None) -> jax.Array:
  """Non-negative orthogonal matching pursuit codes of a batch (see the module docstring).

  Jit-compiled (``max_atoms`` static) and usable inside ``jax.jit``.

  Args:
    x: (batch, d) inputs, in the dictionary's space (for an SAE, x * input_scale).
    dictionary: (n_atoms, d) atoms as rows (an SAE's W_dec); atoms need not have unit norm.
    max_atoms: most atoms per sample, in [1, n_atoms].
    tol: stop adding atoms once ||r||^2 <= tol * ||x - b_dec||^2, in [0, 1).
    b_dec: optional (d,) offset subtracted from x first (an SAE's b_dec).
    init_support: optional (batch, n_atoms) warm start: entries > 0 mark atoms to start from (the
      ``max_atoms`` largest if there are more), e.g. an SAE encoder's codes. Atoms whose NNLS
      coefficient on this support is not positive are dropped before the greedy steps.
    exclude: optional (batch,) int index of one atom each sample may not use (-1: none), e.g. to
      code each sample without the atom it is scored against; as if that atom were a zero row.

  Returns:
    float32 (batch, n_atoms) non-negative codes c with x ~ c @ dictionary + b_dec.
  """
  x, dictionary = check_problem(x, dictionary, b_dec, owner="omp")
  max_atoms = check_positive_int("max_atoms", max_atoms, "omp")
  n_atoms = dictionary.shape[0]
  if max_atoms > n_atoms:
    raise ConfigError(f"omp argument max_atoms={max_atoms} exceeds the {n_atoms} dictionary atoms: "
                      f"pass max_atoms <= {n_atoms}")
  if isinstance(tol, numbers.Real) and not 0.0 <= tol < 1.0:
    raise ConfigError(f"omp argument tol={tol!r} is outside [0, 1): pass a relative residual "
                      "energy such as 1e-4")
  init = None
  if init_support is not None:
    if tuple(jnp.shape(init_support)) != (x.shape[0], n_atoms):
      raise DataError(f"omp init_support has shape {tuple(jnp.shape(init_support))}; it must be "
                      f"{(x.shape[0], n_atoms)} (batch, n_atoms): pass e.g. the SAE encoder's "
                      "codes of the same batch")
    init = jnp.asarray(init_support, jnp.float32)
  if exclude is None:
    exclude = jnp.full((x.shape[0],), -1, jnp.int32)
  elif tuple(jnp.shape(exclude)) != (x.shape[0],) or not jnp.issubdtype(
      jnp.result_type(exclude), jnp.integer):
    raise DataError(f"omp exclude has shape {tuple(jnp.shape(exclude))} and dtype "
                    f"{jnp.result_type(exclude)}; it must be ({x.shape[0]},) integer atom indices "
                    "(-1: none), one per sample")
  exclude, tol = jnp.asarray(exclude, jnp.int32), jnp.asarray(tol, jnp.float32)
  batch = x.shape[0]
  rows, atoms = batch, n_atoms
  if not any(isinstance(a, jax.core.Tracer) for a in (x, dictionary, init, exclude, tol)):
    # Outside a trace, pad the batch and the atoms to bucket sizes (zero rows, never selected):
    # calls of many sizes then share a few compiled programs, with the same codes bit for bit.
    rows, atoms = bucket_size(batch), bucket_size(n_atoms)
  if (rows, atoms) == (batch, n_atoms):
    return _omp(x, dictionary, init, exclude, tol, max_atoms=max_atoms)
  x = jnp.pad(x, ((0, rows - batch), (0, 0)))
  dictionary = jnp.pad(dictionary, ((0, atoms - n_atoms), (0, 0)))
  if init is not None:
    init = jnp.pad(init, ((0, rows - batch), (0, atoms - n_atoms)))
  exclude = jnp.pad(exclude, (0, rows - batch), constant_values=-1)
  if tol.ndim:
    tol = jnp.pad(tol, (0, rows - batch))
  return _omp(x, dictionary, init, exclude, tol, max_atoms=max_atoms)[:batch, :n_atoms]
