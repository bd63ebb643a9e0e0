"""A labelled real-text world from WordNet 3.0: noun lemmas, their categories, and sentences.

WordNet's database files come from the Debian package ``wordnet-base`` (``/usr/share/wordnet``;
WordNet 3.0 licence: free use with attribution to Princeton University, see
``/usr/share/doc/wordnet-base/copyright``). `read_nouns` parses ``data.noun`` and
``index.noun``; `make_lexicon` turns them into a three-level concept hierarchy

  level 1: lemmas (``dog``), level 2: categories (``mammal``), level 3: top categories
  (``animal``),

and `make_sentences` into sentences that use each lemma, labelled at the lemma's position.

Choices (made once, before any measurement, and never tuned on results):

- Top categories: the fixed synsets of `TOP_CATEGORIES` (animal, plant, person, food, artifact,
  location, body part, feeling, event), disjoint enough that few lemmas sit under two.
- Lemmas: lower-case alphabetic index entries of at least 3 letters that are ONE word piece of
  the model's vocabulary (so the lemma's position is one token), taken in their most frequent
  sense (WordNet lists senses by frequency), that sense a common noun (an ordinary hypernym, not an
  instance such as a city name) under exactly one top category.
- Categories: under each top category, descendants covering between ``min_lemmas`` and
  ``max_lemmas`` candidate lemmas, taken greedily from the largest, skipping any that is an
  ancestor or descendant of one already taken, at most ``categories_per_top`` of them. A lemma is
  kept when exactly one category covers it; at most ``lemmas_per_category`` per category (a seeded
  draw), so categories are balanced.
- Sentences: ``templates`` (fixed templates, lemma after "the") and up to ``wordnet_sentences``
  WordNet sentences that contain the lemma as a whole word (the example sentences in glosses
  first, then definitions, in database order).
- Halves (what keeps evaluation honest): the lemmas of every category are split in two halves
  (``split_seed``): 'fit' lemmas, on which every supervised choice is made (the matching of units
  to categories, the probe, the layer per level), and 'report' lemmas, on which the numbers are
  reported. Within each lemma, sentences alternate between a 'fit' and a 'report' half (a lemma's
  own unit is named on its fit sentences and scored on its report sentences).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from typing import Any, Sequence

import numpy as np

from identi.errors import ConfigError, DataError

WORDNET_DIR = "/usr/share/wordnet"
INSTALL = "apt-get install wordnet-base (Debian/Ubuntu; `make wordnet` runs it)"

#: The top categories: name -> data.noun offset of the synset.
TOP_CATEGORIES = {
    "animal": "00015388",  # animal, animate_being, beast, brute, creature, fauna
    "plant": "00017222",  # plant, flora, plant_life
    "person": "00007846",  # person, individual, someone, somebody, mortal, soul
    "food": "07555863",  # food, solid_food
    "artifact": "00021939",  # artifact, artefact
    "location": "00027167",  # location
    "body_part": "05220461",  # body_part
    "feeling": "00026192",  # feeling
    "event": "00029378",  # event
}

#: Sentence templates; {} is the lemma (after "the", so no a/an agreement is needed).
TEMPLATES = (
    "I saw the {} yesterday.",
    "We talked about the {} for an hour.",
    "There is a picture of the {} on the wall.",
    "She wrote a short story about the {}.",
    "Nobody expected the {} to be there.",
    "He pointed at the {} and smiled.",
    "The {} was mentioned in the news.",
    "They asked me what the {} looked like.",
    "My teacher once showed us the {}.",
    "The children drew the {} in class.",
    "Everyone remembers the {} from that day.",
    "It was the first time I heard of the {}.",
)


@dataclasses.dataclass(frozen=True)
class Synset:
  offset: str
  words: tuple[str, ...]
  hypernyms: tuple[str, ...]  # ordinary hypernyms ('@')
  instance_of: tuple[str, ...]  # instance hypernyms ('@i')
  gloss: str

  @property
  def name(self) -> str:
    return self.words[0]

  def definitions(self) -> list[str]:
    """The definition parts of the gloss (before the quoted examples)."""
    return [p.strip() for p in re.sub(r'"[^"]*"', "", self.gloss).split(";") if p.strip()]

  def examples(self) -> list[str]:
    """The quoted example sentences of the gloss."""
    return [e.strip() for e in re.findall(r'"([^"]+)"', self.gloss) if e.strip()]


@dataclasses.dataclass(frozen=True)
class Nouns:
  """The noun part of WordNet: synsets by offset, and each lemma's synsets by frequency."""
  synsets: dict[str, Synset]
  senses: dict[str, tuple[str, ...]]

  @functools.cached_property
  def _ancestors(self) -> dict[str, frozenset]:
    return {}

  def ancestors(self, offset: str) -> frozenset:
    """Every synset above `offset` through hypernym and instance-hypernym links."""
    memo = self._ancestors
    if offset not in memo:
      s = self.synsets[offset]
      out: set[str] = set()
      for h in s.hypernyms + s.instance_of:
        out.add(h)
        out |= self.ancestors(h)
      memo[offset] = frozenset(out)
    return memo[offset]


def read_nouns(path: str = WORDNET_DIR) -> Nouns:
  """Parses ``data.noun`` and ``index.noun`` of a WordNet 3.0 database directory.

  Raises:
    DataError: the files are missing (the message says how to install them) or malformed.
  """
  files = {name: os.path.join(path, name) for name in ("data.noun", "index.noun")}
  for name, f in files.items():
    if not os.path.isfile(f):
      raise DataError(f"WordNet's {name} is not at {f}: {INSTALL}, or pass the directory that "
                      "holds data.noun and index.noun")
  synsets: dict[str, Synset] = {}
  senses: dict[str, tuple[str, ...]] = {}
  try:
    with open(files["data.noun"], encoding="latin-1") as fh:
      for line in fh:
        if line.startswith("  "):  # the licence header
          continue
        head, _, gloss = line.partition(" | ")
        f = head.split()
        n_words = int(f[3], 16)
        words = tuple(f[4 + 2 * i] for i in range(n_words))
        i = 4 + 2 * n_words
        hyper, inst = [], []
        for _ in range(int(f[i])):
          symbol, target, pos = f[i + 1], f[i + 2], f[i + 3]
          if pos == "n" and symbol == "@":
            hyper.append(target)
          elif pos == "n" and symbol == "@i":
            inst.append(target)
          i += 4
        synsets[f[0]] = Synset(f[0], words, tuple(hyper), tuple(inst), gloss.strip())
    with open(files["index.noun"], encoding="latin-1") as fh:
      for line in fh:
        if line.startswith("  "):
          continue
        f = line.split()
        n_pointers = int(f[3])
        senses[f[0]] = tuple(f[4 + n_pointers + 2:])
  except (ValueError, IndexError) as e:
    raise DataError(f"WordNet's files under {path} are malformed ({type(e).__name__}: {e}): "
                    f"reinstall them ({INSTALL})") from e
  if not synsets or not senses:
    raise DataError(f"WordNet's files under {path} hold no nouns: reinstall them ({INSTALL})")
  return Nouns(synsets, senses)


@dataclasses.dataclass(frozen=True)
class Lexicon:
  """The three-level hierarchy (module docstring).

  lemmas: level-1 names; categories, tops: level-2 and level-3 names (synset names);
  category_of: (n_lemmas,) index into categories; top_of: (n_categories,) index into tops;
  fit_lemma: (n_lemmas,) bool, True for the 'fit' half; synset: (n_lemmas,) the lemma's synset.
  """
  lemmas: tuple[str, ...]
  categories: tuple[str, ...]
  tops: tuple[str, ...]
  category_of: np.ndarray
  top_of: np.ndarray
  fit_lemma: np.ndarray
  synset: tuple[str, ...]

  @property
  def level_sizes(self) -> tuple[int, int, int]:
    return (len(self.lemmas), len(self.categories), len(self.tops))

  @property
  def adjacency(self) -> list[np.ndarray]:
    """bool (lemmas, categories) and (categories, tops): WordNet's hypernymy between levels."""
    a1 = np.zeros(self.level_sizes[:2], bool)
    a1[np.arange(len(self.lemmas)), self.category_of] = True
    a2 = np.zeros(self.level_sizes[1:], bool)
    a2[np.arange(len(self.categories)), self.top_of] = True
    return [a1, a2]


def make_lexicon(nouns: Nouns, vocab: Sequence[str] | set, *, min_lemmas: int,
                 max_lemmas: int, categories_per_top: int, lemmas_per_category: int,
                 split_seed: int) -> Lexicon:
  """The hierarchy of the module docstring from WordNet `nouns` and a tokenizer's `vocab`."""
  if not 1 <= min_lemmas <= max_lemmas:
    raise ConfigError(f"world.min_lemmas={min_lemmas} and world.max_lemmas={max_lemmas}: need "
                      "1 <= min_lemmas <= max_lemmas")
  if lemmas_per_category < 2 or categories_per_top < 1:
    raise ConfigError(f"world.lemmas_per_category={lemmas_per_category} and "
                      f"world.categories_per_top={categories_per_top}: need >= 2 lemmas per "
                      "category (one per half) and >= 1 category per top category")
  vocab = set(vocab)
  tops = {name: off for name, off in TOP_CATEGORIES.items() if off in nouns.synsets}
  if len(tops) != len(TOP_CATEGORIES):
    raise DataError("WordNet's data.noun lacks top-category synsets "
                    f"{sorted(set(TOP_CATEGORIES) - set(tops))}: it is not WordNet 3.0 ({INSTALL})")
  top_offsets = set(tops.values())
  candidates: dict[str, tuple[str, str]] = {}  # lemma -> (synset, top name)
  for lemma in sorted(nouns.senses):
    if not (lemma.isalpha() and lemma.islower() and len(lemma) >= 3 and lemma in vocab):
      continue
    offset = nouns.senses[lemma][0]
    s = nouns.synsets[offset]
    if not s.hypernyms or s.instance_of or lemma not in s.words:
      continue
    above = nouns.ancestors(offset) | {offset}
    hit = [name for name, off in tops.items() if off in above]
    if len(hit) == 1 and offset not in top_offsets:
      candidates[lemma] = (offset, hit[0])
  rng = np.random.default_rng(split_seed)
  lemmas, categories, top_names, category_of, top_of, fit, synset = [], [], [], [], [], [], []
  for top, top_off in tops.items():
    members = [l for l, (_, t) in candidates.items() if t == top]
    cover: dict[str, list[str]] = {}
    for lemma in members:
      for a in nouns.ancestors(candidates[lemma][0]):
        if a not in top_offsets and top_off in nouns.ancestors(a):
          cover.setdefault(a, []).append(lemma)
    chosen: list[str] = []
    for off in sorted(cover, key=lambda o: (-len(cover[o]), o)):
      if len(chosen) == categories_per_top:
        break
      if not min_lemmas <= len(cover[off]) <= max_lemmas:
        continue
      if any(off in nouns.ancestors(c) or c in nouns.ancestors(off) for c in chosen):
        continue
      chosen.append(off)
    if not chosen:
      continue
    kept = []
    for off in chosen:
      own = [l for l in cover[off] if sum(l in cover[c] for c in chosen) == 1]
      if len(own) >= 2:
        kept.append((off, own))
    if not kept:
      continue
    top_names.append(top)
    for off, own in kept:
      pick = sorted(rng.permutation(own)[:lemmas_per_category].tolist())
      half = np.zeros(len(pick), bool)
      half[rng.permutation(len(pick))[:(len(pick) + 1) // 2]] = True
      categories.append(nouns.synsets[off].name)
      top_of.append(len(top_names) - 1)
      for lemma, h in zip(pick, half):
        lemmas.append(lemma)
        category_of.append(len(categories) - 1)
        fit.append(bool(h))
        synset.append(nouns.synsets[candidates[lemma][0]].name)
  if len(top_names) < 2:
    raise ConfigError(f"the world has {len(top_names)} top categories with categories between "
                      f"world.min_lemmas={min_lemmas} and world.max_lemmas={max_lemmas} lemmas; "
                      "widen that range")
  return Lexicon(tuple(lemmas), tuple(categories), tuple(top_names),
                 np.asarray(category_of, np.int32), np.asarray(top_of, np.int32),
                 np.asarray(fit, bool), tuple(synset))


def wordnet_sentences(nouns: Nouns, lemmas: Sequence[str], limit: int,
                      max_words: int = 40) -> dict[str, list[str]]:
  """Up to `limit` WordNet sentences per lemma that contain it as a whole word: gloss examples
  first, then definitions, in database order; at most `max_words` words each."""
  wanted = set(lemmas)
  found: dict[str, tuple[list[str], list[str]]] = {l: ([], []) for l in lemmas}
  if limit <= 0:
    return {l: [] for l in lemmas}
  word = re.compile(r"[a-z]+")
  for offset in sorted(nouns.synsets):
    s = nouns.synsets[offset]
    for kind, texts in ((0, s.examples()), (1, s.definitions())):
      for text in texts:
        if len(text.split()) > max_words:
          continue
        for lemma in wanted.intersection(word.findall(text.lower())):
          bucket = found[lemma][kind]
          if len(bucket) < limit and text not in bucket:
            bucket.append(text)
  return {l: (ex + defs)[:limit] for l, (ex, defs) in found.items()}


@dataclasses.dataclass(frozen=True)
class Sentences:
  """Sentences of the world, one row per (sentence, lemma occurrence).

  text: the sentences; lemma: (n,) lemma index; source: (n,) 0 = template, 1 = WordNet;
  fit_sentence: (n,) bool, the sentence's half within its lemma.
  """
  text: tuple[str, ...]
  lemma: np.ndarray
  source: np.ndarray
  fit_sentence: np.ndarray


def make_sentences(nouns: Nouns, lexicon: Lexicon, *, templates: int,
                   wordnet_per_lemma: int) -> Sentences:
  """`templates` template sentences and up to `wordnet_per_lemma` WordNet sentences per lemma;
  within each lemma sentences alternate between the fit and report halves."""
  if not 2 <= templates <= len(TEMPLATES):
    raise ConfigError(f"config key 'world.templates' is {templates}; use 2..{len(TEMPLATES)} "
                      "(each half of the sentences needs one)")
  if wordnet_per_lemma < 0:
    raise ConfigError(f"config key 'world.wordnet_sentences' is {wordnet_per_lemma}; use >= 0")
  extra = wordnet_sentences(nouns, lexicon.lemmas, wordnet_per_lemma)
  text, lemma, source, fit = [], [], [], []
  for i, l in enumerate(lexicon.lemmas):
    rows = [(t.format(l), 0) for t in TEMPLATES[:templates]] + [(s, 1) for s in extra[l]]
    for j, (s, src) in enumerate(rows):
      text.append(s)
      lemma.append(i)
      source.append(src)
      fit.append(j % 2 == 0)
  return Sentences(tuple(text), np.asarray(lemma, np.int32), np.asarray(source, np.int8),
                   np.asarray(fit, bool))


def describe(lexicon: Lexicon) -> dict[str, Any]:
  """Sizes and the category tree of a lexicon, for summaries."""
  tree = {top: {lexicon.categories[c]: int((lexicon.category_of == c).sum())
                for c in np.flatnonzero(lexicon.top_of == t)}
          for t, top in enumerate(lexicon.tops)}
  return {"lemmas": len(lexicon.lemmas), "categories": len(lexicon.categories),
          "tops": len(lexicon.tops), "fit_lemmas": int(lexicon.fit_lemma.sum()), "tree": tree}
