"""Every figure identi draws, written as PNG and PDF atomically.

Figures are built on `matplotlib.figure.Figure` directly, never through pyplot's global state:
importing identi or drawing a figure leaves the user's matplotlib backend and open figures alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from identi import io


def new_figure(nrows: int = 1, ncols: int = 1, **kwargs):
  """`(fig, axes)` like `pyplot.subplots`, on a standalone `Figure` (no global pyplot state).

  `figsize` goes to the figure; every other keyword (sharey, squeeze, ...) to `Figure.subplots`.
  """
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  fig = Figure(figsize=kwargs.pop("figsize", None))
  return fig, fig.subplots(nrows, ncols, **kwargs)


def save_figure(fig, stem: str) -> list[str]:
  """Saves `fig` as STEM.png and STEM.pdf, each atomically (`identi.io.atomic_path`).

  A figure that pyplot manages (made with `pyplot.subplots`) is closed afterwards."""
  paths = []
  for ext in ("png", "pdf"):
    path = f"{stem}.{ext}"
    with io.atomic_path(path) as tmp:
      fig.savefig(tmp, dpi=150, bbox_inches="tight", format=ext)
    paths.append(path)
  if getattr(fig.canvas, "manager", None) is not None:
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
    plt.close(fig)
  return paths


def identifiability_bars(records: list[dict[str, Any]], stem: str, title: str) -> list[str]:
  """Bar chart of encoder and minimal-code MCC per method, with the spec's reference lines."""

  names = [r["name"] for r in records]
  pos = np.arange(len(records))
  fig, ax = new_figure(figsize=(1.2 * len(records) + 2, 4))
  ax.bar(pos - 0.2, [r["mcc"] for r in records], 0.4, label="encoder codes")
  ax.bar(pos + 0.2, [r.get("mcc_minimal", np.nan) for r in records], 0.4,
         label="minimal-code inference")
  for level, style in ((0.97, "--"), (0.9, ":"), (0.75, "-.")):
    ax.axhline(level, color="gray", ls=style, lw=1)
  ax.set_xticks(pos, names)
  ax.set_ylim(0, 1.02)
  ax.set_ylabel("MCC vs true level-1 concepts")
  ax.set_title(title)
  ax.legend(loc="lower left")
  return save_figure(fig, stem)


def graph_figure(true_blocks, blocks, matches, stem: str) -> list[str]:
  """The true concept graph beside the learned one (learned units placed at their concepts)."""

  def draw(ax, adjs, title):
    sizes = [adjs[0].shape[0]] + [a.shape[1] for a in adjs]
    pos = [np.stack([np.linspace(0, 1, n), np.full(n, l)], 1) for l, n in enumerate(sizes)]
    for l, adj in enumerate(adjs):
      for i, j in zip(*np.nonzero(adj)):
        ax.plot(*zip(pos[l][i], pos[l + 1][j]), color="tab:blue", lw=0.6, alpha=0.7)
    for l, p in enumerate(pos):
      ax.scatter(p[:, 0], p[:, 1], s=12, color="k", zorder=3)
    ax.set_yticks(range(len(sizes)), [f"level {l + 1}" for l in range(len(sizes))])
    ax.set_xticks([])
    ax.set_title(title)

  learned = [adj[np.ix_(matches[l].matching, matches[l + 1].matching)]
             for l, (adj, _) in enumerate(blocks)]
  fig, axes = new_figure(1, 2, figsize=(12, 4), sharey=True)
  draw(axes[0], [np.asarray(b) for b in true_blocks], "true concept graph")
  draw(axes[1], learned, "learned (units at their matched concepts)")
  return save_figure(fig, stem)


def steering_figure(levels, emergence, stem: str) -> list[str]:
  """Left: steering fidelity and specificity per level; right: HSM vs HCM emergence."""

  fig, (ax0, ax1) = new_figure(1, 2, figsize=(10, 4))
  pos = np.arange(len(levels))
  ax0.bar(pos - 0.2, [r["fidelity"] for r in levels], 0.4, label="fidelity (cos with do())")
  ax0.bar(pos + 0.2, [r["specificity"] for r in levels], 0.4, label="specificity")
  ax0.axhline(0.9, color="gray", ls="--", lw=1)
  ax0.set_xticks(pos, [f"level {r['level']}" for r in levels])
  ax0.set_ylim(0, 1.02)
  ax0.legend(loc="lower left")
  ax0.set_title("steering one unit vs do() on its concept")
  rates = [emergence["hsm_fire_rate"], emergence["hcm_fire_rate"] or 0.0]
  ax1.bar([0, 1], rates, color=["tab:green", "tab:red"])
  ax1.set_xticks([0, 1], ["selection (HSM)", "causal (HCM)"])
  ax1.set_ylim(0, 1.02)
  ax1.set_ylabel("whole's unit fires after do(missing part)")
  ax1.set_title("emergence")
  return save_figure(fig, stem)


def image_grid(images: np.ndarray, stem: str, title: str, cols: int = 8) -> list[str]:
  """Images in [-1, 1] as one grid figure (dark strokes on light ground)."""
  fig, ax = new_figure(figsize=(cols * 0.6, 0.6 * -(-len(images) // cols) + 0.5))
  ax.imshow(tile_images(np.clip(images, -1, 1), cols), cmap="gray_r", vmin=-1, vmax=1,
            interpolation="nearest")
  ax.set_title(title, fontsize=9)
  ax.axis("off")
  return save_figure(fig, stem)


def node_image_graph(true_blocks, blocks, matches, codes, images: np.ndarray, stem: str,
                     top: int = 8) -> list[str]:
  """The learned concept graph drawn on the true concepts' positions, each node shown by the mean
  of the `top` held-out images on which its matched unit is largest.

  codes[l] are the units' codes of level l's SAE on the held-out rows whose images are `images`.
  Edges between matched units: green when true, red when false; true edges missed: dashed grey.
  """
  sizes = [np.asarray(true_blocks[0]).shape[0]] + [np.asarray(b).shape[1] for b in true_blocks]
  width = max(sizes)
  fig, ax = new_figure(figsize=(0.8 * width + 1, 1.6 * len(sizes) + 0.6))
  xs = [np.linspace(0.5, width - 0.5, n) if n > 1 else np.array([width / 2]) for n in sizes]
  half = 0.42
  for l, (adj, _) in enumerate(blocks):
    learned = adj[np.ix_(matches[l].matching, matches[l + 1].matching)]
    true = np.asarray(true_blocks[l]).astype(bool)
    for i, j in zip(*np.nonzero(learned | true)):
      style = (("tab:green", "-") if true[i, j] else ("tab:red", "-")) if learned[i, j] else (
          ("0.6", "--"))
      ax.plot([xs[l][i], xs[l + 1][j]], [2 * l + half, 2 * (l + 1) - half], color=style[0],
              ls=style[1], lw=1.0, zorder=1)
  for l, n in enumerate(sizes):
    for i in range(n):
      unit = int(matches[l].matching[i])
      rows = np.argsort(-codes[l][:, unit], kind="stable")[:top]
      proto = np.clip(images[rows].mean(axis=0)[..., 0], -1, 1)
      ax.imshow(proto, cmap="gray_r", vmin=-1, vmax=1, interpolation="nearest", zorder=2,
                extent=(xs[l][i] - half, xs[l][i] + half, 2 * l - half, 2 * l + half))
      ax.text(xs[l][i], 2 * l - half - 0.08, f"u{unit}\n{matches[l].per_concept[i]:.2f}",
              ha="center", va="top", fontsize=6)
  ax.set_xlim(-0.2, width + 0.2)
  ax.set_ylim(-1.0, 2 * (len(sizes) - 1) + 0.6)
  ax.set_aspect("equal")
  ax.set_yticks([2 * l for l in range(len(sizes))], [f"level {l + 1}" for l in range(len(sizes))])
  ax.set_xticks([])
  ax.set_title("learned concept graph; node = mean of its unit's top held-out images "
               "(unit, MCC); edges green true / red false / dashed missed", fontsize=8)
  return save_figure(fig, stem)


def mcc_heatmap(table: list[dict[str, Any]], num_levels: int, stem: str,
                row_key: str = "timestep") -> list[str]:
  """The timestep (or other `row_key`) x level MCC table as a heat map."""
  values = np.array([[r[f"level_{l + 1}"] for l in range(num_levels)] for r in table])
  fig, ax = new_figure(figsize=(1.2 * num_levels + 2, 0.6 * len(table) + 1.5))
  im = ax.imshow(values, vmin=0, vmax=1, cmap="viridis")
  for (i, j), v in np.ndenumerate(values):
    ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="w" if v < 0.6 else "k")
  ax.set_xticks(range(num_levels), [f"level {l + 1}" for l in range(num_levels)])
  if row_key == "timestep":
    ax.set_yticks(range(len(table)), [f"t = {r['timestep']:.2f}" for r in table])
  else:
    ax.set_yticks(range(len(table)), [str(r[row_key]) for r in table])
  ax.set_title(f"MCC of each {row_key}'s SAE units")
  fig.colorbar(im, ax=ax)
  return save_figure(fig, stem)


def edit_bars(rows: list[dict[str, Any]], stem: str, edits: tuple[str, ...],
              modes: tuple[str, ...]) -> list[str]:
  """Success, preservation and coherence of every edit (groups) and mode (bars)."""
  metrics = ("success", "preservation", "coherence")
  fig, axes = new_figure(1, len(metrics), figsize=(4 * len(metrics), 3.2), sharey=True)
  x = np.arange(len(edits))
  for ax, metric in zip(axes, metrics):
    for m, mode in enumerate(modes):
      vals = [next((r[metric] for r in rows if r["edit"] == e and r["mode"] == mode), np.nan)
              for e in edits]
      bars = ax.bar(x + (m - 0.5) * 0.38, vals, 0.38, label=mode)
      ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(x, [e.replace("_", " ") for e in edits], fontsize=8)
    ax.set_ylim(0, 1.12)
    ax.set_title(metric)
  axes[0].legend(fontsize=8, loc="upper left")
  fig.tight_layout()
  return save_figure(fig, stem)


def steering_grid(examples, stem: str) -> list[str]:
  """Before/after images of the first samples of every edit and mode."""
  keys = sorted(examples)
  cols = 8
  fig, axes = new_figure(2 * len(keys), cols, figsize=(cols * 0.9, 2 * len(keys) * 0.95),
                           squeeze=False)
  for r, key in enumerate(keys):
    before, after, target = examples[key]
    for row, imgs, tag in ((2 * r, before, "before"), (2 * r + 1, after, "after")):
      for j in range(cols):
        ax = axes[row, j]
        ax.axis("off")
        if j < len(imgs):
          ax.imshow(imgs[j, ..., 0], cmap="gray", vmin=-1, vmax=1)
      axes[row, 0].set_title(f"{key[0]} #{target} ({key[1]}): {tag}", fontsize=7, loc="left")
  fig.tight_layout()
  return save_figure(fig, stem)


def mode_bars(rows: list[dict[str, Any]], stem: str) -> list[str]:
  """Success, coherence and preservation per mode as grouped bars."""
  metrics = ("success", "coherence", "preservation")
  fig, ax = new_figure(figsize=(6, 3.2))
  width = 0.8 / len(metrics)
  for k, name in enumerate(metrics):
    xs = np.arange(len(rows)) + (k - 1) * width
    ax.bar(xs, [r[name] for r in rows], width, label=name)
  ax.set_xticks(range(len(rows)), [f"{r['mode']}\n(n = {r['samples']})" for r in rows])
  ax.set_ylim(0, 1.15)
  ax.set_title("Steering phrases during generation")
  ax.legend(fontsize=8, loc="upper center", ncol=3)
  fig.tight_layout()
  return save_figure(fig, stem)


def tile_images(images: np.ndarray, cols: int = 8) -> np.ndarray:
  """(n, H, W, 1) images as one 2-D mosaic, `cols` per row, with a 1-pixel light border."""
  n, h, w = images.shape[:3]
  rows = -(-n // cols)
  out = np.ones((rows * (h + 1) + 1, cols * (w + 1) + 1), np.float32)
  for i, img in enumerate(images[..., 0]):
    r, c = divmod(i, cols)
    out[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + c * (w + 1):1 + c * (w + 1) + w] = img
  return out


def sample_figure(reference: np.ndarray, generated: np.ndarray, stem: str) -> list[str]:
  """Training images beside DDIM samples, as STEM.png and STEM.pdf."""

  fig, axes = new_figure(1, 2, figsize=(8, 4.3))
  for ax, images, title in ((axes[0], reference, "training images"),
                            (axes[1], generated, "DDIM samples (EMA)")):
    ax.imshow(tile_images(np.clip(images, -1, 1)), cmap="gray_r", vmin=-1, vmax=1,
              interpolation="nearest")
    ax.set_title(title)
    ax.axis("off")
  return save_figure(fig, stem)


def floor_lines(table: list[dict[str, Any]], level_names: tuple[str, ...], stem: str,
                row_key: str = "layer") -> list[str]:
  """Per level, the SAE's MCC across `row_key` next to its floor (``level_l_random``) and ceiling
  (``level_l_probe``)."""
  fig, axes = new_figure(1, len(level_names), figsize=(3.6 * len(level_names), 3.2), sharey=True,
                         squeeze=False)
  xs = np.arange(len(table))
  for l, (ax, name) in enumerate(zip(axes[0], level_names)):
    for suffix, label, style in (("_probe", "linear probe (ceiling)", "k--"),
                                 ("", "SAE units", "o-"), ("_random", "shuffled codes", "x:")):
      ax.plot(xs, [r[f"level_{l + 1}{suffix}"] for r in table], style, label=label)
    ax.set_xticks(xs, [str(r[row_key]) for r in table], rotation=45, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_title(f"level {l + 1}: {name}")
  axes[0, 0].set_ylabel("MCC on report rows")
  axes[0, 0].legend(fontsize=7, loc="lower left")
  fig.tight_layout()
  return save_figure(fig, stem)


def ablation_bars(rows: list[dict[str, Any]], stem: str) -> list[str]:
  """Per concept, the change of similarity to its centroid when its unit is ablated
  (``delta_unit``) and when a random unit is (``delta_random``)."""
  fig, ax = new_figure(figsize=(max(6.0, 0.32 * len(rows) + 2), 3.4))
  xs = np.arange(len(rows))
  ax.bar(xs - 0.2, [r["delta_unit"] for r in rows], 0.4, label="ablate the concept's unit")
  ax.bar(xs + 0.2, [r["delta_random"] for r in rows], 0.4, label="ablate a random unit")
  ax.axhline(0, color="k", lw=0.5)
  ax.set_xticks(xs, [f"{r['concept']} ({r['level'][0]})" for r in rows], rotation=90, fontsize=7)
  ax.set_ylabel("change of cos(embedding, centroid)")
  ax.legend(fontsize=8)
  fig.tight_layout()
  return save_figure(fig, stem)


def find_bars(rows: list[dict[str, Any]], unit_rows: list[dict[str, Any]], stem: str) -> list[str]:
  """The function-description benchmark: success rate per category and agent (left; units:
  concept accuracy), and the median NMSE inside and outside the bias interval (right)."""
  fig, (ax, bx) = new_figure(1, 2, figsize=(12.0, 3.8), gridspec_kw={"width_ratios": [4, 1]})
  agents = sorted({r["agent"] for r in rows} | {r["agent"] for r in unit_rows})
  cats = sorted({r["category"] for r in rows}) + sorted(
      {f"unit/{r['subject']}" for r in unit_rows if r["mcc"] == "all"})
  width = 0.8 / max(len(agents), 1)
  xs = np.arange(len(cats))
  for i, agent in enumerate(agents):
    vals = []
    for c in cats:
      if c.startswith("unit/"):
        vals += [r["concept_accuracy"] for r in unit_rows
                 if r["agent"] == agent and r["mcc"] == "all" and f"unit/{r['subject']}" == c]
      else:
        vals += [r["success"] for r in rows if r["agent"] == agent and r["category"] == c]
    ax.bar(xs[:len(vals)] + (i - (len(agents) - 1) / 2) * width, vals, width, label=agent)
    bias = next((r for r in rows if r["agent"] == agent and r["category"] == "numeric/bias"), None)
    if bias is not None:
      bx.bar(np.arange(2) + (i - (len(agents) - 1) / 2) * width,
             [bias["median_nmse_inside"], bias["median_nmse_outside"]], width, label=agent)
  ax.set_xticks(xs, cats, rotation=60, ha="right", fontsize=7)
  ax.set_ylabel("described (units: concept named)")
  ax.set_ylim(0, 1.05)
  ax.legend(fontsize=8)
  bx.set_xticks([0, 1], ["inside", "outside"])
  bx.set_yscale("log")
  bx.set_title("bias: median NMSE", fontsize=9)
  fig.tight_layout()
  return save_figure(fig, stem)


def method_grid(examples: dict[int, dict[str, Any]], methods: tuple[str, ...],
                stem: str) -> list[str]:
  """One row per target (its prompt as the label), one column per method: the images each
  method sampled from the same prompt and noise."""
  targets = sorted(examples)
  fig, axes = new_figure(len(targets), len(methods),
                         figsize=(1.6 * len(methods) + 2.2, 1.5 * len(targets)), squeeze=False)
  for r, target in enumerate(targets):
    ex = examples[target]
    for c, method in enumerate(methods):
      ax = axes[r, c]
      ax.set_xticks([])
      ax.set_yticks([])
      if method in ex:
        ax.imshow(ex[method][..., 0], cmap="gray", vmin=-1, vmax=1)
      if r == 0:
        ax.set_title(method.replace("_", " "), fontsize=8)
    axes[r, 0].set_ylabel(f"remove object {target}\n\"{ex['prompt']}\"", fontsize=6,
                          rotation=0, ha="right", va="center")
  fig.tight_layout()
  return save_figure(fig, stem)


def removal_scatter(rows: list[dict[str, Any]], stem: str) -> list[str]:
  """Removal against preservation, one point per (level, condition, method) row."""
  fig, ax = new_figure(figsize=(5.2, 4))
  markers = {"named": "o", "implied": "s"}
  colors = {}
  for row in rows:
    color = colors.setdefault(row["method"], f"C{len(colors)}")
    ax.scatter(row["preservation"], row["removal"], marker=markers.get(row["condition"], "^"),
               color=color, s=40, alpha=0.8 if row["level"] == "object" else 0.4,
               edgecolor="black" if row["level"] == "object" else "none")
  for method, color in colors.items():
    ax.scatter([], [], color=color, label=method.replace("_", " "))
  for condition, marker in markers.items():
    ax.scatter([], [], marker=marker, color="gray", label=f"{condition} in prompt")
  ax.axhline(0.9, color="gray", lw=0.8, ls=":")
  ax.axvline(0.9, color="gray", lw=0.8, ls=":")
  ax.set_xlim(-0.02, 1.02)
  ax.set_ylim(-0.02, 1.02)
  ax.set_xlabel("preservation (other prompted concepts present)")
  ax.set_ylabel("removal (target absent)")
  ax.set_title("Concept removal under prompting (objects outlined, scenes faint)", fontsize=9)
  ax.legend(fontsize=7, loc="lower left")
  fig.tight_layout()
  return save_figure(fig, stem)
