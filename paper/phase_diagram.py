"""The identifiability phase diagram: MCC of a TopK SAE over firing probability and superposition.

  python -m paper.phase_diagram [--smoke] [--out=paper/figures]

Grid: firing probability pi (expected active features = pi * n) x superposition ratio n / d, on
the independent one-level world (n = 128 sparse features, eps = 1); TopK SAE with 2n latents and
k = ceil(1.5 * pi * n). The line marks where encoder MCC falls below 0.95.
"""

from __future__ import annotations

import math
import os

import matplotlib.pyplot as plt
import numpy as np
from identi.bin import cli

from paper.common import OUT, SMOKE, identify, superposition_world, train_config, write_outputs

NAME = "phase_diagram"


def run(out: str, smoke: bool) -> list[str]:
  n = 16 if smoke else 128
  pis = [0.05, 0.2] if smoke else [0.01, 0.02, 0.04, 0.08]
  ratios = [2] if smoke else [1, 2, 3, 4]  # Smoke: one column, the same code path.
  samples = 4096 if smoke else 65536
  mcc = np.zeros((len(pis), len(ratios)))
  mcc_min = np.zeros_like(mcc)
  for i, pi in enumerate(pis):
    for j, ratio in enumerate(ratios):
      d = max(2, round(n / ratio))
      x, z = superposition_world(n, d, pi * n, samples)
      k = max(1, math.ceil(1.5 * pi * n))
      tc = train_config("topk", smoke, **{"sae.d_sae": 2 * n, "sae.k": k})
      r = identify(x, z, tc, os.path.join(out, NAME, "runs", f"pi{pi}_ratio{ratio}"))
      mcc[i, j], mcc_min[i, j] = r["mcc"], r["mcc_minimal"]
  fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
  for ax, values, title in ((axes[0], mcc, "TopK encoder"), (axes[1], mcc_min, "minimal code")):
    im = ax.imshow(values, origin="lower", vmin=0, vmax=1, cmap="viridis", aspect="auto")
    if values.min() < 0.95 < values.max():
      ax.contour(values, levels=[0.95], colors="w", linewidths=2)
    for (i, j), v in np.ndenumerate(values):
      ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="w" if v < 0.6 else "k")
    ax.set_xticks(range(len(ratios)), [f"{r}x" for r in ratios])
    ax.set_yticks(range(len(pis)), [f"{p:g}" for p in pis])
    ax.set_xlabel("superposition n / d")
    ax.set_title(f"{title} (line: MCC = 0.95)")
  axes[0].set_ylabel("firing probability pi")
  fig.colorbar(im, ax=axes, label="MCC")
  return write_outputs(out, NAME, fig, {"n": n, "pi": pis, "ratio": ratios,
                                        "mcc": mcc.tolist(), "mcc_minimal": mcc_min.tolist()})


def main(argv):
  del argv
  print("\n".join(run(OUT.value, SMOKE.value)))


if __name__ == "__main__":
  cli.run(main)
