"""Dictionary refinement: alternate sparse inference with a least-squares decoder update.

Each round infers codes C = infer_fn(x - b_dec, D) with the current dictionary, then solves the
ridge-regularised normal equations (C^T C + ridge * s * I) D' = C^T (x - b_dec), where s is the mean
diagonal of C^T C, so ``ridge`` is relative to the code energy. Atoms that no sample used (zero
column in C) keep their old row; every updated row is rescaled to the norm its atom had before
refinement, so code units stay those of the input dictionary (unit rows for an SAE's W_dec stay
unit rows). This is the method of optimal directions (Engan et al. 1999) with a fixed norm.

The normal equations are accumulated over chunks of ``batch_size`` samples and solved with a dense
(n_atoms, n_atoms) Cholesky factorisation, which suits dictionaries up to a few thousand atoms.
"""

import numbers
from typing import Callable

import jax
import jax.numpy as jnp

from identi.errors import ConfigError, DataError
from identi.infer.omp import check_positive_int, check_problem

_HIGHEST = jax.lax.Precision.HIGHEST

InferFn = Callable[[jax.Array, jax.Array], jax.Array]


@jax.jit
def _normal_terms(x: jax.Array, codes: jax.Array) -> tuple[jax.Array, jax.Array]:
  """C^T C and C^T X of one chunk."""
  return (jnp.matmul(codes.T, codes, precision=_HIGHEST),
          jnp.matmul(codes.T, x, precision=_HIGHEST))


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


def refine_dictionary(x: jax.Array, dictionary: jax.Array, *, infer_fn: InferFn,
                      num_rounds: int, b_dec: jax.Array | None = None, ridge: float = 1e-4,
                      batch_size: int = 4096) -> jax.Array:
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

  Returns:
    float32 (n_atoms, d) refined dictionary with the input's row norms.
  """
  x, dictionary = check_problem(x, dictionary, b_dec, owner="refine_dictionary")
  num_rounds = check_positive_int("num_rounds", num_rounds, "refine_dictionary")
  batch_size = check_positive_int("batch_size", batch_size, "refine_dictionary")
  if not callable(infer_fn):
    raise ConfigError(f"refine_dictionary infer_fn is a {type(infer_fn).__name__}, not a function: "
                      "pass e.g. functools.partial(omp, max_atoms=8)")
  if not isinstance(ridge, numbers.Real) or not ridge >= 0.0:
    raise ConfigError(f"refine_dictionary argument ridge={ridge!r} is invalid: pass a float >= 0, "
                      "e.g. 1e-4")
  n_atoms = dictionary.shape[0]
  norms = jnp.linalg.norm(dictionary, axis=-1)
  for _ in range(num_rounds):
    ctc = jnp.zeros((n_atoms, n_atoms), jnp.float32)
    ctx = jnp.zeros_like(dictionary)
    for start in range(0, x.shape[0], batch_size):
      chunk = x[start:start + batch_size]
      codes = jnp.asarray(infer_fn(chunk, dictionary), jnp.float32)
      if codes.shape != (chunk.shape[0], n_atoms):
        raise DataError(f"refine_dictionary infer_fn returned codes of shape {codes.shape}; it "
                        f"must return ({chunk.shape[0]}, {n_atoms}) (batch, n_atoms): check that "
                        "it takes (x, dictionary) and returns one code per atom")
      terms = _normal_terms(chunk, codes)
      ctc, ctx = ctc + terms[0], ctx + terms[1]
    dictionary = _update(dictionary, norms, ctc, ctx, jnp.asarray(ridge, jnp.float32))
  return dictionary
