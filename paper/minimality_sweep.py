"""The minimality sweep: MCC against the sparsity constraint, on the default HSM world.

  python -m paper.minimality_sweep [--smoke] [--out=paper/figures]

Left: ReLU SAE over the L1 coefficient; right: TopK SAE over k. Too little sparsity leaves the
units entangled (low MCC); enough makes them the true concepts; too much kills latents (the dead
fraction is drawn too).
"""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
from identi.bin import cli

from paper.common import OUT, SMOKE, hsm_world, identify, train_config, write_outputs

NAME = "minimality_sweep"


def run(out: str, smoke: bool) -> list[str]:
  x, z = hsm_world(4096 if smoke else 1 << 17, smoke=smoke)
  l1s = [0.05] if smoke else [0.0, 0.003, 0.01, 0.03, 0.05, 0.1, 0.3, 1.0]
  ks = [8] if smoke else [1, 2, 4, 6, 8, 12, 16, 32, 64]
  sweeps = {"relu": [], "topk": []}
  for coeff in l1s:
    tc = train_config("relu", smoke, **{"sae.l1_coeff": coeff})
    sweeps["relu"].append(identify(x, z, tc, os.path.join(out, NAME, "runs", f"l1_{coeff}")))
  for k in ks:
    tc = train_config("topk", smoke, **{"sae.k": k})
    sweeps["topk"].append(identify(x, z, tc, os.path.join(out, NAME, "runs", f"k_{k}")))
  fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
  for ax, values, records, label, log in ((axes[0], l1s, sweeps["relu"], "L1 coefficient", True),
                                          (axes[1], ks, sweeps["topk"], "k", True)):
    xs = [v if v > 0 else min(u for u in values if u > 0) / 3 for v in values] if log else values
    ax.plot(xs, [r["mcc"] for r in records], "o-", label="encoder MCC")
    ax.plot(xs, [r["mcc_minimal"] for r in records], "s--", label="minimal-code MCC")
    ax.plot(xs, [r["dead_fraction"] for r in records], "x:", label="dead fraction")
    ax.axhline(0.95, color="gray", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel(label + (" (0 drawn at the left edge)" if 0.0 in values else ""))
  axes[0].set_title("ReLU + L1")
  axes[1].set_title("TopK")
  axes[0].set_ylabel("MCC / dead fraction")
  axes[0].legend(loc="lower left")
  numbers = {"l1_coeff": l1s, "relu": sweeps["relu"], "k": ks, "topk": sweeps["topk"]}
  return write_outputs(out, NAME, fig, numbers)


def main(argv):
  del argv
  print("\n".join(run(OUT.value, SMOKE.value)))


if __name__ == "__main__":
  cli.run(main)
