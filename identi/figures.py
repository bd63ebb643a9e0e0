"""Figures of identifiability results, written as PNG and PDF (matplotlib, Agg backend)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402


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


def identifiability_figure(per_concept: np.ndarray, corr: np.ndarray, matching: np.ndarray,
                           stem: str, title: str = "", max_shown: int = 64) -> list[str]:
  """Left: per-concept |correlation| with the matched unit; right: the matched |corr| matrix.

  Args:
    per_concept: (n_true,) held-out |corr| of each true concept with its matched unit.
    corr: (n_true, n_units) |corr| between true concepts and learned units.
    matching: (n_true,) matched unit of each concept (-1 if none).
    stem: output path without extension.
    title: figure title.
    max_shown: the matrix panel shows the first `max_shown` concepts and their matched units.
  """
  fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4))
  ax0.hist(per_concept, bins=np.linspace(0, 1, 41), color="tab:blue")
  ax0.axvline(np.mean(per_concept), color="k", ls="--", label=f"MCC = {np.mean(per_concept):.3f}")
  ax0.set_xlabel("|corr(true concept, matched unit)| on held-out half")
  ax0.set_ylabel("true concepts")
  ax0.legend(loc="upper left")
  n = min(max_shown, len(matching))
  cols = [m for m in matching[:n] if m >= 0]
  im = ax1.imshow(corr[:n][:, cols], vmin=0, vmax=1, cmap="viridis", aspect="auto")
  ax1.set_xlabel("matched learned unit")
  ax1.set_ylabel("true concept")
  fig.colorbar(im, ax=ax1, label="|corr|")
  if title:
    fig.suptitle(title)
  return save_figure(fig, stem)
