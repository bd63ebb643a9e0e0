"""Feature dashboards: a static site per SAE, one sortable table of units and a panel per unit.

`build_dashboard(workdir, data, output)` encodes every row of an activation source with a trained
SAE (streamed, in batches) and writes a site that works offline from ``file://``:

- ``index.html``: the page (`identi.dashboard_page`), a table of units (firing rate, mean
  activation when active, max, the matched ground-truth concept and its correlation when the
  source has latents, graph parents and children when a concept graph is given), sortable;
  ``#u=<unit>`` opens a unit's panel.
- ``data.js``: the table as columns (``window.DASH``), loaded with ``<script src>``.
- ``units/<k>.js``: the panels of units ``[k * CHUNK_UNITS, (k + 1) * CHUNK_UNITS)``: the
  histogram of the unit's activations when active, its top-activating rows with their contexts,
  its nearest units by decoder cosine, its most correlated concept. Loaded when a panel opens.
- ``img/<row>.png``: the images of top-activating rows (image contexts).
- ``dashboard.json``: what was built from what (and the mark of a dashboard directory, which a
  rebuild may replace).

Contexts (``contexts``), one of:

- text: ``tokens`` (S, T) int token ids, ``vocab`` (V,) str, ``positions`` (N,) int (the
  token of each data row), and optionally ``seq_id`` (N,) int, the row of ``tokens`` each data row
  reads (without it S = N and row i reads ``tokens[i]``). Rows that share a sequence give the
  per-token activations of an example; without ``seq_id`` only the row's own token has one.
- image: ``images`` (N, H, W) or (N, H, W, C) with C in 1, 3, 4; uint8 as is, floats scaled from
  their overall [min, max] to [0, 255].

Ground truth: when the source has latents, each unit's matched concept is the one that
`identi.metrics.streamed_mcc` (Pearson; the matching fitted on the first half of the rows and
scored on the second, as `identi.metrics.mcc`) assigns to it.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import re
import shutil
import struct
import tempfile
import time
import zlib
from typing import Any, Iterator

import numpy as np

from identi import data as data_lib
from identi import io
from identi.dashboard_page import page
from identi.errors import ConfigError, DataError
from identi.metrics import streamed_mcc
from identi.metrics.correlation import MIN_SAMPLES_PER_HALF
from identi.sae import export_weights
from identi.train import load_trained
from identi.train.evaluation import encode_batches

logger = logging.getLogger(__name__)

#: Units per ``units/<k>.js`` file.
CHUNK_UNITS = 256
#: Bins of a unit's activation histogram, over (0, the unit's max].
HIST_BINS = 32
#: Nearest units listed per unit.
NEIGHBOURS = 8
#: Tokens shown before and after the row's own token in a text example.
TOKENS_BEFORE, TOKENS_AFTER = 24, 8
#: Rows per page of the unit table.
PAGE_ROWS = 1000
#: The file that marks a directory as a dashboard.
MARK_FILE = "dashboard.json"


@dataclasses.dataclass
class Contexts:
  """What a data row shows in a panel: 'text' (tokens) or 'image' (see the module docstring)."""
  kind: str
  num_rows: int
  tokens: np.ndarray | None = None
  vocab: list[str] | None = None
  positions: np.ndarray | None = None
  seq_id: np.ndarray | None = None
  images: np.ndarray | None = None


def text_contexts(tokens, vocab, positions, seq_id=None, what: str = "contexts") -> Contexts:
  """Validated text contexts (module docstring); DataError naming the array and the fix."""
  tokens, positions = np.asarray(tokens), np.asarray(positions)
  if tokens.ndim != 2 or not np.issubdtype(tokens.dtype, np.integer):
    raise DataError(f"{what}: 'tokens' has shape {tokens.shape} and dtype {tokens.dtype}; pass "
                    "int token ids of shape (sequences, tokens)")
  if positions.ndim != 1 or not np.issubdtype(positions.dtype, np.integer):
    raise DataError(f"{what}: 'positions' has shape {positions.shape} and dtype "
                    f"{positions.dtype}; pass one int token position per data row, shape (rows,)")
  n = positions.shape[0]
  if seq_id is None:
    if tokens.shape[0] != n:
      raise DataError(f"{what}: 'tokens' has {tokens.shape[0]} rows but 'positions' {n}; give "
                      "one token row per data row, or 'seq_id' naming each data row's token row")
    seq_id = np.arange(n)
  seq_id = np.asarray(seq_id)
  if seq_id.shape != (n,) or not np.issubdtype(seq_id.dtype, np.integer):
    raise DataError(f"{what}: 'seq_id' has shape {seq_id.shape} and dtype {seq_id.dtype}; pass "
                    f"one int row of 'tokens' per data row, shape ({n},)")
  if n and (seq_id.min() < 0 or seq_id.max() >= tokens.shape[0]):
    raise DataError(f"{what}: 'seq_id' holds values outside [0, {tokens.shape[0]}), the rows of "
                    "'tokens'; pass indices of token rows")
  if n and (positions.min() < 0 or positions.max() >= tokens.shape[1]):
    raise DataError(f"{what}: 'positions' holds values outside [0, {tokens.shape[1]}), the "
                    "token positions; pass each row's position in its sequence")
  vocab = [str(v) for v in np.asarray(vocab).reshape(-1)]
  if tokens.size and (tokens.min() < 0 or tokens.max() >= len(vocab)):
    raise DataError(f"{what}: 'tokens' holds ids in [{tokens.min()}, {tokens.max()}] but 'vocab' "
                    f"has {len(vocab)} entries; pass the vocabulary the ids index")
  return Contexts("text", n, tokens=tokens, vocab=vocab, positions=positions.astype(np.int64),
                  seq_id=seq_id.astype(np.int64))


def image_contexts(images, what: str = "contexts") -> Contexts:
  """Validated image contexts (module docstring); DataError naming the problem and the fix."""
  images = np.asarray(images)
  if images.ndim == 3:
    images = images[..., None]
  if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
    raise DataError(f"{what}: 'images' has shape {images.shape}; pass (rows, H, W) or (rows, H, "
                    "W, C) with C = 1, 3 or 4")
  if not (images.dtype == np.uint8 or np.issubdtype(images.dtype, np.floating)):
    raise DataError(f"{what}: 'images' has dtype {images.dtype}; pass uint8 or float images")
  return Contexts("image", images.shape[0], images=images)


def load_contexts(path: str) -> tuple[Contexts, list[str] | None]:
  """The contexts of an .npz file (module docstring) and its optional 'concepts' names."""
  if not os.path.isfile(path):
    raise DataError(f"contexts file {path} does not exist; pass an .npz with 'tokens', 'vocab' "
                    "and 'positions' (text) or 'images'")
  try:
    with np.load(path, allow_pickle=False) as f:
      arrays = {k: f[k] for k in f.files}
  except (OSError, ValueError, zlib.error) as e:
    raise DataError(f"contexts file {path} is not a readable .npz ({e}); write it with "
                    "np.savez") from e
  names = arrays.get("concepts")
  names = None if names is None else [str(v) for v in names.reshape(-1)]
  if "images" in arrays:
    return image_contexts(arrays["images"], path), names
  missing = [k for k in ("tokens", "vocab", "positions") if k not in arrays]
  if missing:
    raise DataError(f"contexts file {path} has {sorted(arrays)} but no {', '.join(missing)}; "
                    "pass 'tokens', 'vocab' and 'positions' (text) or 'images'")
  return text_contexts(arrays["tokens"], arrays["vocab"], arrays["positions"],
                       arrays.get("seq_id"), path), names


@dataclasses.dataclass
class UnitStats:
  """Per-unit statistics of codes over every row of a source (`unit_statistics`)."""
  num_rows: int
  count: np.ndarray        # (d_sae,) rows where the unit is active (code > 0)
  total: np.ndarray        # (d_sae,) sum of its active codes
  max: np.ndarray          # (d_sae,) largest code
  top_values: np.ndarray   # (d_sae, k) largest codes, descending (0 where fewer were active)
  top_rows: np.ndarray     # (d_sae, k) their rows (-1 where fewer were active)
  hist: np.ndarray         # (d_sae, HIST_BINS) active codes per bin of (0, max]
  mcc: Any = None          # identi.metrics.MCCResult against the source's latents, or None
  token_codes: np.ndarray | None = None  # (d_sae, k, window) the unit at each shown token


class _Progress:
  """A progress line (rows done, rate, ETA) at most every 2 s, and at the end."""

  def __init__(self, what: str, total: int):
    self.what, self.total, self.start, self.last = what, total, time.perf_counter(), 0.0

  def update(self, done: int) -> None:
    now = time.perf_counter()
    if done < self.total and now - self.last < 2.0:
      return
    self.last = now
    rate = done / max(now - self.start, 1e-9)
    eta = time.strftime("%H:%M:%S", time.gmtime((self.total - done) / max(rate, 1e-9)))
    logger.info("dashboard %s %d/%d rows | %.0f rows/s | ETA %s", self.what, done, self.total,
                rate, eta)


def _batches(model, variables, source, batch_size: int, what: str
             ) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
  """(first row, codes, latents or None) of consecutive batches, with a progress line."""
  progress = _Progress(what, source.num_examples)
  start = 0
  for _, codes, _, z in encode_batches(model, variables, source, batch_size):
    yield start, np.asarray(codes, np.float32), z
    start += codes.shape[0]
    progress.update(start)


def _merge_top(values, rows, codes, start: int):
  """The k largest codes per unit among the kept ones and this batch's."""
  k = values.shape[1]
  b = codes.shape[0]
  if b > k:  # Only the batch's own top k per unit can enter.
    part = np.argpartition(codes, b - k, axis=0)[b - k:]       # (k, d_sae)
    cand = np.take_along_axis(codes, part, axis=0).T            # (d_sae, k)
    cand_rows = part.T + start
  else:
    cand, cand_rows = codes.T, np.broadcast_to(np.arange(start, start + b), codes.T.shape)
  all_v = np.concatenate([values, cand], axis=1)
  all_r = np.concatenate([rows, cand_rows], axis=1)
  keep = np.argsort(-all_v, axis=1, kind="stable")[:, :k]
  return np.take_along_axis(all_v, keep, axis=1), np.take_along_axis(all_r, keep, axis=1)


def unit_statistics(model, variables, source, *, top_k: int = 10, batch_size: int = 1024,
                    contexts: Contexts | None = None) -> UnitStats:
  """Statistics of every unit of a trained SAE over every row of `source`, in two streamed passes:
  the first counts, sums, keeps the top rows and (with latents) fits and scores the MCC matching;
  the second bins the active codes and, for text contexts, reads the unit's code at every token
  shown with its top rows."""
  n, d_sae = source.num_examples, model.d_sae
  count = np.zeros(d_sae, np.int64)
  total = np.zeros(d_sae, np.float64)
  vmax = np.zeros(d_sae, np.float32)
  top_v = np.zeros((d_sae, 0), np.float32)
  top_r = np.zeros((d_sae, 0), np.int64)
  has_z = source.latents(np.arange(min(n, 1))) is not None
  stream = _batches(model, variables, source, batch_size, "pass 1/2")

  def consume():
    nonlocal top_v, top_r, count, total
    for start, codes, z in stream:
      active = codes > 0
      count += active.sum(0)
      total += np.where(active, codes, 0).sum(0, dtype=np.float64)
      np.maximum(vmax, codes.max(0), out=vmax)
      k = min(top_k, top_v.shape[1] + codes.shape[0])
      if top_v.shape[1] < k:  # Grow to k columns with empty slots.
        pad = k - top_v.shape[1]
        top_v = np.concatenate([top_v, np.zeros((d_sae, pad), np.float32)], axis=1)
        top_r = np.concatenate([top_r, np.full((d_sae, pad), -1, np.int64)], axis=1)
      top_v, top_r = _merge_top(top_v, top_r, codes, start)
      yield start, codes, z

  match = None
  if has_z and n >= 2 * MIN_SAMPLES_PER_HALF:
    n_fit = int(round(n * 0.5))
    batches = consume()
    rest = []

    def fit():
      for start, codes, z in batches:
        k = min(max(n_fit - start, 0), codes.shape[0])
        if k:
          yield z[:k], codes[:k]
        if k < codes.shape[0]:
          rest.append((z[k:], codes[k:]))
          return

    def score():
      yield from rest
      for _, codes, z in batches:
        yield z, codes

    match = streamed_mcc(fit(), score())
  else:
    for _ in consume():
      pass
  top_r = np.where(top_v > 0, top_r, -1)
  top_v = np.where(top_v > 0, top_v, 0)

  hist = np.zeros(d_sae * HIST_BINS, np.int64)
  scale = np.where(vmax > 0, HIST_BINS / np.maximum(vmax, 1e-30), 0).astype(np.float32)
  needed = _token_rows(top_r, contexts) if contexts is not None and contexts.kind == "text" else None
  token_codes = None
  if needed is not None:
    order, rows, units, shape = needed
    token_codes = np.full(int(np.prod(shape)), np.nan, np.float32)
  for start, codes, _ in _batches(model, variables, source, batch_size, "pass 2/2"):
    r, u = np.nonzero(codes > 0)
    b = np.minimum((codes[r, u] * scale[u]).astype(np.int64), HIST_BINS - 1)
    hist += np.bincount(u * HIST_BINS + b, minlength=hist.size)
    if needed is not None:
      lo, hi = np.searchsorted(rows, [start, start + codes.shape[0]])
      token_codes[order[lo:hi]] = codes[rows[lo:hi] - start, units[lo:hi]]
  if token_codes is not None:
    token_codes = token_codes.reshape(needed[3])
  return UnitStats(n, count, total, vmax, top_v, top_r, hist.reshape(d_sae, HIST_BINS), match,
                   token_codes)


def _token_windows(top_rows: np.ndarray, contexts: Contexts):
  """(sequence, first position, window length) of every top row's text example: up to
  TOKENS_BEFORE tokens before its own and TOKENS_AFTER after, within the positions its sequence
  has rows for."""
  c = contexts
  num_seq = c.tokens.shape[0]
  first = np.full(num_seq, np.iinfo(np.int64).max)
  last = np.full(num_seq, -1)
  np.minimum.at(first, c.seq_id, c.positions)
  np.maximum.at(last, c.seq_id, c.positions)
  if c.seq_id.shape[0] == num_seq and np.array_equal(c.seq_id, np.arange(num_seq)):
    first[:], last[:] = 0, c.tokens.shape[1] - 1  # One row per sequence: show its whole window.
  safe = np.maximum(top_rows, 0)
  seq, pos = c.seq_id[safe], c.positions[safe]
  lo = np.maximum(first[seq], pos - TOKENS_BEFORE)
  hi = np.minimum(last[seq], pos + TOKENS_AFTER) + 1
  return seq, lo, np.where(top_rows >= 0, hi - lo, 0), pos


def _token_rows(top_rows: np.ndarray, contexts: Contexts):
  """The data rows whose codes a text example shows: (order into the (d_sae, k, window) output,
  rows ascending, units, output shape)."""
  c = contexts
  seq, lo, length, _ = _token_windows(top_rows, c)
  width = TOKENS_BEFORE + TOKENS_AFTER + 1
  pos = lo[..., None] + np.arange(width)
  valid = np.arange(width) < length[..., None]
  # Data row of (sequence, position): -1 where no row reads it.
  key = c.seq_id * c.tokens.shape[1] + c.positions
  sort = np.argsort(key, kind="stable")
  wanted = seq[..., None] * c.tokens.shape[1] + np.minimum(pos, c.tokens.shape[1] - 1)
  at = np.minimum(np.searchsorted(key[sort], wanted), key.size - 1)
  row = np.where(valid & (key[sort][at] == wanted), sort[at], -1)
  units = np.broadcast_to(np.arange(top_rows.shape[0])[:, None, None], row.shape)
  flat = np.flatnonzero(row.reshape(-1) >= 0)
  rows = row.reshape(-1)[flat]
  by_row = np.argsort(rows, kind="stable")
  return flat[by_row], rows[by_row], units.reshape(-1)[flat][by_row], row.shape


def nearest_units(w_dec: np.ndarray, k: int = NEIGHBOURS, block: int = 1024
                  ) -> tuple[np.ndarray, np.ndarray]:
  """(indices, cosines), each (d_sae, k): every unit's k nearest other units by decoder cosine,
  computed in blocks of rows (memory block x d_sae)."""
  w = np.asarray(w_dec, np.float32)
  w = w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)
  d = w.shape[0]
  k = min(k, d - 1)
  idx = np.zeros((d, max(k, 0)), np.int64)
  cos = np.zeros((d, max(k, 0)), np.float32)
  if k <= 0:
    return idx, cos
  for s in range(0, d, block):
    sim = w[s:s + block] @ w.T
    sim[np.arange(sim.shape[0]), np.arange(s, s + sim.shape[0])] = -np.inf
    part = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(sim, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    idx[s:s + block] = np.take_along_axis(part, order, axis=1)
    cos[s:s + block] = np.take_along_axis(vals, order, axis=1)
  return idx, cos


def graph_level_of(graph: dict[str, Any], site: str) -> int | None:
  """The level (1-based) whose units a subject pipeline's ``graph.json`` takes from `site` (the
  name after ``sae_`` of an SAE workdir: a layer, or ``t<k>`` for the k-th timestep), or None."""
  keys = [k for k in graph if re.fullmatch(r"level_\w+s", k) and isinstance(graph[k], list)]
  if not keys:
    return None
  key = keys[0][len("level_"):-1]
  names = [row.get(key) for row in graph.get("table", [])]
  index = None
  if site in [str(v) for v in names]:
    index = [str(v) for v in names].index(site)
  elif re.fullmatch(r"t\d+", site) and int(site[1:]) < len(names):
    index = int(site[1:])
  if index is None:
    return None
  for level, name in enumerate(graph[keys[0]]):
    if name == names[index]:
      return level + 1
  return None


def graph_neighbours(graph: dict[str, Any], level: int, d_sae: int
                     ) -> tuple[list[list[int]], list[list[int]]]:
  """(parents, children) per unit at `level` of a concept graph's ``edges`` (identi's graph.json:
  ``{"level_pair": [l, l + 1], "from": part unit, "to": whole unit}``)."""
  if "edges" not in graph:
    raise DataError("the graph has no 'edges'; pass the graph.json that "
                    "`python -m identi.bin.concept_graph` writes")
  parents = [[] for _ in range(d_sae)]
  children = [[] for _ in range(d_sae)]
  for e in graph["edges"]:
    lower, upper = e["level_pair"]
    for lvl, unit, out, other in ((upper, e["to"], parents, e["from"]),
                                  (lower, e["from"], children, e["to"])):
      if lvl != level:
        continue
      if not 0 <= unit < d_sae:
        raise DataError(f"the graph links unit {unit} at level {level} but the SAE has {d_sae} "
                        "units; pass the graph of this SAE's pipeline and its level")
      out[unit].append(int(other))
  return [sorted(p) for p in parents], [sorted(c) for c in children]


def _round(values, digits: int = 4) -> list:
  return [float(f"{v:.{digits}g}") for v in np.asarray(values, np.float64).tolist()]


def png_bytes(image: np.ndarray) -> bytes:
  """A PNG file of an (H, W, C) uint8 image, C = 1 (grey), 3 (RGB) or 4 (RGBA)."""
  h, w, c = image.shape
  raw = b"".join(b"\x00" + image[y].tobytes() for y in range(h))

  def chunk(tag, payload):
    return (struct.pack(">I", len(payload)) + tag + payload
            + struct.pack(">I", zlib.crc32(tag + payload) & 0xFFFFFFFF))

  color = {1: 0, 3: 2, 4: 6}[c]
  return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0))
          + chunk(b"IDAT", zlib.compress(raw, 9))
          + chunk(b"IEND", b""))


def _as_uint8(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
  """uint8 pixels: uint8 as is, floats scaled from [lo, hi] to [0, 255]."""
  if image.dtype == np.uint8:
    return image
  return np.round((image - lo) / max(hi - lo, 1e-12) * 255).clip(0, 255).astype(np.uint8)


def _unit_records(stats: UnitStats, nn, contexts: Contexts | None, images: dict[int, str]):
  """The panel record of every unit (see identi.dashboard_page)."""
  d_sae = stats.count.shape[0]
  best = None
  if stats.mcc is not None:
    corr = np.nan_to_num(np.asarray(stats.mcc.corr_fit))
    best = (np.argmax(corr, axis=0), corr.max(axis=0))
  windows = _token_windows(stats.top_rows, contexts) if contexts and contexts.kind == "text" \
      else None
  records = []
  for u in range(d_sae):
    top = []
    for j in np.flatnonzero(stats.top_rows[u] >= 0):
      row, value = int(stats.top_rows[u, j]), float(stats.top_values[u, j])
      e = {"r": row, "v": float(f"{value:.4g}")}
      if windows is not None:
        seq, lo, length, pos = (a[u, j] for a in windows)
        e["t"] = contexts.tokens[seq, lo:lo + length].tolist()
        codes = stats.token_codes[u, j, :length]
        top_code = max(float(stats.top_values[u, 0]), 1e-30)
        e["a"] = np.where(np.isnan(codes), -1,
                          np.clip(np.round(codes / top_code * 100), 0, 100)).astype(int).tolist()
        e["c"] = int(pos - lo)
      elif contexts is not None and contexts.kind == "image":
        e["img"] = images[row]
      top.append(e)
    rec = {"h": stats.hist[u].tolist(), "top": top,
           "nn": [[int(i), float(f"{c:.3g}")] for i, c in zip(nn[0][u], nn[1][u])]}
    if best is not None:
      rec["best"] = [int(best[0][u]), float(f"{best[1][u]:.3g}")]
    records.append(rec)
  return records


def _json(obj: Any) -> str:
  """Compact JSON that cannot end a <script> element ('</' is written '<\\/')."""
  return json.dumps(obj, separators=(",", ":")).replace("</", "<\\/")


def _dir_mode() -> int:
  mode = io.new_file_mode()
  return mode | ((mode & 0o444) >> 2)


def write_site(output: str, files: dict[str, bytes | str]) -> None:
  """Writes `files` (relative path -> contents) as the directory `output`, atomically: into a
  temporary directory beside it, then renamed onto it (an earlier dashboard there is replaced)."""
  output = os.path.abspath(output)
  if os.path.exists(output) and not os.path.isdir(output):
    raise ConfigError(f"--output {output} is a file; pass a directory path for the dashboard")
  if (os.path.isdir(output) and os.listdir(output)
      and not os.path.exists(os.path.join(output, MARK_FILE))):
    raise ConfigError(f"--output {output} exists and is not a dashboard (no {MARK_FILE}); pass "
                      "a new or empty directory")
  parent = os.path.dirname(output)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(dir=parent, prefix=".tmp-" + os.path.basename(output) + "-")
  old = None
  try:
    for rel, content in files.items():
      path = os.path.join(tmp, rel)
      os.makedirs(os.path.dirname(path), exist_ok=True)
      with open(path, "wb") as f:
        f.write(content.encode() if isinstance(content, str) else content)
    for root, dirs, _ in os.walk(tmp):
      for d in dirs:
        os.chmod(os.path.join(root, d), _dir_mode())
    os.chmod(tmp, _dir_mode())
    if os.path.isdir(output):
      old = tempfile.mkdtemp(dir=parent, prefix=".old-" + os.path.basename(output) + "-")
      os.rename(output, os.path.join(old, "site"))
    os.rename(tmp, output)
  finally:
    if os.path.exists(tmp):
      shutil.rmtree(tmp, ignore_errors=True)
    if old is not None:
      shutil.rmtree(old, ignore_errors=True)


def build_dashboard(workdir: str, data_path: str, output: str, *,
                    contexts: str | Contexts | None = None,
                    graph: str | dict[str, Any] | None = None, graph_level: int | None = None,
                    concept_names: list[str] | None = None, graph_links: dict | None = None,
                    title: str | None = None, top_k: int = 10,
                    batch_size: int = 1024) -> dict[str, Any]:
  """Writes the dashboard of the SAE trained in `workdir` over the rows of `data_path` (a .npy
  file or a shard directory) to the directory `output` (module docstring); returns the summary
  also written as ``dashboard.json``.

  contexts: an .npz path or `Contexts` aligned with the data rows. graph: a ``graph.json`` path
  or its dict, with `graph_level` the level of this SAE's units in it (found from the workdir's
  name ``sae_<site>`` for a subject pipeline's graph when None). concept_names: one name per
  latent column (default ``c<i>``). graph_links: page paths of the parent and child levels'
  dashboards (``{"parent_link": ..., "child_link": ..., "parent_site": ..., "child_site": ...}``).
  """
  if top_k < 1:
    raise ConfigError(f"top_k is {top_k}; pass at least 1 top-activating example per unit")
  _, model, variables = load_trained(workdir)
  source = data_lib.open_source(data_path)
  if source.dim != model.d_in:
    raise DataError(f"{data_path} has {source.dim} features per row but the SAE was trained on "
                    f"{model.d_in}; pass activations of the layer the SAE was trained on")
  if isinstance(contexts, str):
    contexts, names = load_contexts(contexts)
    concept_names = concept_names or names
  if contexts is not None and contexts.num_rows != source.num_examples:
    raise DataError(f"the contexts have {contexts.num_rows} rows but {data_path} has "
                    f"{source.num_examples}; pass contexts with one row per data row, in order")
  graph_meta = None
  if graph is not None:
    if isinstance(graph, str):
      if not os.path.isfile(graph):
        raise DataError(f"graph file {graph} does not exist; pass the graph.json that "
                        "`python -m identi.bin.concept_graph` writes")
      with open(graph, encoding="utf-8") as f:
        graph = json.load(f)
    site = os.path.basename(os.path.abspath(workdir))
    site = site[len("sae_"):] if site.startswith("sae_") else site
    if graph_level is None:
      graph_level = graph_level_of(graph, site)
    if graph_level is None:
      raise ConfigError(f"cannot tell which level of the graph holds the units of {workdir}; "
                        "pass --graph_level=L (1 = the lowest level)")
    graph_meta = {"level": int(graph_level), **(graph_links or {})}

  neighbours = None
  if graph_meta is not None:
    neighbours = graph_neighbours(graph, graph_meta["level"], model.d_sae)
  z = source.latents(np.arange(min(source.num_examples, 1)))
  if concept_names is not None and (z is None or len(concept_names) != z.shape[1]):
    raise DataError(f"{len(concept_names)} concept names for "
                    f"{0 if z is None else z.shape[1]} latent columns in {data_path}; pass one "
                    "name per column of the data's latents")

  stats = unit_statistics(model, variables, source, top_k=top_k, batch_size=batch_size,
                          contexts=contexts)
  nn = nearest_units(export_weights(variables)["W_dec"])
  info = {"title": title or f"{os.path.basename(os.path.abspath(workdir))}: {model.d_sae} units",
          "workdir": os.path.abspath(workdir), "data": os.path.abspath(data_path),
          "d_in": int(model.d_in), "graph": graph_meta}
  files, summary = site_files(stats, nn, info, contexts=contexts, concept_names=concept_names,
                              neighbours=neighbours)
  write_site(output, files)
  return summary


def site_files(stats: UnitStats, nn, info: dict[str, Any], *, contexts: Contexts | None = None,
               concept_names: list[str] | None = None, neighbours=None
               ) -> tuple[dict[str, bytes | str], dict[str, Any]]:
  """The files of a dashboard (relative path -> contents) and its summary, from unit statistics,
  nearest units `nn` ((indices, cosines) per unit), `info` (title, workdir, data, d_in, graph:
  shown on the page and in ``dashboard.json``) and graph `neighbours` ((parents, children) per
  unit, or None)."""
  d_sae = stats.count.shape[0]
  files: dict[str, bytes | str] = {}
  images: dict[int, str] = {}
  if contexts is not None and contexts.kind == "image":
    rows = np.unique(stats.top_rows[stats.top_rows >= 0])
    lo, hi = (0.0, 255.0) if contexts.images.dtype == np.uint8 else (
        float(np.min(contexts.images)), float(np.max(contexts.images)))
    for row in rows.tolist():
      images[row] = f"img/{row}.png"
      files[images[row]] = png_bytes(_as_uint8(contexts.images[row], lo, hi))
  records = _unit_records(stats, nn, contexts, images)
  for k in range(0, d_sae, CHUNK_UNITS):
    files[f"units/{k // CHUNK_UNITS}.js"] = (f"DASH_CHUNK({k // CHUNK_UNITS}, "
                                             + _json(records[k:k + CHUNK_UNITS]) + ");\n")

  count = np.maximum(stats.count, 1)
  cols: dict[str, Any] = {"rate": _round(stats.count / max(stats.num_rows, 1)),
                          "mean": _round(np.where(stats.count > 0, stats.total / count, 0)),
                          "max": _round(stats.max)}
  concepts = None
  mcc_value = None
  if stats.mcc is not None:
    m = stats.mcc
    concept = np.full(d_sae, -1, np.int64)
    corr = np.zeros(d_sae)
    hit = m.matching >= 0
    concept[m.matching[hit]] = np.flatnonzero(hit)
    corr[m.matching[hit]] = m.per_concept[hit]
    cols.update(concept=concept.tolist(), corr=_round(corr, 3))
    concepts = concept_names or [f"c{i}" for i in range(m.matching.shape[0])]
    mcc_value = float(m.mcc)
  if neighbours is not None:
    cols["parents"], cols["children"] = neighbours
  summary = {
      **info, "units": int(d_sae), "rows": int(stats.num_rows),
      "contexts": None if contexts is None else contexts.kind, "mcc": mcc_value,
      "dead": int((stats.count == 0).sum()), "chunk": CHUNK_UNITS, "page_rows": PAGE_ROWS,
      "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
  }
  meta = dict(summary, data=os.path.basename(str(info.get("data", ""))))
  dash = {"meta": meta, "cols": cols, "concepts": concepts,
          "vocab": contexts.vocab if contexts is not None and contexts.kind == "text" else None}
  files["data.js"] = "window.DASH = " + _json(dash) + ";\n"
  files["index.html"] = page()
  files[MARK_FILE] = json.dumps(summary, indent=2, sort_keys=True) + "\n"
  return files, summary
