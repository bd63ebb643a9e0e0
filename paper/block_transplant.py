"""Which U-Net block decides the image, and when: block-output transplants on the scenes subject.

  python -m paper.block_transplant [--smoke] [--out=paper/figures]

For each of 6 parts, 32 DDIM runs of the shipped subject whose image lacks the part receive, at
the steps of one time window, the output of one block from 32 runs whose image has it
(`identi.subjects.scenes_unet.transplant_table`); the figure is the rate at which the part then
appears, per block and window. It is why configs/scenes_concepts.py reads `up_1` and steers over
t <= 0.6: `mid` decides about half the image even when transplanted at every step, and no block
transplanted at the lowest-noise steps only decides much. Measured: README, "A diffusion subject".
"""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np

from identi.bin import cli
from identi.subjects.scenes_unet import transplant_table
from identi.train import load_config
from paper.common import OUT, ROOT, SMOKE, write_outputs

NAME = "block_transplant"
WINDOWS = ((0.0, 0.12), (0.12, 0.3), (0.3, 0.55), (0.55, 1.0), (0.0, 1.0))


def run(out: str, smoke: bool) -> list[str]:
  config = load_config(os.path.join(ROOT, "configs",
                                    "scenes_concepts.py" + (":smoke" if smoke else "")))
  blocks = ("mid", "up_1")
  windows = WINDOWS[-2:] if smoke else WINDOWS
  rows = transplant_table(config, blocks, windows, parts=range(0, 18, 9 if smoke else 3),
                          pairs=4 if smoke else 32, pool=128 if smoke else 1024)
  values = np.array([[r["appears"] for r in rows if r["block"] == b] for b in blocks])
  fig, ax = plt.subplots(figsize=(1.3 * len(windows) + 2, 0.7 * len(blocks) + 1.6))
  im = ax.imshow(values, vmin=0, vmax=1, cmap="viridis")
  for (i, j), v in np.ndenumerate(values):
    ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="w" if v < 0.6 else "k")
  ax.set_xticks(range(len(windows)), [f"{lo:g} <= t <= {hi:g}" for lo, hi in windows],
                fontsize=7)
  ax.set_yticks(range(len(blocks)), blocks)
  ax.set_title("part appears after transplanting the block output", fontsize=9)
  fig.colorbar(im, ax=ax)
  return write_outputs(out, NAME, fig, {"rows": rows})


def main(argv):
  del argv
  print("\n".join(run(OUT.value, SMOKE.value)))


if __name__ == "__main__":
  cli.run(main)
