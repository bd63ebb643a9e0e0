"""The identify-graph-steer pipeline on a trained diffusion subject (issue 6's experiment).

1. `capture_subject(config, workdir)`: DDIM trajectories of the subject from fixed noise; at each
   studied timestep (the DDIM step nearest each of ``capture.timesteps``) the output of U-Net block
   ``capture.block`` is read with `identi.hooks.capture` inside the jitted sampler and reduced by
   `identi.hooks.reduce_spatial` (``capture.reduce``). The ground truth of a generated image is
   what the scene detectors read from the finished sample (`identi.subjects.detect_concepts`):
   the concepts the model committed to on that trajectory. Writes one `identi.data` shard
   directory per timestep (``capture/t<k>``: activations, latents = the detected z of every
   level, parts first) and ``capture/labels.npz`` (presence per level, coherence, the images).
2. `run_subject_graph(config, workdir)`: one SAE per timestep (`identi.train`), its codes on the
   held-out rows (encoder or minimal codes), the MCC of every timestep's units against every
   level's concepts (the timestep x level table), and the concept graph across timesteps: level
   l's units are those of the SAE at ``graph.level_timesteps[l]``, their presence is linked level
   to level by `identi.concepts.extract_graph`, and after MCC matching the edges are scored
   against the world's true graph. Writes ``graph.json`` and the figures.
3. `run_subject_steering(config, workdir)`: steering during sampling (`steering.py`).

Choices: the block is `up_1` (8 x 8 x 64, the decoder stage after the bottleneck), not `mid`
(4 x 4 x 64): SAEs read parts from both about equally (MCC 0.889 and 0.880 at t = 0.05), but `mid`
does not decide the image: transplanting its whole output from a run that has a part, at every
step, makes the part appear in 49 % of samples against 99 % for `up_1` (README), so edits of `mid`
cannot steer. The SAE input is the flattened block map (``reduce='flatten'``): the scenes world has
fixed object positions, so position is part of a concept's identity and pooling would merge the
parts of different objects. Levels enter the table and the graph through the presence bits and
intensities that the detectors read (objects and scenes: mean intensity of their present
parents).
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from identi import data as data_lib
from identi import hooks, infer, io
from identi.concepts.graph import RULES, SCORES, extract_graph, presence
from identi.errors import ConfigError, DataError
from identi.figures import save_figure
from identi.metrics import edge_auroc, edge_metrics, mcc
from identi.subjects import diffusion, scenes as scenes_lib
from identi.subjects.training import load_subject, scenes_config, tile_images
from identi.train import config as config_lib
from identi.train import load_trained, train_and_evaluate

CAPTURE_DIR = "capture"
LABELS_FILE = "labels.npz"
GRAPH_FILE = "graph.json"
logger = logging.getLogger(__name__)
SHIPPED_SUBJECT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets",
                               "diffusion_scenes.bin")


def default_subject_experiment_config() -> ml_collections.ConfigDict:
  """The schema of subject-experiment configs, with defaults (configs/scenes_concepts.py)."""
  c = ml_collections.ConfigDict()
  c.subject = ml_collections.ConfigDict({"checkpoint": ""})  # '' = the shipped checkpoint.
  c.capture = ml_collections.ConfigDict({
      "block": "up_1", "reduce": "flatten", "timesteps": (0.8, 0.5, 0.2, 0.05), "num_steps": 50,
      "num_samples": 16384, "batch_size": 512, "seed": 0})
  c.data = ml_collections.ConfigDict({"num_eval": 4096, "split_seed": 0})
  schema = config_lib.default_config()
  for section in ("sae", "train", "checkpoint", "eval"):
    c[section] = schema[section]
  c.sae.kind = "batchtopk"
  c.train.num_steps = 3000
  c.sae_width = 2.0  # d_sae = sae_width * (concepts of all levels).
  c.k_factor = 2.5  # k = ceil(k_factor * mean detected active concepts of all levels).
  c.graph = ml_collections.ConfigDict({
      "codes": "minimal", "level_timesteps": (3, 2, 1), "rel_threshold": 0.1, "score": "contrast",
      "rule": "threshold", "necessity": 0.5, "precision": 0.9, "max_parents": 6,
      "min_support": 5})
  c.steer = ml_collections.ConfigDict({
      "samples_per_edit": 256, "pool": 4096, "t_max": 0.6, "inject_strength": 6.0,
      "remove_strength": 3.0, "flat_timestep": 1, "seed": 2})
  return c


def subject_experiment_variant(config: ml_collections.ConfigDict,
                               arg: str | None) -> ml_collections.ConfigDict:
  """Applies a `:variant`: '' (full) or 'smoke' (a few trajectories, for tests)."""
  if not config_lib.check_variant(arg):
    return config
  config_lib.shrink_training(config)
  config.capture.block = "mid"  # 1,024 dims instead of 4,096: the same code path, 4x cheaper SAEs.
  config.capture.num_steps = 10
  config.capture.num_samples = 512
  config.capture.batch_size = 128
  config.data.num_eval = 256
  config.steer.samples_per_edit = 16
  config.steer.pool = 256
  return config


def validate_subject_experiment_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the key for unknown keys, wrong types and impossible values."""
  config_lib.check_keys(config, default_subject_experiment_config())
  c = config.capture
  if c.reduce not in ("flatten", "pool"):
    raise ConfigError(f"config key 'capture.reduce' is {c.reduce!r}; use 'flatten' or 'pool' "
                      "(image-level latents cannot label the per-position rows of 'position')")
  ts = tuple(c.timesteps)
  if len(ts) < 1 or not all(0.0 < t <= 1.0 for t in ts):
    raise ConfigError(f"config key 'capture.timesteps' is {ts}; give times in (0, 1], e.g. "
                      "(0.8, 0.5, 0.2) (1 = pure noise)")
  for name in ("num_steps", "num_samples", "batch_size"):
    if not c[name] > 0:
      raise ConfigError(f"config key 'capture.{name}' is {c[name]!r}; it must be > 0")
  if not 0 < config.data.num_eval < c.num_samples:
    raise ConfigError(f"config key 'data.num_eval' is {config.data.num_eval}; hold out fewer "
                      f"than capture.num_samples = {c.num_samples} rows")
  validate_graph_section(config.graph)
  for name, idx in (("graph.level_timesteps", tuple(config.graph.level_timesteps)),
                    ("steer.flat_timestep", (config.steer.flat_timestep,))):
    if not all(0 <= i < len(ts) for i in idx):
      raise ConfigError(f"config key '{name}' is {idx}; entries index capture.timesteps "
                        f"(0..{len(ts) - 1})")
  for name in ("sae_width", "k_factor"):
    if not config[name] > 0:
      raise ConfigError(f"config key '{name}' is {config[name]!r}; it must be > 0")
  s = config.steer
  if not 0.0 < s.t_max <= 1.0:
    raise ConfigError(f"config key 'steer.t_max' is {s.t_max!r}; give the highest time edited, "
                      "in (0, 1] (e.g. 0.6: concepts are decided at mid noise)")
  for name in ("inject_strength", "remove_strength", "samples_per_edit", "pool"):
    if not s[name] > 0:
      raise ConfigError(f"config key 'steer.{name}' is {s[name]!r}; it must be > 0")


def validate_graph_section(g: ml_collections.ConfigDict) -> None:
  """Checks of the 'graph' section that every subject experiment shares."""
  if g.rule not in RULES:
    raise ConfigError(f"config key 'graph.rule' is {g.rule!r}; use 'threshold' (wholes emerge "
                      "from tau of their parts, as in the subject worlds) or 'and'")
  if g.score not in SCORES:
    raise ConfigError(f"config key 'graph.score' is {g.score!r}; use 'contrast' (units present "
                      "in almost every sample cannot crowd the parts out) or 'necessity'")
  if g.codes not in ("encoder", "minimal"):
    raise ConfigError(f"config key 'graph.codes' is {g.codes!r}; use 'encoder' or 'minimal'")


def learn_graph(presences, g: ml_collections.ConfigDict) -> list[tuple[np.ndarray, np.ndarray]]:
  """`identi.concepts.extract_graph` with the settings of a config's 'graph' section."""
  return extract_graph(presences, necessity=g.necessity, precision=g.precision,
                       max_parents=g.max_parents, min_support=g.min_support, rule=g.rule,
                       score=g.score)


def subject_path(config: ml_collections.ConfigDict) -> str:
  return config.subject.checkpoint or SHIPPED_SUBJECT


def step_indices(timesteps, num_steps: int) -> list[int]:
  """The DDIM step (0-based, times `ddim_timesteps`) whose input time is nearest each time."""
  ts = np.asarray(diffusion.ddim_timesteps(num_steps))[:-1]
  return [int(np.argmin(np.abs(ts - t))) for t in timesteps]


def _reduce(act: jax.Array, mode: str) -> jax.Array:
  return hooks.reduce_spatial(act, mode) if act.ndim == 4 else act


def _capture_fn(model, block: str, reduce: str, num_steps: int, steps: tuple[int, ...]):
  """A jitted (params, key, n) -> (images, activations per studied step)."""
  steps_arr = jnp.asarray(steps)

  def run(params, key, shape):
    def eps_fn(x, t, i):
      eps, acts = hooks.capture(model.apply, {"params": params}, x, t, paths=(block,))
      return eps, acts[block]

    x0, info = diffusion.ddim_sample(key, eps_fn, shape, num_steps, has_aux=True)
    return x0, info["aux"][steps_arr]

  return jax.jit(run, static_argnums=2)


def capture_subject(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Runs the trajectories and writes activation shards and labels (skipped if present)."""
  validate_subject_experiment_config(config)
  out_dir = os.path.join(os.path.abspath(workdir), CAPTURE_DIR)
  labels_path = os.path.join(out_dir, LABELS_FILE)
  c = config.capture
  if os.path.exists(labels_path):
    return _capture_summary(config, workdir)
  model, params, subject_config = load_subject(subject_path(config))
  scenes = scenes_lib.make_scenes(scenes_config(subject_config))
  steps = tuple(step_indices(c.timesteps, c.num_steps))
  size = scenes.config.image_size
  run = _capture_fn(model, c.block, c.reduce, c.num_steps, steps)
  images, acts = [], [[] for _ in steps]
  key = jax.random.key(c.seed)
  num_batches = -(-c.num_samples // c.batch_size)
  start = time.perf_counter()
  for b in range(num_batches):
    n = min(c.batch_size, c.num_samples - b * c.batch_size)
    x0, a = run(params, jax.random.fold_in(key, b), (n, size, size, 1))
    images.append(np.asarray(x0))
    for s in range(len(steps)):
      acts[s].append(np.asarray(_reduce(a[s], c.reduce)))
    done = min(c.num_samples, (b + 1) * c.batch_size)
    rate = done / (time.perf_counter() - start)
    logger.info("capture %d/%d trajectories | %.1f traj/s | ETA %s", done, c.num_samples, rate,
                time.strftime("%H:%M:%S", time.gmtime((c.num_samples - done) / rate)))
  images = np.concatenate(images)
  detected = scenes_lib.detect_concepts(scenes, images)
  z_all = np.concatenate([np.asarray(z, np.float32) for z in detected["z"]], axis=1)
  for s in range(len(steps)):
    data_lib.write_shards(os.path.join(out_dir, f"t{s}"), np.concatenate(acts[s]), z=z_all)
  np.savez(labels_path + ".tmp.npz", images=images, coherent=detected["coherent"],
           **{f"a{l + 1}": a for l, a in enumerate(detected["a"])})
  os.replace(labels_path + ".tmp.npz", labels_path)
  return _capture_summary(config, workdir)


def _capture_summary(config, workdir) -> dict[str, Any]:
  labels = load_labels(workdir)
  c = config.capture
  return {"samples": int(labels["images"].shape[0]), "coherence": float(labels["coherent"].mean()),
          "timesteps": [float(t) for t in c.timesteps],
          "steps": step_indices(c.timesteps, c.num_steps),
          "active_per_level": [float(a.sum(1).mean()) for a in labels["a"]],
          "dim": int(data_lib.open_source(os.path.join(workdir, CAPTURE_DIR, "t0")).dim)}


def load_labels(workdir: str) -> dict[str, Any]:
  """The captured images, coherence and detected presence per level of a capture workdir."""
  path = os.path.join(os.path.abspath(workdir), CAPTURE_DIR, LABELS_FILE)
  if not os.path.exists(path):
    raise DataError(f"no captured activations at {path}; run `python -m identi.bin.capture "
                    f"--config=... --workdir={workdir}` first")
  with np.load(path) as f:
    levels = sorted(k for k in f.files if k.startswith("a"))
    return {"images": f["images"], "coherent": f["coherent"],
            "a": [f[k] for k in sorted(levels, key=lambda k: int(k[1:]))]}


def level_slices(sizes) -> list[slice]:
  edges = np.cumsum([0, *sizes])
  return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def sae_config(config: ml_collections.ConfigDict, num_concepts: int,
               active: float) -> ml_collections.ConfigDict:
  """The `identi.train` config of one timestep's SAE."""
  tc = config_lib.default_config()
  for section in ("sae", "train", "checkpoint", "eval"):
    tc[section] = ml_collections.ConfigDict(config[section].to_dict())
  tc.data.num_eval = config.data.num_eval
  tc.data.split_seed = config.data.split_seed
  tc.sae.d_sae = int(round(config.sae_width * num_concepts))
  tc.sae.k = max(1, math.ceil(config.k_factor * active))
  config_lib.validate_config(tc)
  return tc


def train_timesteps(config, workdir: str) -> list[tuple[Any, Any, Any]]:
  """Trains (or resumes) one SAE per timestep; returns (model, variables, eval source) each."""
  labels = load_labels(workdir)
  sizes = [a.shape[1] for a in labels["a"]]
  active = float(sum(a.sum(1).mean() for a in labels["a"]))
  names = [f"t{s}" for s in range(len(config.capture.timesteps))]
  return train_saes(config, workdir, names, sum(sizes), active)


def train_saes(config, workdir: str, names, num_concepts: int, active: float,
               rows: np.ndarray | None = None) -> list[tuple[Any, Any, Any]]:
  """Trains (or resumes) one SAE per capture directory `capture/<name>` in `sae_<name>`, on the
  given `rows` of it (None = all); returns (model, variables, eval source) each."""
  out = []
  for name in names:
    source = data_lib.open_source(os.path.join(workdir, CAPTURE_DIR, name))
    if rows is not None:
      source = data_lib.Subset(source, rows)
    wd = os.path.join(workdir, f"sae_{name}")
    train_and_evaluate(sae_config(config, num_concepts, active), wd, source=source)
    _, model, variables = load_trained(wd)
    _, eval_source = data_lib.train_eval_split(source, config.data.num_eval,
                                               config.data.split_seed)
    out.append((model, jax.tree.map(np.asarray, variables), eval_source))
  return out


def sae_codes(config, model, variables, x: np.ndarray) -> np.ndarray:
  """Encoder or minimal codes (per `graph.codes`) of activations x."""
  if config.graph.codes == "minimal":
    atoms = infer.minimal_atoms(model, variables, x)
    k = getattr(model, "k", None)
    kwargs = {"max_atoms": max(1, min(2 * k, model.d_in, int(atoms.sum())))} if k else {}
    return np.asarray(infer.minimal_codes(model, variables, x, atoms=atoms, **kwargs))
  return np.asarray(model.apply(variables, x, method="encode"))


def _eval_data(source) -> tuple[np.ndarray, np.ndarray]:
  rows = np.arange(source.num_examples)
  return source.get(rows), source.latents(rows)


def run_subject_graph(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Captures (or reuses), trains the timestep SAEs, scores the MCC table and the graph."""
  capture = capture_subject(config, workdir)
  subject_config = load_subject(subject_path(config))[2]
  scenes = scenes_lib.make_scenes(scenes_config(subject_config))
  saes = train_timesteps(config, workdir)
  sizes = list(scenes.config.level_sizes)
  slices = level_slices(sizes)
  codes, table = [], []
  for s, (model, variables, eval_source) in enumerate(saes):
    x, z = _eval_data(eval_source)
    c = sae_codes(config, model, variables, x)
    codes.append((c, z))
    row = {"timestep": float(config.capture.timesteps[s]), "units": int(c.shape[1])}
    for l, sl in enumerate(slices):
      row[f"level_{l + 1}"] = float(mcc(z[:, sl], c).mcc)
    table.append(row)
  g = config.graph
  level_ts = list(g.level_timesteps)[:len(sizes)]
  matches = [mcc(codes[s][1][:, slices[l]], codes[s][0]) for l, s in enumerate(level_ts)]
  present = [presence(codes[s][0], g.rel_threshold) for s in level_ts]
  blocks = learn_graph(present, g)
  pairs = [{"levels": m["levels"],
            "timesteps": [float(config.capture.timesteps[level_ts[l]]),
                          float(config.capture.timesteps[level_ts[l + 1]])],
            **{k: v for k, v in m.items() if k != "levels"}}
           for l, m in enumerate(score_pairs(blocks, matches, scenes.hsm.adjacency))]
  result = {
      "capture": capture, "table": table, "pairs": pairs,
      "level_timesteps": [float(config.capture.timesteps[s]) for s in level_ts],
      "matches": [{"level": l + 1, "mcc": float(m.mcc), "matching": m.matching.tolist(),
                   "per_concept": m.per_concept.tolist()} for l, m in enumerate(matches)],
      "edges": edge_list(blocks),
      "codes": g.codes, "block": config.capture.block,
  }
  io.write_json(os.path.join(workdir, GRAPH_FILE), result)
  stem = os.path.join(workdir, "timestep_mcc")
  result["figures"] = [mcc_heatmap(table, len(sizes), stem)[0]]
  from identi.concepts.experiment import graph_figure  # pylint: disable=g-import-not-at-top
  result["figures"].append(graph_figure(scenes.hsm.adjacency, blocks, matches,
                                        os.path.join(workdir, "concept_graph"))[0])
  images = load_labels(workdir)["images"]
  result["figures"].append(image_grid(images[:64], os.path.join(workdir, "samples"),
                                      "DDIM samples of the subject (captured trajectories)")[0])
  eval_images = images[saes[0][2].indices]
  result["figures"].append(node_image_graph(
      scenes.hsm.adjacency, blocks, matches, [codes[s][0] for s in level_ts], eval_images,
      os.path.join(workdir, "concept_nodes"))[0])
  return result


def image_grid(images: np.ndarray, stem: str, title: str, cols: int = 8) -> list[str]:
  """Images in [-1, 1] as one grid figure (dark strokes on light ground)."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(cols * 0.6, 0.6 * -(-len(images) // cols) + 0.5))
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
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  sizes = [np.asarray(true_blocks[0]).shape[0]] + [np.asarray(b).shape[1] for b in true_blocks]
  width = max(sizes)
  fig, ax = plt.subplots(figsize=(0.8 * width + 1, 1.6 * len(sizes) + 0.6))
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


def score_pairs(blocks, matches, adjacency) -> list[dict[str, Any]]:
  """Edge precision / recall / F1 / SHD / AUROC of each extracted level pair against the true
  adjacency, among the MCC-matched units (`matches[l].matching[i]` is concept i's unit)."""
  pairs = []
  for l, (adj, scores) in enumerate(blocks):
    lo, hi = matches[l].matching, matches[l + 1].matching
    learned = adj[np.ix_(lo, hi)]
    true = adjacency[l]
    metrics = edge_metrics(true, learned)
    metrics.update(auroc=edge_auroc(true, scores[np.ix_(lo, hi)]),
                   edges_off_matching=int(adj.sum() - learned.sum()),
                   learned_edges=int(adj.sum()), true_edges=int(true.sum()))
    pairs.append({"levels": [l + 1, l + 2], **metrics})
  return pairs


def edge_list(blocks) -> list[dict[str, Any]]:
  """The extracted edges as JSON records (level pair, from unit, to unit, score)."""
  return [{"level_pair": [l + 1, l + 2], "from": int(i), "to": int(j),
           "score": float(blocks[l][1][i, j])}
          for l in range(len(blocks)) for i, j in zip(*np.nonzero(blocks[l][0]))]


def mcc_heatmap(table: list[dict[str, Any]], num_levels: int, stem: str,
                row_key: str = "timestep") -> list[str]:
  """The timestep (or other `row_key`) x level MCC table as a heat map."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  values = np.array([[r[f"level_{l + 1}"] for l in range(num_levels)] for r in table])
  fig, ax = plt.subplots(figsize=(1.2 * num_levels + 2, 0.6 * len(table) + 1.5))
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
