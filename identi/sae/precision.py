"""Mixed precision for SAEs: bfloat16 matmuls accumulated in float32, float32 master weights.

An SAE built with ``compute_dtype='bfloat16'`` keeps its parameters (and so the optimiser state) in
float32. Only the operands of the big matmuls (encoder, decoder, AuxK decoder and the sparse TopK
gather and scatter paths) are rounded to bfloat16; products accumulate in float32, and the
pre-activations, the loss and every gradient that reaches a parameter are float32. The backward
matmuls also take bfloat16 operands (the incoming gradient is rounded), as in the usual automatic
mixed precision recipe. With 'float32' the code is exactly the float32 code, bit for bit.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from identi.errors import ConfigError

COMPUTE_DTYPES = ("float32", "bfloat16")


def compute_dtype(value: Any, owner: str = "SAE") -> np.dtype:
  """The dtype named by `value` (a name or a dtype); ConfigError unless float32 or bfloat16."""
  try:
    dtype = jnp.dtype(value)
  except (TypeError, ValueError):
    dtype = None
  if dtype is None or dtype.name not in COMPUTE_DTYPES:
    raise ConfigError(f"{owner} field 'compute_dtype' is {value!r}; use one of "
                      f"{', '.join(COMPUTE_DTYPES)} (parameters stay float32 either way)")
  return dtype


def cast(x: jax.Array, dtype: Any) -> jax.Array:
  """`x` as a matmul operand of `dtype`; float32 arrays pass through unchanged for float32."""
  return x.astype(dtype)


def dot(a: jax.Array, b: jax.Array) -> jax.Array:
  """a @ b in float32: plain for float32 operands, else with float32 accumulation and result."""
  if a.dtype == jnp.float32 and b.dtype == jnp.float32:
    return a @ b
  return jnp.matmul(a, b, preferred_element_type=jnp.float32)


def einsum(spec: str, a: jax.Array, b: jax.Array) -> jax.Array:
  """jnp.einsum in float32: plain for float32 operands, else with float32 accumulation."""
  if a.dtype == jnp.float32 and b.dtype == jnp.float32:
    return jnp.einsum(spec, a, b)
  return jnp.einsum(spec, a, b, preferred_element_type=jnp.float32)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _mixed_matmul(a: jax.Array, b: jax.Array, dtype: np.dtype) -> jax.Array:
  return dot(cast(a, dtype), cast(b, dtype))


def _mixed_matmul_fwd(a, b, dtype):
  a_c, b_c = cast(a, dtype), cast(b, dtype)
  return dot(a_c, b_c), (a_c, b_c)


def _mixed_matmul_bwd(dtype, res, g):
  a_c, b_c = res
  g_c = cast(g, dtype)
  # JAX's own transpose rule upcasts the bfloat16 operand to float32 and rounds the gradient to
  # bfloat16; here both backward matmuls run on bfloat16 operands and return float32.
  d_a = jnp.matmul(g_c, b_c.T, preferred_element_type=jnp.float32,
                   out_sharding=jax.typeof(a_c).sharding)
  d_b = jnp.matmul(a_c.T, g_c, preferred_element_type=jnp.float32,
                   out_sharding=jax.typeof(b_c).sharding)
  return d_a, d_b


_mixed_matmul.defvjp(_mixed_matmul_fwd, _mixed_matmul_bwd)


def matmul(a: jax.Array, b: jax.Array, dtype: Any = jnp.float32) -> jax.Array:
  """Differentiable a @ b of float32 arrays with operands in `dtype` and a float32 result.

  For float32 this is exactly ``a @ b``. For bfloat16 both operands are rounded, products
  accumulate in float32, and the gradients (float32, like a and b) come from bfloat16 matmuls of
  the rounded gradient with the rounded operands.
  """
  dtype = jnp.dtype(dtype)
  if dtype == jnp.float32:
    return a @ b
  return _mixed_matmul(a, b, dtype)
