"""The amortisation gap: TopK encoder MCC against minimal-code MCC across superposition ratios.

  python -m paper.amortisation_gap [--smoke] [--out=paper/figures]

The default HSM world (128 level-1 concepts) observed at d = 128, 64, 43 and 32 (1x to 4x
superposition). The encoder's linear read-out degrades with superposition faster than the
sparsest code over the same learned dictionary.
"""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
from identi.bin import cli

from paper.common import HSM_K, OUT, SMOKE, hsm_world, identify, train_config, write_outputs

NAME = "amortisation_gap"


def run(out: str, smoke: bool) -> list[str]:
  ratios = [2] if smoke else [1, 2, 3, 4]  # Smoke: one point, the same code path.
  records = []
  for ratio in ratios:
    x, z = hsm_world(4096 if smoke else 1 << 17, d=round(128 / ratio), smoke=smoke)
    tc = train_config("topk", smoke, **{"sae.k": HSM_K})
    records.append(dict(identify(x, z, tc, os.path.join(out, NAME, "runs", f"ratio{ratio}")),
                        ratio=ratio, d=x.shape[1]))
  fig, ax = plt.subplots(figsize=(5, 4))
  ax.plot(ratios, [r["mcc"] for r in records], "o-", label="TopK encoder")
  ax.plot(ratios, [r["mcc_minimal"] for r in records], "s--", label="minimal code, same decoder")
  ax.axhline(0.95, color="gray", lw=1)
  ax.set_xticks(ratios, [f"{r}x" for r in ratios])
  ax.set_xlabel("superposition (level-1 concepts / d)")
  ax.set_ylabel("MCC")
  ax.legend(loc="lower left")
  return write_outputs(out, NAME, fig, {"records": records})


def main(argv):
  del argv
  print("\n".join(run(OUT.value, SMOKE.value)))


if __name__ == "__main__":
  cli.run(main)
