"""A procedural grayscale image world drawn from the hierarchical selection model (HSM).

Images whose concepts we know, for training a small diffusion model and checking what it learned.
Every image is a rendering of one HSM sample (``identi.generators.hsm``, spec in
docs/hsm.md) and carries its ground-truth latents:

- **Level 1, parts.** Small pixel templates of four kinds, 'stroke' (a straight slanted line),
  'arc' (an arch), 'blob' (a filled ellipse) and 'texture' (stripes, or a checker in bands at
  least 3 pixels thick), each drawn with its intensity ``z1_i = a1_i * m1_i``, ``m1 ~ U(0.5,
  1.5)``.
- **Level 2, objects.** Every object has exactly ``parents`` parts (no part is shared) and
  emerges when at least ``tau`` of them are present. A present part whose object did not emerge
  is a *fragment*: an incoherent configuration that selection lets through only with the leak
  probability ``eps``.
- **Level 3, scene types.** Every scene type has exactly ``parents`` objects and emerges by the
  same rule from the objects; it has no pixels of its own. Deeper hierarchies work the same way.

The world builds ``HSMConfig(level_sizes, min_parents=max_parents=parents, overlap=0, pi, tau,
eps, magnitude='uniform', graph_seed)``, which requires ``n_l = parents * n_{l+1}`` (the parent
sets of every level pair then partition the level below; ``make_scenes`` checks this).

Layout. The canvas is tiled by a grid of ``rows x cols`` equal rectangular *regions*, one per
object, centred (spare pixels are left blank at the border); the grid is the one with the
largest objects (ties: more columns). Objects take the cells in row-major order sorted by their
ancestors, so the objects of one scene type are neighbours (at the defaults: one row each).
Each region keeps a margin of ``jitter`` pixels around its object's *content box*, in both
placements, so the fixed world is exactly the jittered one at offset zero and a shifted object
never leaves its region: regions are pairwise disjoint and inside the canvas. The content box is
cut along its longer side into ``parents`` bands, one per part, so the pixel supports of all
parts are pairwise disjoint, also under jitter (the parts of an object shift together). The
k-th band of the object in cell r is drawn as kind ``KINDS[(r + k) % 4]``: parts of one object
always differ in kind and neighbouring objects use different mixes. Every template is float32 in
[0, 1] (here binary) with at least 4 pixels; a config whose bands cannot hold such templates
(smaller than 2 x 3 pixels) is refused. At the defaults (16 x 16, 6 objects, jitter 1) the grid
is 2 x 3, regions are 8 x 5, content boxes 6 x 3 and every part sits in a 2 x 3 band.

Rendering. ``canvas = sum_i z1_i * template_i`` (each template shifted by its object's offset),
in [0, 1.5] since supports are disjoint; ``image = canvas / 0.75 - 1`` so pixels lie in [-1, 1]
with background -1. Images are float32 NHWC ``(n, H, W, 1)``. Placement 'jitter' draws each
object's offset uniformly from ``[-jitter, jitter]^2`` (integers, independent of the latents).

Detection. Parts are read back by least squares: the intensity of part i at offset o is
``max(0, <c, t_i(o)>) / |t_i|^2`` with ``c = (image + 1) * 0.75`` (exact non-negative least
squares, as supports are disjoint); part i is present iff its intensity exceeds 0.25, half the
smallest intensity. With fixed placement o = 0. With jitter, the spec's "maximum over offsets"
per part is not used: bands are packed edge to edge, so a part shifted by one pixel lands on its
sibling and would read the sibling's ink. Instead every object's offset is estimated jointly,
as the allowed offset whose least-squares fit of all the object's parts explains most of the
ink in its region (the least residual; ties, such as an empty region, go to offset 0), and the
parts are read at that offset. Objects and scene types follow from the detected parts by the
``tau`` rule. A detected whole's intensity is the mean intensity of its present parents: the
HSM's own intensity (a weighted geometric mean of all parents' ``m``) also depends on the
intensities of absent parents, which no image shows.
"""
import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from identi.errors import ConfigError, DataError
from identi.generators.hsm import HSM, HSMConfig
from identi.generators.hsm_sampler import sample_hsm
from identi.checks import check_key
from identi.subjects.world import (check_graph_seed, check_tiled_levels, is_int,
                                   make_tiled_hsm, tiled_hsm_config)

KINDS = ("stroke", "arc", "blob", "texture")
THRESHOLD = 0.25
_PLACEMENTS = ("fixed", "jitter")
_MIN_PIXELS = 4
_SCALE = 0.75
_ASCII = " .:-=+*#%@"


@dataclasses.dataclass(frozen=True)
class ScenesConfig:
  """Everything that defines a scenes world (images then depend only on the JAX key).

  Attributes:
    image_size: side of the square canvas in pixels.
    level_sizes: concepts per level, parts first; ``n_l = parents * n_{l+1}``.
    parents: parts per object and objects per scene type, in [2, 4] (parts of one object differ
      in kind, and there are 4 kinds).
    tau: a whole emerges when at least ``tau`` of its parents are present, in [1, parents].
    pi: firing probability of every part before selection, in (0, 1).
    eps: selection leak of fragments (1..tau-1 parents present), in (0, 1]. The default 0.01
      makes 94.1% of the world's images coherent (0.888 at 0.02), so a diffusion model that
      learns the world can pass the >= 90% coherence gate; tau = 2 of 3 parents still lets
      every pair of an object's parts appear without the third, so the parts stay separable.
    magnitude: part intensity law; only 'uniform' (U(0.5, 1.5)) keeps pixels in [-1, 1].
    placement: 'fixed' (objects at home) or 'jitter' (random integer shift per object).
    jitter: largest shift per axis; also the margin of every region, in both placements.
    graph_seed: seed of the HSM graph (which parts make which object).
  """
  image_size: int = 16
  level_sizes: tuple[int, ...] = (18, 6, 2)
  parents: int = 3
  tau: int = 2
  pi: float = 0.3
  eps: float = 0.01
  magnitude: str = "uniform"
  placement: str = "fixed"
  jitter: int = 1
  graph_seed: int = 0

  def __post_init__(self):
    if isinstance(self.level_sizes, list):
      object.__setattr__(self, "level_sizes", tuple(self.level_sizes))

  def validate(self) -> "ScenesConfig":
    """Raises ConfigError naming the field and the fix for impossible settings; returns self."""
    if not is_int(self.image_size) or self.image_size < 4:
      raise ConfigError(
          f"ScenesConfig.image_size={self.image_size!r} is invalid: pass an integer >= 4, e.g. 16")
    if not is_int(self.parents) or not 2 <= self.parents <= len(KINDS):
      raise ConfigError(
          f"ScenesConfig.parents={self.parents!r} is invalid: pass an integer in [2, {len(KINDS)}] "
          f"(the parts of one object must differ in kind, and there are {len(KINDS)} kinds)")
    check_tiled_levels(self, "parts")
    if self.magnitude != "uniform":
      raise ConfigError(
          f"ScenesConfig.magnitude={self.magnitude!r} is not supported: use 'uniform' "
          "(U(0.5, 1.5)), the only law that keeps pixels in [-1, 1]")
    if self.placement not in _PLACEMENTS:
      raise ConfigError(
          f"ScenesConfig.placement={self.placement!r} is unknown: use one of "
          f"{', '.join(_PLACEMENTS)}")
    if not is_int(self.jitter) or self.jitter < 0:
      raise ConfigError(f"ScenesConfig.jitter={self.jitter!r} is invalid: pass an integer >= 0")
    if self.placement == "jitter" and self.jitter < 1:
      raise ConfigError(
          "ScenesConfig.jitter=0 cannot move objects: set jitter >= 1 or placement='fixed'")
    check_graph_seed(self)
    _grid(self)
    return self

  def hsm_config(self) -> HSMConfig:
    """The identi HSMConfig of this world."""
    return tiled_hsm_config(self, self.magnitude)


@dataclasses.dataclass(frozen=True, eq=False)
class Scenes:
  """A scenes world: its HSM and its drawing (numpy arrays).

  Attributes:
    config: the validated config.
    hsm: the identi HSM the latents are sampled from.
    templates: float32 ``(n1, H, W)`` in [0, 1], every part at its home position.
    part_object: int32 ``(n1,)`` the object (level-2 index) of each part.
    object_scene: int32 ``(n2,)`` the scene type (level-3 index) of each object; -1 in a
      two-level world.
    regions: int32 ``(n2, 4)`` ``(top, left, bottom, right)``, half-open, of each object's region;
      its parts stay inside under every allowed offset.
    kinds: tuple of ``n1`` kind names, one of ``KINDS`` per part.
    shifts: int32 ``(S, 2)`` the allowed ``(dy, dx)`` offsets of an object, ``(0, 0)`` first
      (only it with fixed placement).
    bank: float32 ``(S, n1, H, W)`` every template under every allowed offset.
  """
  config: ScenesConfig
  hsm: HSM
  templates: np.ndarray
  part_object: np.ndarray
  object_scene: np.ndarray
  regions: np.ndarray
  kinds: tuple[str, ...]
  shifts: np.ndarray
  bank: np.ndarray

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return (self.config.image_size, self.config.image_size, 1)

  @property
  def max_shift(self) -> int:
    return self.config.jitter if self.config.placement == "jitter" else 0


def _draw(kind: str, h: int, w: int) -> np.ndarray:
  """Binary template of ``kind`` filling an ``h x w`` band (drawn landscape, then turned)."""
  if h > w:
    return _draw(kind, w, h).T
  y, x = np.mgrid[:h, :w]
  if kind == "stroke":
    t = np.abs(y * (w - 1) - x * (h - 1)) <= 0.6 * math.hypot(w - 1, h - 1)
  elif kind == "arc":
    t = (y == 0) | (x == 0) | (x == w - 1)
    if h >= 3 and w >= 4:
      t &= ~((y == 0) & ((x == 0) | (x == w - 1)))
  elif kind == "blob":
    t = ((y - (h - 1) / 2) / (h / 2)) ** 2 + ((x - (w - 1) / 2) / (w / 2)) ** 2 <= 1.0
  else:
    t = (x % 2 == 0) if h < 3 else ((x + y) % 2 == 0)
  return t.astype(np.float32)


def _bands(long: int, parents: int) -> list[tuple[int, int]]:
  """``parents`` consecutive ``[start, stop)`` cuts of a side of length ``long``."""
  cuts = [k * long // parents for k in range(parents + 1)]
  return list(zip(cuts[:-1], cuts[1:]))


def _grid(c: ScenesConfig) -> tuple[int, int, int, int]:
  """``(rows, cols, content_h, content_w)`` of the layout; ConfigError when objects do not fit."""
  n2, size, margin = c.level_sizes[1], c.image_size, c.jitter
  best = None
  for rows in range(1, n2 + 1):
    cols = -(-n2 // rows)
    ch, cw = size // rows - 2 * margin, size // cols - 2 * margin
    if min(ch, cw) < 1:
      continue
    short, long = min(ch, cw), max(ch, cw)
    band = min(b - a for a, b in _bands(long, c.parents))
    if min(short, band) < 2 or not all(
        _draw(k, band, short).sum() >= _MIN_PIXELS for k in KINDS):
      continue
    score = (short, ch * cw, cols)
    if best is None or score > best[0]:
      best = (score, (rows, cols, ch, cw))
  if best is None:
    raise ConfigError(
        f"ScenesConfig: {n2} objects of {c.parents} parts do not fit a {size} x {size} canvas "
        f"with jitter margin {c.jitter}: every part needs a band of at least 2 x 3 pixels; raise "
        "image_size, or lower level_sizes, parents or jitter")
  return best[1]


def _object_order(hsm: HSM) -> np.ndarray:
  """Objects sorted by their ancestors, top level first (so siblings get neighbouring cells)."""
  n2 = hsm.level_sizes[1]
  keys = [[] for _ in range(n2)]
  up = np.arange(n2)
  for adj in hsm.adjacency[1:]:
    up = np.argmax(adj[up], axis=1)
    for j in range(n2):
      keys[j].insert(0, int(up[j]))
  return np.asarray(sorted(range(n2), key=lambda j: (keys[j], j)), np.int32)


def make_scenes(config: ScenesConfig | None = None) -> Scenes:
  """Builds a scenes world: its HSM, layout, templates and shifted template bank.

  Args:
    config: the world; None = ``ScenesConfig()``.

  Returns:
    The Scenes (see its attributes).
  """
  config = ScenesConfig() if config is None else config
  hsm = make_tiled_hsm(config, ScenesConfig)
  n1, n2 = config.level_sizes[:2]
  size, margin = config.image_size, config.jitter
  rows, cols, ch, cw = _grid(config)
  cell_h, cell_w = size // rows, size // cols
  y0, x0 = (size - rows * cell_h) // 2, (size - cols * cell_w) // 2
  part_object = np.argmax(hsm.adjacency[0], axis=1).astype(np.int32)
  object_scene = (np.argmax(hsm.adjacency[1], axis=1).astype(np.int32) if len(hsm.adjacency) > 1
                  else np.full(n2, -1, np.int32))
  regions = np.zeros((n2, 4), np.int32)
  templates = np.zeros((n1, size, size), np.float32)
  kinds = [""] * n1
  for cell, j in enumerate(_object_order(hsm)):
    top, left = y0 + (cell // cols) * cell_h, x0 + (cell % cols) * cell_w
    regions[j] = (top, left, top + cell_h, left + cell_w)
    ct, cl = top + margin, left + margin
    for k, (i, (a, b)) in enumerate(zip(hsm.parents(2, j), _bands(max(ch, cw), config.parents))):
      kind = KINDS[(cell + k) % len(KINDS)]
      box = (ct + a, cl, b - a, cw) if ch >= cw else (ct, cl + a, ch, b - a)
      templates[i, box[0]:box[0] + box[2], box[1]:box[1] + box[3]] = _draw(kind, box[2], box[3])
      kinds[i] = kind
  s = margin if config.placement == "jitter" else 0
  shifts = sorted(((dy, dx) for dy in range(-s, s + 1) for dx in range(-s, s + 1)),
                  key=lambda d: (d != (0, 0), d))
  shifts = np.asarray(shifts, np.int32).reshape(-1, 2)
  bank = np.stack([np.roll(templates, (dy, dx), axis=(1, 2)) for dy, dx in shifts])
  return Scenes(config=config, hsm=hsm, templates=templates, part_object=part_object,
                object_scene=object_scene, regions=regions, kinds=tuple(kinds), shifts=shifts,
                bank=bank)


def _check_scenes(scenes) -> Scenes:
  if not isinstance(scenes, Scenes):
    raise ConfigError(
        f"scenes of type {type(scenes).__name__} is not a Scenes: build one with make_scenes()")
  return scenes


def _shift_index(scenes: Scenes, offsets: jax.Array) -> jax.Array:
  """Index into ``scenes.shifts`` of integer offsets ``(..., 2)`` in the allowed range."""
  s = scenes.max_shift
  table = np.zeros((2 * s + 1) ** 2, np.int32)
  for k, (dy, dx) in enumerate(scenes.shifts):
    table[(dy + s) * (2 * s + 1) + dx + s] = k
  offsets = jnp.clip(offsets, -s, s)
  return jnp.asarray(table)[(offsets[..., 0] + s) * (2 * s + 1) + offsets[..., 1] + s]


@jax.jit
def _render(bank, part_object, z1, index):
  """``(n, H, W, 1)`` images from concepts ``(n, n1)`` and shift indices ``(n, n2)``."""
  chosen = jax.nn.one_hot(index[:, part_object], bank.shape[0], dtype=z1.dtype)
  canvas = jnp.einsum("ni,nis,sihw->nhw", z1, chosen, bank, precision=jax.lax.Precision.HIGHEST)
  return (canvas / _SCALE - 1.0)[..., None]


def _concrete(x) -> bool:
  return not isinstance(x, jax.core.Tracer)


def render(scenes: Scenes, z1, offsets=None) -> jax.Array:
  """Draws level-1 concepts as images; jittable in ``(z1, offsets)``.

  Args:
    scenes: the world.
    z1: ``(n, n1)`` part intensities ``a1 * m1``; values outside [0, 1.5] (e.g. steered ones)
      are drawn as given and may leave pixels outside [-1, 1].
    offsets: integer ``(n, n2, 2)`` ``(dy, dx)`` shift per object in ``[-jitter, jitter]``
      (jitter placement only); None = every object at home.

  Returns:
    float32 ``(n, H, W, 1)`` images, background -1.
  """
  scenes = _check_scenes(scenes)
  n1, n2 = scenes.config.level_sizes[:2]
  z1 = jnp.asarray(z1, jnp.float32)
  if z1.ndim != 2 or z1.shape[1] != n1:
    raise DataError(f"z1 has shape {z1.shape}: pass (num_images, {n1}) part intensities")
  if _concrete(z1) and not bool(jnp.all(jnp.isfinite(z1))):
    raise DataError("z1 holds NaN or Inf: pass finite part intensities")
  if offsets is None:
    offsets = jnp.zeros((z1.shape[0], n2, 2), jnp.int32)
  offsets = jnp.asarray(offsets)
  if offsets.shape != (z1.shape[0], n2, 2) or not jnp.issubdtype(offsets.dtype, jnp.integer):
    raise DataError(
        f"offsets of shape {offsets.shape} and dtype {offsets.dtype} do not fit: pass integer "
        f"({z1.shape[0]}, {n2}, 2) shifts per object, or None")
  s = scenes.max_shift
  if _concrete(offsets) and not bool(jnp.all(jnp.abs(offsets) <= s)):
    raise DataError(
        f"offsets leave [-{s}, {s}], the shifts this world allows: pass offsets within it"
        + (" (placement='fixed' allows only 0)" if s == 0 else ""))
  return _render(jnp.asarray(scenes.bank), jnp.asarray(scenes.part_object), z1,
                 _shift_index(scenes, offsets.astype(jnp.int32)))


def sample_scenes(key: jax.Array, scenes: Scenes, num_samples: int) -> dict:
  """Samples images with their ground truth.

  Args:
    key: a JAX PRNG key; the output is a pure function of it and the world.
    scenes: the world.
    num_samples: number of images.

  Returns:
    Dict of numpy arrays: 'images' float32 ``(n, H, W, 1)`` in [-1, 1]; 'a', 'm', 'z' lists over
    levels (index 0 = level 1) of ``(n, n_l)`` arrays, as ``sample_hsm``; 'offsets' int32
    ``(n, n2, 2)`` shift of each object (zeros with fixed placement).
  """
  key = check_key(key)
  scenes = _check_scenes(scenes)
  if not is_int(num_samples) or num_samples < 1:
    raise ConfigError(f"num_samples={num_samples!r} is invalid: pass an integer >= 1")
  k_hsm, k_offsets = jax.random.split(key)
  out = sample_hsm(k_hsm, scenes.hsm, int(num_samples))
  s = scenes.max_shift
  shape = (int(num_samples), scenes.config.level_sizes[1], 2)
  offsets = jax.random.randint(k_offsets, shape, -s, s + 1, jnp.int32)
  out["offsets"] = np.asarray(offsets, np.int32)
  out["images"] = np.asarray(render(scenes, out["z"][0], offsets), np.float32)
  return out


@jax.jit
def _read_parts(bank, norms, membership, part_object, images):
  """Per part: intensity at its object's best-fitting shift; per object: that shift's index."""
  canvas = (images + 1.0) * _SCALE
  dots = jnp.einsum("nhw,sihw->nsi", canvas, bank, precision=jax.lax.Precision.HIGHEST)
  intensity = jnp.maximum(dots, 0.0) / norms
  explained = jnp.einsum("nsi,ij->nsj", intensity ** 2 * norms, membership,
                         precision=jax.lax.Precision.HIGHEST)
  best = jnp.argmax(explained, axis=1)
  return jnp.take_along_axis(intensity, best[:, None, part_object], axis=1)[:, 0], best


def _check_images(scenes: Scenes, images) -> np.ndarray:
  h = scenes.config.image_size
  images = np.asarray(images)
  if images.ndim == 4 and images.shape[-1] == 1:
    images = images[..., 0]
  if images.ndim != 3 or images.shape[1:] != (h, h) or images.shape[0] < 1:
    raise DataError(
        f"images of shape {images.shape} do not fit this world: pass (n, {h}, {h}, 1) or "
        f"(n, {h}, {h}) pixels, as sample_scenes makes them")
  if not np.issubdtype(images.dtype, np.number) or np.iscomplexobj(images):
    raise DataError(f"images have dtype {images.dtype}: pass real-valued pixels (float32)")
  images = images.astype(np.float32)
  if not np.all(np.isfinite(images)):
    raise DataError("images hold NaN or Inf: pass finite pixels, e.g. clip a model's output")
  return images


def detect_parts(scenes: Scenes, images) -> dict:
  """Reads part presence and intensity back from images (least squares, see module docstring).

  Args:
    scenes: the world.
    images: ``(n, H, W, 1)`` or ``(n, H, W)`` finite pixels (noise is fine).

  Returns:
    Dict of numpy arrays: 'present' bool ``(n, n1)`` (intensity > 0.25); 'intensity' float32
    ``(n, n1)``, >= 0; 'offsets' int32 ``(n, n2, 2)`` the estimated shift of every object
    (0 for empty regions and with fixed placement).
  """
  scenes = _check_scenes(scenes)
  images = _check_images(scenes, images)
  n1, n2 = scenes.config.level_sizes[:2]
  norms = (scenes.templates ** 2).sum(axis=(1, 2))
  membership = np.zeros((n1, n2), np.float32)
  membership[np.arange(n1), scenes.part_object] = 1.0
  intensity, best = _read_parts(jnp.asarray(scenes.bank), jnp.asarray(norms),
                                jnp.asarray(membership), jnp.asarray(scenes.part_object),
                                jnp.asarray(images))
  intensity = np.asarray(intensity, np.float32)
  return {"present": intensity > THRESHOLD, "intensity": intensity,
          "offsets": scenes.shifts[np.asarray(best)]}


def detect_concepts(scenes: Scenes, images) -> dict:
  """Reads every level's concepts back from images: parts by ``detect_parts``, wholes by ``tau``.

  Args:
    scenes: the world.
    images: as ``detect_parts``.

  Returns:
    Dict: 'a' bool and 'z' float32 lists over levels (index 0 = level 1) of ``(n, n_l)`` arrays
    (a whole's z is the mean z of its present parents, 0 when absent); 'fragments' list over
    levels 2..L (index 0 = level 2) of bool ``(n, n_l)``, wholes with 1..tau-1 present parents;
    'coherent' bool ``(n,)``, no fragment at any level; 'offsets' as ``detect_parts``.
  """
  parts = detect_parts(scenes, images)
  tau = scenes.config.tau
  a = [parts["present"]]
  z = [np.where(parts["present"], parts["intensity"], np.float32(0))]
  fragments = []
  for adj in scenes.hsm.adjacency:
    adj = adj.astype(np.float32)
    counts = a[-1].astype(np.float32) @ adj
    present = counts >= tau
    a.append(present)
    z.append(np.where(present, (z[-1] @ adj) / np.maximum(counts, 1.0), 0.0).astype(np.float32))
    fragments.append((counts >= 1) & ~present)
  coherent = ~np.any(np.concatenate(fragments, axis=1), axis=1)
  return {"a": a, "z": z, "fragments": fragments, "coherent": coherent,
          "offsets": parts["offsets"]}


def coherence_rate(scenes: Scenes, images) -> float:
  """Fraction of images without a fragment at any level (detected by ``detect_concepts``)."""
  return float(np.mean(detect_concepts(scenes, images)["coherent"]))


def to_ascii(image) -> str:
  """One image ``(H, W, 1)`` or ``(H, W)`` in [-1, 1] as text, two characters per pixel."""
  image = np.asarray(image, np.float32).reshape(np.shape(image)[:2])
  levels = np.clip(np.round((image + 1.0) / 2.0 * (len(_ASCII) - 1)), 0, len(_ASCII) - 1)
  return "\n".join("".join(_ASCII[int(v)] * 2 for v in row) for row in levels)
