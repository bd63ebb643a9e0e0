"""identi.allocator: XLA:CPU's scratch buffer is reused from step to step instead of re-faulted."""
import os
import subprocess
import sys

import pytest

from identi import allocator
from helpers import ROOT, xla_flags

# A jitted program whose temp buffer (the 2048 x 16384 float32 product, 128 MiB) is above glibc's
# mmap threshold; prints its temp size and the fewest page faults of one of 8 steady-state runs
# (the fewest: a retained heap can still fault where glibc places the buffer on pages that no
# earlier run touched, or where other processes load the machine).
PROGRAM = """
import resource, sys
from identi import allocator
if sys.argv[1] == "mallopt":
  assert allocator.retain_freed_memory()
import jax, jax.numpy as jnp
x = jnp.ones((2048, 64), jnp.float32)
w = jnp.ones((64, 16384), jnp.float32)
f = jax.jit(lambda x, w: jnp.max(x @ w, axis=0).sum() + jnp.min(x @ w, axis=1).sum())
compiled = f.lower(x, w).compile()
for _ in range(2):
  jax.block_until_ready(compiled(x, w))
faults = []
for _ in range(8):
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  jax.block_until_ready(compiled(x, w))
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(compiled.memory_analysis().temp_size_in_bytes, min(faults))
"""

glibc = pytest.mark.skipif(not allocator.environment(), reason="glibc malloc only")


def _steady_state_faults(mode: str) -> tuple[int, int]:
  env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
  env.update(XLA_FLAGS=xla_flags(1), JAX_PLATFORMS="cpu")
  env.pop("IDENTI_MALLOC", None)
  if mode == "env":
    env.update(allocator.environment())
  proc = subprocess.run([sys.executable, "-c", PROGRAM, mode], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300, check=True)
  temp, faults = map(int, proc.stdout.split())
  return temp, faults


@glibc
def test_default_malloc_faults_the_scratch_buffer_in_again_every_run():
  temp, faults = _steady_state_faults("default")
  assert temp >= 128 << 20
  assert faults > temp // 4096 // 2


@glibc
@pytest.mark.parametrize("mode", ["mallopt", "env"])
def test_retained_scratch_buffer_is_reused_without_page_faults(mode):
  temp, faults = _steady_state_faults(mode)
  assert temp >= 128 << 20
  assert faults < temp // 4096 // 20


def test_opt_out_and_other_platforms_keep_the_system_allocator(monkeypatch):
  monkeypatch.setenv("IDENTI_MALLOC", "system")
  assert not allocator.retain_freed_memory()
  assert allocator.environment() == {}
  monkeypatch.delenv("IDENTI_MALLOC")
  monkeypatch.setattr(sys, "platform", "darwin")
  assert not allocator.retain_freed_memory()
  assert allocator.environment() == {}


@glibc
def test_environment_names_the_same_settings_as_mallopt():
  assert allocator.environment() == {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_MAX_": "0",
                                     "MALLOC_TRIM_THRESHOLD_": str(allocator.TRIM_THRESHOLD)}
