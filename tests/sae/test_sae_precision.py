"""Tests of the mixed-precision matmul (identi/sae/precision.py)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from identi.errors import ConfigError
from identi.sae import precision


def _operands():
  a = jax.random.normal(jax.random.key(0), (8, 6))
  b = jax.random.normal(jax.random.key(1), (6, 5))
  return a, b


@pytest.mark.parametrize("value,name", [("float32", "float32"), ("bfloat16", "bfloat16"),
                                        (jnp.bfloat16, "bfloat16"), (np.float32, "float32"),
                                        (jnp.dtype("bfloat16"), "bfloat16")])
def test_compute_dtype_accepts_names_and_dtypes(value, name):
  assert precision.compute_dtype(value).name == name


@pytest.mark.parametrize("value", ["float16", "fp8", None, 3, jnp.float16])
def test_other_compute_dtypes_raise_config_error_naming_the_field(value):
  with pytest.raises(ConfigError, match=r"field 'compute_dtype' is .*; use one of float32, "
                                        r"bfloat16"):
    precision.compute_dtype(value, "TopKSAE")


def test_float32_matmul_is_exactly_the_plain_matmul():
  a, b = _operands()
  chex.assert_trees_all_equal(precision.matmul(a, b), a @ b)
  grads = jax.grad(lambda a, b: jnp.sum(jnp.sin(precision.matmul(a, b))), argnums=(0, 1))(a, b)
  ref = jax.grad(lambda a, b: jnp.sum(jnp.sin(a @ b)), argnums=(0, 1))(a, b)
  chex.assert_trees_all_equal(grads, ref)


def test_bfloat16_matmul_rounds_operands_and_returns_float32_values_and_gradients():
  a, b = _operands()
  bf = jnp.bfloat16
  out = precision.matmul(a, b, bf)
  chex.assert_type(out, jnp.float32)
  exact = np.asarray(a.astype(bf), np.float64) @ np.asarray(b.astype(bf), np.float64)
  np.testing.assert_allclose(out, exact, rtol=1e-5, atol=1e-5)  # float32 accumulation
  f = lambda a, b, dtype: jnp.sum(jnp.sin(precision.matmul(a, b, dtype)))
  grads = jax.grad(f, argnums=(0, 1))(a, b, bf)
  ref = jax.grad(f, argnums=(0, 1))(a, b, jnp.float32)
  chex.assert_type(grads, jnp.float32)
  chex.assert_trees_all_close(grads, ref, rtol=3e-2, atol=3e-2)


def test_bfloat16_backward_matmuls_take_bfloat16_operands():
  a, b = _operands()
  jaxpr = jax.make_jaxpr(jax.grad(
      lambda a, b: jnp.sum(precision.matmul(a, b, jnp.bfloat16)), argnums=(0, 1)))(a, b)
  dots = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "dot_general"]
  assert len(dots) == 3  # forward and the two backward matmuls
  for eqn in dots:
    assert [v.aval.dtype for v in eqn.invars] == [jnp.bfloat16] * 2, eqn
    assert eqn.outvars[0].aval.dtype == jnp.float32, eqn
