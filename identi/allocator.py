"""glibc malloc settings that let XLA:CPU reuse its scratch memory from one step to the next.

XLA:CPU allocates one temp buffer per run of an executable (648 MB for the TopK training step at
d_in 512, d_sae 8192, batch 4096) and frees it when the run ends. glibc serves a request that large
from a fresh `mmap` (it is above the mmap threshold, and an XLA worker thread's own arena cannot
grow that far), so every step faults in and zeroes each touched page again: 107,000 page faults
per step, 100-800 ms on top of a 300 ms step on a 2-core VM. With one arena, no mmap and trimming
only above 2 GiB, the freed buffer stays in the heap and the next step reuses it.

The cost: the process keeps its peak heap (up to 2 GiB of it free) instead of returning it to the
system. identi's binaries and benchmarks apply this at start (`identi.bin.cli.run`); set
IDENTI_MALLOC=system to keep glibc's defaults. Other platforms (macOS, musl) are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
#: The most memory freed at the top of the heap that glibc keeps (mallopt takes a C int).
TRIM_THRESHOLD = 2**31 - 1


def _glibc():
  """The C library when it is glibc and IDENTI_MALLOC is not 'system', else None."""
  if os.environ.get("IDENTI_MALLOC", "") == "system" or not sys.platform.startswith("linux"):
    return None
  try:
    if not os.confstr("CS_GNU_LIBC_VERSION"):
      return None
  except (ValueError, OSError):
    return None
  libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
  return libc if hasattr(libc, "mallopt") else None


def environment() -> dict[str, str]:
  """The same settings as glibc environment variables, for a process started from scratch (the
  benchmarks' peers, so both sides run with one allocator policy); empty where skipped."""
  if _glibc() is None:
    return {}
  return {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_MAX_": "0",
          "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD)}


def retain_freed_memory() -> bool:
  """Keeps large freed blocks in the heap for reuse (glibc only); True if applied.

  Call it before the first JAX computation: glibc gives a thread its arena on the thread's first
  allocation, so XLA threads started earlier keep theirs. IDENTI_MALLOC=system skips it.
  """
  libc = _glibc()
  if libc is None:
    return False
  settings = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
  return all(libc.mallopt(option, value) == 1 for option, value in settings)
