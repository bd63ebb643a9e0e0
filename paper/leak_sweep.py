"""Identifiability against the selection leak: TopK encoder and minimal-code MCC over eps.

  python -m paper.leak_sweep [--smoke] [--out=paper/figures]

The default HSM world (128 level-1 concepts in d = 64) at leak eps from 0.05 (the spec's default)
to 1 (no selection), with pi re-fitted at every eps so that the mean number of active level-1
concepts stays that of the default world (6.5); TopK SAE with k = 8. The smaller eps, the more
often a whole's parts fire together (the JSON records P(all parts | any part), averaged over
level-2 wholes), and the more an SAE learns a co-occurring pair as one composite unit instead of
two parts. This is where the default world's eps = 0.3 sits among harder and easier settings.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import matplotlib.pyplot as plt
import numpy as np
from identi import generators
from identi.bin import cli

from paper.common import (HSM_K, OUT, SMOKE, hsm_config, hsm_world, identify, train_config,
                          write_outputs)

NAME = "leak_sweep"


def co_occurrence(world: generators.HSMConfig, num_samples: int) -> float:
  """P(every part of a level-2 whole fires | any of them fires), mean over wholes."""
  out = generators.generate_hsm(jax.random.key(1), world, num_samples, view=None)
  a1, graph = np.asarray(out["a"][0]), out["graph"][0]
  ratios = []
  for j in range(graph.shape[1]):
    count = a1[:, graph[:, j]].sum(axis=1)
    ratios.append(np.mean(count == graph[:, j].sum()) / max(np.mean(count > 0), 1e-12))
  return float(np.mean(ratios))


def mean_active(world: generators.HSMConfig, num_samples: int = 16384) -> float:
  out = generators.generate_hsm(jax.random.key(2), world, num_samples, view=None)
  return float(np.mean(np.sum(np.asarray(out["a"][0]), axis=1)))


def pi_for_activity(world: generators.HSMConfig, target: float, steps: int = 12) -> float:
  """The pi in (0, 1) at which `world` has `target` active level-1 concepts (bisection)."""
  lo, hi = 1e-3, 0.95
  for _ in range(steps):
    mid = 0.5 * (lo + hi)
    if mean_active(dataclasses.replace(world, pi=mid)) < target:
      lo = mid
    else:
      hi = mid
  return 0.5 * (lo + hi)


def run(out: str, smoke: bool) -> list[str]:
  leaks = [0.05, 1.0] if smoke else [0.05, 0.1, 0.2, 0.3, 0.5, 1.0]
  target = mean_active(hsm_config(smoke))
  records = []
  for eps in leaks:
    pi = pi_for_activity(hsm_config(smoke, eps=eps), target, steps=4 if smoke else 12)
    tc = train_config("topk", smoke, **{"sae.k": HSM_K})
    x, z = hsm_world(4096 if smoke else 1 << 17, smoke=smoke, eps=eps, pi=pi)
    r = identify(x, z, tc, os.path.join(out, NAME, "runs", f"eps{eps}"))
    records.append(dict(r, eps=eps, pi=pi, active=float(np.mean(np.sum(z > 0, axis=1))),
                        co_occurrence=co_occurrence(hsm_config(smoke, eps=eps, pi=pi), 65536)))
  fig, ax = plt.subplots(figsize=(5, 4))
  ax.plot(leaks, [r["mcc"] for r in records], "o-", label="TopK encoder")
  ax.plot(leaks, [r["mcc_minimal"] for r in records], "s--", label="minimal code")
  ax.plot(leaks, [r["co_occurrence"] for r in records], ":", color="gray",
          label="P(all parts | any part)")
  ax.axhline(0.95, color="gray", lw=1)
  ax.set_xscale("log")
  ax.set_xlabel("selection leak eps")
  ax.set_ylabel("MCC")
  ax.legend(loc="lower right")
  return write_outputs(out, NAME, fig, {"records": records})


def main(argv):
  del argv
  print("\n".join(run(OUT.value, SMOKE.value)))


if __name__ == "__main__":
  cli.run(main)
