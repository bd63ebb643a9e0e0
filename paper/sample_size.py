"""MCC against sample size: a TopK SAE on the default HSM world trained on 2^10 .. 2^17 samples.

  python -m paper.sample_size [--smoke] [--out=paper/figures]

Every run takes the same number of optimisation steps; only the number of distinct training
samples changes. The held-out split (4,096 samples) is the same size for all.
"""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
from identi.bin import cli

from paper.common import HSM_K, OUT, SMOKE, hsm_world, identify, train_config, write_outputs

NAME = "sample_size"


def run(out: str, smoke: bool) -> list[str]:
  sizes = [1024, 2048] if smoke else [1 << e for e in range(10, 18)]
  records = []
  for n in sizes:
    tc = train_config("topk", smoke, **{"sae.k": HSM_K})
    x, z = hsm_world(n + tc.data.num_eval, smoke=smoke)
    records.append(identify(x, z, tc, os.path.join(out, NAME, "runs", f"n{n}")))
  fig, ax = plt.subplots(figsize=(5, 4))
  ax.plot(sizes, [r["mcc"] for r in records], "o-", label="encoder MCC")
  ax.plot(sizes, [r["mcc_minimal"] for r in records], "s--", label="minimal-code MCC")
  ax.axhline(0.95, color="gray", lw=1)
  ax.set_xscale("log", base=2)
  ax.set_xlabel("training samples")
  ax.set_ylabel("MCC")
  ax.legend(loc="lower right")
  return write_outputs(out, NAME, fig, {"samples": sizes, "records": records})


def main(argv):
  del argv
  print("\n".join(run(OUT.value, SMOKE.value)))


if __name__ == "__main__":
  cli.run(main)
