"""identi.checks: the argument checks every module shares accept what they should and name the
argument, the value and the fix otherwise."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from identi import checks
from identi.errors import ConfigError


def test_is_int_and_is_real_reject_bools():
  assert checks.is_int(3) and checks.is_int(np.int64(3)) and not checks.is_int(True)
  assert not checks.is_int(3.0)
  assert checks.is_real(2.5) and checks.is_real(np.float32(1)) and checks.is_real(4)
  assert not checks.is_real(False) and not checks.is_real("1")


def test_check_count_bounds_and_message():
  assert checks.check_count(np.int32(4), "n") == 4 and type(checks.check_count(4, "n")) is int
  assert checks.check_count(0, "seed", 0) == 0
  with pytest.raises(ConfigError, match=r"n=0 is invalid: pass an integer >= 1"):
    checks.check_count(0, "n")
  with pytest.raises(ConfigError, match=r"n=True is invalid"):
    checks.check_count(True, "n")
  with pytest.raises(ConfigError, match=r"k=9 is invalid: pass an integer in \[1, 8\]"):
    checks.check_count(9, "k", 1, 8)
  with pytest.raises(ConfigError, match=r"k=2.0 is invalid"):
    checks.check_count(2.0, "k")


def test_check_sigma():
  assert checks.check_sigma(0) == 0.0
  for bad in (-1.0, float("nan"), float("inf"), "0.1"):
    with pytest.raises(ConfigError, match="sigma=.* is invalid: pass a finite noise scale >= 0"):
      checks.check_sigma(bad)


def test_check_key_accepts_typed_and_raw_keys_only():
  key = jax.random.key(0)
  assert checks.check_key(key) is key
  raw = jax.random.PRNGKey(0)
  assert checks.check_key(raw) is raw
  for bad in (0, jnp.zeros(3, jnp.uint32), jax.random.split(key, 2)):
    with pytest.raises(ConfigError, match="not a single JAX PRNG key: pass jax.random.key"):
      checks.check_key(bad)
