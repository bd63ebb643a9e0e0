"""Prompts for the scenes world: token sequences naming what an image should contain.

A prompt is made from the latents of one world sample (``sample_scenes``), so it is true of the
image it is paired with. Vocabulary (`Vocabulary`): token 0 is padding; then the filler words
``FILLERS``; then one token per concept, scene types first, then objects, then parts. A prompt:

- *full* (probability ``1 - underspecified``): names every present object; each present scene
  type with probability ``scene_rate``; each present part with probability ``part_rate``;
- *under-specified* (probability ``underspecified``, when a scene type is present): names only
  the present scene types, leaving the objects to the model;
- paraphrase-like variation: the concept tokens in random order, with ``fillers`` filler words
  inserted at random places (each slot filled with probability ``filler_rate``);
- padded with 0 to ``max_len`` (concept tokens first when a prompt would be longer: scene types,
  objects, then as many parts as fit).

Images with no present object get the empty prompt (all padding), as do a share ``dropout`` of
training prompts (classifier-free guidance). Prompts are numpy int32 ``(n, max_len)``; they are a
pure function of the numpy seed and the latents.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from identi.errors import ConfigError, DataError

FILLERS = ("a", "with", "and", "scene", "of")


@dataclasses.dataclass(frozen=True)
class PromptConfig:
  """How prompts are drawn (module docstring). Probabilities in [0, 1]; max_len >= 4."""
  max_len: int = 16
  underspecified: float = 0.2
  scene_rate: float = 0.5
  part_rate: float = 0.1
  filler_rate: float = 0.3
  fillers: int = 3
  dropout: float = 0.1

  def validate(self) -> "PromptConfig":
    for name in ("underspecified", "scene_rate", "part_rate", "filler_rate", "dropout"):
      v = getattr(self, name)
      if not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
        raise ConfigError(f"config key 'prompt.{name}' is {v!r}; give a probability in [0, 1]")
    if not isinstance(self.max_len, int) or self.max_len < 4:
      raise ConfigError(f"config key 'prompt.max_len' is {self.max_len!r}; give an integer >= 4")
    if not isinstance(self.fillers, int) or self.fillers < 0:
      raise ConfigError(f"config key 'prompt.fillers' is {self.fillers!r}; give an integer >= 0")
    return self


@dataclasses.dataclass(frozen=True)
class Vocabulary:
  """Token ids of a world with ``level_sizes`` (parts first): ``concept(level, i)``."""
  level_sizes: tuple[int, ...]

  @property
  def offsets(self) -> list[int]:
    """First token of each level (index 0 = parts), scene types first in the vocabulary."""
    start, out = 1 + len(FILLERS), [0] * len(self.level_sizes)
    for level in reversed(range(len(self.level_sizes))):
      out[level] = start
      start += self.level_sizes[level]
    return out

  @property
  def size(self) -> int:
    return 1 + len(FILLERS) + sum(self.level_sizes)

  def concept(self, level: int, index) -> np.ndarray:
    return self.offsets[level] + np.asarray(index)

  def words(self) -> list[str]:
    """The token names: '<pad>', the fillers, then 'scene_0'..., 'object_0'..., 'part_0'...."""
    names = {0: "part", 1: "object", 2: "scene"}
    out = ["<pad>", *FILLERS]
    for level in reversed(range(len(self.level_sizes))):
      out += [f"{names.get(level, f'level{level + 1}')}_{i}"
              for i in range(self.level_sizes[level])]
    return out

  def decode(self, tokens) -> str:
    words = self.words()
    return " ".join(words[t] for t in np.asarray(tokens) if t > 0)

  def named(self, prompts, level: int) -> np.ndarray:
    """bool (n, n_level): which concepts of `level` each prompt names."""
    prompts = np.asarray(prompts)
    lo = self.offsets[level]
    out = np.zeros((prompts.shape[0], self.level_sizes[level]), bool)
    rows, cols = np.nonzero((prompts >= lo) & (prompts < lo + self.level_sizes[level]))
    out[rows, prompts[rows, cols] - lo] = True
    return out


def make_prompts(rng: np.random.Generator, a, vocab: Vocabulary, config: PromptConfig,
                 dropout: bool = False) -> np.ndarray:
  """Prompts (n, max_len) for samples with presence `a` (list over levels, parts first, of
  bool (n, n_l)); with `dropout`, a share ``config.dropout`` becomes the empty prompt."""
  a = [np.asarray(x, bool) for x in a]
  if len(a) != len(vocab.level_sizes) or any(
      x.ndim != 2 or x.shape[1] != n for x, n in zip(a, vocab.level_sizes)):
    raise DataError(f"presence of shapes {[x.shape for x in a]} does not fit a world of "
                    f"level sizes {vocab.level_sizes}: pass one (n, n_l) array per level")
  n, top = a[0].shape[0], len(a) - 1
  out = np.zeros((n, config.max_len), np.int32)
  for r in range(n):
    scenes = vocab.concept(top, np.flatnonzero(a[top][r])) if top >= 2 else np.zeros(0, int)
    objects = vocab.concept(1, np.flatnonzero(a[1][r]))
    if objects.size == 0 or (dropout and rng.random() < config.dropout):
      continue
    if scenes.size and rng.random() < config.underspecified:
      concepts = list(scenes)
    else:
      concepts = list(scenes[rng.random(scenes.size) < config.scene_rate]) + list(objects)
      parts = vocab.concept(0, np.flatnonzero(a[0][r]))
      concepts += list(parts[rng.random(parts.size) < config.part_rate])
    concepts = concepts[:config.max_len]
    words = [concepts[i] for i in rng.permutation(len(concepts))]
    for _ in range(config.fillers):
      if len(words) < config.max_len and rng.random() < config.filler_rate:
        words.insert(int(rng.integers(0, len(words) + 1)), 1 + int(rng.integers(len(FILLERS))))
    out[r, :len(words)] = words
  return out


def adherence(vocab: Vocabulary, prompts, detected) -> dict[str, float]:
  """How well images follow their prompts, from what the detectors read (`detected`: presence,
  list over levels, parts first). Per level, over the prompts that name a concept of it: the
  share whose named concepts are all present ('objects', 'scenes', 'parts'); 'all': every named
  concept present, over non-empty prompts; 'exact_objects': over prompts that name objects, the
  share whose image has exactly the named objects; 'empty': the share of empty prompts."""
  prompts = np.asarray(prompts)
  detected = [np.asarray(x, bool) for x in detected]
  names = {0: "parts", 1: "objects", 2: "scenes"}
  out, ok_all, named_any = {}, np.ones(prompts.shape[0], bool), np.zeros(prompts.shape[0], bool)
  for level, present in enumerate(detected):
    named = vocab.named(prompts, level)
    has = named.any(axis=1)
    ok = ~np.any(named & ~present, axis=1)
    ok_all &= ok
    named_any |= has
    out[names.get(level, f"level{level + 1}")] = float(ok[has].mean()) if has.any() else float("nan")
    if level == 1:
      exact = np.all(named == present, axis=1)
      out["exact_objects"] = float(exact[has].mean()) if has.any() else float("nan")
  out["all"] = float(ok_all[named_any].mean()) if named_any.any() else float("nan")
  out["empty"] = float(np.mean(~named_any))
  return out
