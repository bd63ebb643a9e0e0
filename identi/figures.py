"""Figures written as PNG and PDF, atomically (matplotlib, Agg backend)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)


def save_figure(fig, stem: str) -> list[str]:
  """Saves `fig` as STEM.png and STEM.pdf (each written to a temp name, then renamed)."""
  os.makedirs(os.path.dirname(os.path.abspath(stem)), exist_ok=True)
  paths = []
  for ext in ("png", "pdf"):
    path = f"{stem}.{ext}"
    tmp = f"{stem}.tmp.{ext}"
    fig.savefig(tmp, dpi=150, bbox_inches="tight")
    os.replace(tmp, path)
    paths.append(path)
  plt.close(fig)
  return paths
