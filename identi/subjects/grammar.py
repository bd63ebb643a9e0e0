"""A token world drawn from the hierarchical selection model (HSM): sentences of a tiny grammar.

Sequences whose concepts we know, for training a small autoregressive transformer and checking
what it learned. Every sequence serialises one HSM sample (``identi.generators.hsm``, spec in
docs/hsm.md) and carries its ground-truth latents:

- **Level 1, words.** Every word is one token.
- **Level 2, phrases.** Every phrase has exactly ``parents`` words (no word is shared) and
  emerges when at least ``tau`` of them are present. A phrase with present words that did not
  emerge is a *fragment*: an incoherent configuration that selection lets through only with the
  leak probability ``eps``.
- **Level 3, sentence types.** Every sentence type has exactly ``parents`` phrases and emerges by
  the same rule from the phrases; it has no tokens of its own. Deeper hierarchies work the same.

The world builds ``HSMConfig(level_sizes, min_parents=max_parents=parents, overlap=0, pi, tau,
eps, magnitude='uniform', graph_seed)``, which requires ``n_l = parents * n_{l+1}`` (the parent
sets of every level pair then partition the level below; ``make_grammar`` checks this).
Intensities ``m`` and ``z = a * m`` are sampled as the HSM gives them but no token shows them:
only presence is visible.

Vocabulary: PAD = 0, BOS = 1, EOS = 2, SEP = 3, then word i is token ``4 + i``, so
``vocab_size = 4 + n_1``.

Serialisation: BOS; then one *group* per phrase with at least one present word (every present
phrase and every fragment), each group its present words in ascending word index followed by
SEP; then EOS; then PAD up to the fixed ``seq_len = 2 + n_2 * (parents + 1)`` (the longest
sequence). Groups come in a random order drawn from the key independently of the latents
(``order='random'``) or by ascending phrase index (``order='fixed'``). With nothing present the
sequence is BOS EOS.

Grammar: a token sequence is grammatical iff it is exactly ``BOS (group SEP)* EOS PAD*`` where
every group is a non-empty, strictly ascending list of words of ONE phrase, with at least ``tau``
words (a complete phrase; a fragment group is ungrammatical), and no phrase has two groups. So a
world sequence is grammatical iff its sample holds no level-2 fragment; level-3 fragments (a
sentence type with 1..tau-1 of its phrases) are invisible in tokens and allowed. At the defaults
(eps = 0.001) ``grammatical_rate`` of 20,000 world sequences (``jax.random.key(0)``) is 0.9948
(0.9576 at eps = 0.01).

``parse`` reads any token array (e.g. a model's samples): positions from 1 up to the first EOS
(or the end) are read, the rest only has to be PAD.
"""
import dataclasses

import jax
import numpy as np

from identi.errors import ConfigError, DataError
from identi.generators.hsm import HSM, HSMConfig
from identi.generators.hsm_sampler import sample_hsm
from identi.checks import check_key
from identi.subjects.world import (check_graph_seed, check_tiled_levels, is_int,
                                   make_tiled_hsm, tiled_hsm_config)

PAD, BOS, EOS, SEP = 0, 1, 2, 3
NUM_SPECIAL = 4
_ORDERS = ("random", "fixed")
_NAMES = {PAD: "<pad>", BOS: "<s>", EOS: "</s>", SEP: "|"}


@dataclasses.dataclass(frozen=True)
class GrammarConfig:
  """Everything that defines a grammar world (sequences then depend only on the JAX key).

  Attributes:
    level_sizes: concepts per level, words first; ``n_l = parents * n_{l+1}``.
    parents: words per phrase and phrases per sentence type, >= 2.
    tau: a whole emerges when at least ``tau`` of its parents are present, in [1, parents].
    pi: firing probability of every word before selection, in (0, 1).
    eps: selection leak of fragments (1..tau-1 parents present), in (0, 1]. The default 0.001
      makes 99.5% of the world's sequences grammatical, so a model that learns the world can pass
      the >= 95% grammaticality gate.
    order: 'random' (groups shuffled, independently of the latents) or 'fixed' (ascending phrase
      index).
    graph_seed: seed of the HSM graph (which words make which phrase).
  """
  level_sizes: tuple[int, ...] = (18, 6, 2)
  parents: int = 3
  tau: int = 2
  pi: float = 0.3
  eps: float = 0.001
  order: str = "random"
  graph_seed: int = 0

  def __post_init__(self):
    if isinstance(self.level_sizes, list):
      object.__setattr__(self, "level_sizes", tuple(self.level_sizes))

  @property
  def vocab_size(self) -> int:
    """Number of token ids: the 4 special tokens and one per word."""
    return NUM_SPECIAL + self.level_sizes[0]

  @property
  def seq_len(self) -> int:
    """Length of every sequence: BOS, a group of ``parents`` words and SEP per phrase, EOS."""
    return 2 + self.level_sizes[1] * (self.parents + 1)

  def validate(self) -> "GrammarConfig":
    """Raises ConfigError naming the field and the fix for impossible settings; returns self."""
    if not is_int(self.parents) or self.parents < 2:
      raise ConfigError(
          f"GrammarConfig.parents={self.parents!r} is invalid: pass an integer >= 2, e.g. 3")
    check_tiled_levels(self, "words")
    if self.order not in _ORDERS:
      raise ConfigError(
          f"GrammarConfig.order={self.order!r} is unknown: use one of {', '.join(_ORDERS)}")
    check_graph_seed(self)
    return self

  def hsm_config(self) -> HSMConfig:
    """The identi HSMConfig of this world."""
    return tiled_hsm_config(self)


@dataclasses.dataclass(frozen=True, eq=False)
class Grammar:
  """A grammar world: its HSM and its vocabulary (numpy arrays).

  Attributes:
    config: the validated config.
    hsm: the identi HSM the latents are sampled from.
    word_phrase: int32 ``(n1,)`` the phrase (level-2 index) of each word.
    phrase_words: int32 ``(n2, parents)`` the words of each phrase, ascending.
    phrase_sentence: int32 ``(n2,)`` the sentence type (level-3 index) of each phrase; -1 in a
      two-level world.
  """
  config: GrammarConfig
  hsm: HSM
  word_phrase: np.ndarray
  phrase_words: np.ndarray
  phrase_sentence: np.ndarray

  @property
  def vocab_size(self) -> int:
    return self.config.vocab_size

  @property
  def seq_len(self) -> int:
    return self.config.seq_len


def make_grammar(config: GrammarConfig | None = None) -> Grammar:
  """Builds a grammar world: its HSM and the word/phrase/sentence tables.

  Args:
    config: the world; None = ``GrammarConfig()``.

  Returns:
    The Grammar (see its attributes).
  """
  config = GrammarConfig() if config is None else config
  hsm = make_tiled_hsm(config, GrammarConfig)
  n2 = config.level_sizes[1]
  word_phrase = np.argmax(hsm.adjacency[0], axis=1).astype(np.int32)
  phrase_words = np.stack([hsm.parents(2, j) for j in range(n2)]).astype(np.int32)
  phrase_sentence = (np.argmax(hsm.adjacency[1], axis=1).astype(np.int32)
                     if len(hsm.adjacency) > 1 else np.full(n2, -1, np.int32))
  return Grammar(config=config, hsm=hsm, word_phrase=word_phrase, phrase_words=phrase_words,
                 phrase_sentence=phrase_sentence)


def _check_grammar(grammar) -> Grammar:
  if not isinstance(grammar, Grammar):
    raise ConfigError(
        f"grammar of type {type(grammar).__name__} is not a Grammar: build one with "
        "make_grammar()")
  return grammar


def serialise(grammar: Grammar, a1, order) -> dict:
  """Token sequences of level-1 presence bits (see the module docstring).

  Args:
    grammar: the world.
    a1: bool ``(n, n1)`` word presence.
    order: int ``(n, n2)`` a permutation of the phrases per sequence, the order of their groups.

  Returns:
    Dict of int32 ``(n, seq_len)`` numpy arrays: 'tokens'; 'position_word' the word index at each
    position or -1; 'position_phrase' the phrase of the group each word or SEP belongs to, or -1
    for BOS, EOS and PAD.
  """
  grammar = _check_grammar(grammar)
  a1, order = np.asarray(a1), np.asarray(order)
  n1 = grammar.config.level_sizes[0]
  n2, p = grammar.phrase_words.shape
  if a1.ndim != 2 or a1.shape[1] != n1:
    raise DataError(f"a1 has shape {a1.shape}: pass (num_sequences, {n1}) word presence bits")
  n = a1.shape[0]
  if order.shape != (n, n2) or not np.array_equal(np.sort(order, axis=1),
                                                  np.broadcast_to(np.arange(n2), (n, n2))):
    raise DataError(
        f"order of shape {order.shape} is not a permutation of the {n2} phrases per sequence: "
        f"pass ({n}, {n2}) integers, e.g. np.argsort of random keys per row")
  a1 = a1.astype(bool)
  rows = np.arange(n)[:, None]
  words = grammar.phrase_words[order]
  present = a1[rows[..., None], words]
  grouped = present.any(axis=2, keepdims=True)
  slot_token = np.concatenate([np.where(present, NUM_SPECIAL + words, PAD),
                               np.where(grouped, SEP, PAD)], axis=2).reshape(n, -1)
  slot_word = np.concatenate([np.where(present, words, -1),
                              np.full((n, n2, 1), -1)], axis=2).reshape(n, -1)
  slot_phrase = np.repeat(order, p + 1, axis=1)
  filled = slot_token != PAD
  dest = np.cumsum(filled, axis=1)
  r, c = np.nonzero(filled)
  out = {}
  for name, slots, first, last in (("tokens", slot_token, BOS, EOS),
                                   ("position_word", slot_word, -1, -1),
                                   ("position_phrase", slot_phrase, -1, -1)):
    x = np.full((n, grammar.seq_len), PAD if name == "tokens" else -1, np.int32)
    x[:, 0] = first
    x[r, dest[r, c]] = slots[r, c]
    x[np.arange(n), dest[:, -1] + 1] = last
    out[name] = x
  return out


def sample_grammar(key: jax.Array, grammar: Grammar, num_samples: int) -> dict:
  """Samples token sequences with their ground truth.

  Args:
    key: a JAX PRNG key; the output is a pure function of it and the world.
    grammar: the world.
    num_samples: number of sequences.

  Returns:
    Dict of numpy arrays: 'tokens' int32 ``(n, seq_len)``; 'a', 'm', 'z' lists over levels
    (index 0 = level 1) of ``(n, n_l)`` arrays, as ``sample_hsm`` (intensities are not visible
    in tokens); 'position_word' and 'position_phrase' int32 ``(n, seq_len)``, as ``serialise``.
  """
  key = check_key(key)
  grammar = _check_grammar(grammar)
  if not is_int(num_samples) or num_samples < 1:
    raise ConfigError(f"num_samples={num_samples!r} is invalid: pass an integer >= 1")
  k_hsm, k_order = jax.random.split(key)
  out = sample_hsm(k_hsm, grammar.hsm, int(num_samples))
  n2 = grammar.config.level_sizes[1]
  if grammar.config.order == "random":
    order = np.argsort(np.asarray(jax.random.uniform(k_order, (int(num_samples), n2))), axis=1)
  else:
    order = np.broadcast_to(np.arange(n2), (int(num_samples), n2))
  out.update(serialise(grammar, out["a"][0], order))
  return out


def _check_tokens(grammar: Grammar, tokens) -> np.ndarray:
  tokens = np.asarray(tokens)
  if tokens.ndim != 2 or tokens.shape[0] < 1 or tokens.shape[1] < 1:
    raise DataError(
        f"tokens of shape {tokens.shape} are not a batch of sequences: pass (n, seq_len) token "
        f"ids, e.g. (n, {grammar.seq_len}) as sample_grammar makes them")
  if not np.issubdtype(tokens.dtype, np.integer):
    raise DataError(f"tokens have dtype {tokens.dtype}: pass integer token ids (int32)")
  if tokens.min() < 0 or tokens.max() >= grammar.vocab_size:
    raise DataError(
        f"tokens hold ids in [{tokens.min()}, {tokens.max()}], outside this world's vocabulary "
        f"[0, {grammar.vocab_size}): pass ids of this grammar (PAD=0, BOS=1, EOS=2, SEP=3, "
        f"words 4..{grammar.vocab_size - 1})")
  return tokens.astype(np.int32)


def parse(grammar: Grammar, tokens) -> dict:
  """Reads sequences back exactly: grammaticality, concepts per level, and per-position truth.

  Args:
    grammar: the world.
    tokens: integer ``(n, T)`` token ids of this world, any T >= 1 (e.g. a model's samples).

  Returns:
    Dict of numpy arrays: 'grammatical' bool ``(n,)`` (the grammar of the module docstring);
    'a' list over levels of bool ``(n, n_l)``: words present anywhere in the read span, phrases
    with at least ``tau`` of their words in one group, higher levels by the ``tau`` rule on the
    level below; 'position_word' and 'position_phrase' int32 ``(n, T)`` as ``sample_grammar``
    (a SEP takes the phrase of the word before it; -1 where nothing is read).
  """
  grammar = _check_grammar(grammar)
  tokens = _check_tokens(grammar, tokens)
  n, length = tokens.shape
  n1 = grammar.config.level_sizes[0]
  tau = grammar.config.tau
  rows = np.arange(n)
  eos = tokens == EOS
  has_eos = eos.any(axis=1)
  end = np.where(has_eos, eos.argmax(axis=1), length)
  pos = np.arange(length)
  body = (pos >= 1) & (pos < end[:, None])
  is_word = body & (tokens >= NUM_SPECIAL)
  is_sep = body & (tokens == SEP)
  word = np.where(is_word, tokens - NUM_SPECIAL, -1)
  phrase = np.where(is_word, grammar.word_phrase[np.maximum(word, 0)], -1)

  ok = (tokens[:, 0] == BOS) & has_eos
  ok &= ~np.any(body & ~(is_word | is_sep), axis=1)
  ok &= ~np.any((pos > end[:, None]) & (tokens != PAD), axis=1)
  ok &= (end <= 1) | (tokens[rows, np.maximum(end - 1, 0)] == SEP)
  pair = is_word[:, 1:] & is_word[:, :-1]
  ok &= ~np.any(pair & ((phrase[:, 1:] != phrase[:, :-1]) | (word[:, 1:] <= word[:, :-1])),
                axis=1)
  words_before = np.cumsum(is_word, axis=1)
  last_sep = np.maximum.accumulate(np.where(is_sep, words_before, 0), axis=1)
  group_start = np.concatenate([np.zeros((n, 1), last_sep.dtype), last_sep[:, :-1]], axis=1)
  ok &= ~np.any(is_sep & (words_before - group_start < tau), axis=1)

  group = np.cumsum(is_sep, axis=1) - is_sep
  occupied = np.zeros((n, length, n1), bool)
  r, c = np.nonzero(is_word)
  occupied[r, group[r, c], word[r, c]] = True
  per_group = occupied[:, :, grammar.phrase_words].sum(axis=-1, dtype=np.int16)
  ok &= ~np.any((per_group >= 1).sum(axis=1) > 1, axis=1)
  a = [occupied.any(axis=1), np.any(per_group >= tau, axis=1)]
  for adj in grammar.hsm.adjacency[1:]:
    a.append(a[-1].astype(np.float32) @ adj >= tau)
  previous = np.concatenate([np.full((n, 1), -1, np.int32), phrase[:, :-1]], axis=1)
  position_phrase = np.where(is_word, phrase, np.where(is_sep, previous, -1)).astype(np.int32)
  return {"grammatical": ok, "a": a, "position_word": word.astype(np.int32),
          "position_phrase": position_phrase}


def grammatical_rate(grammar: Grammar, tokens) -> float:
  """Fraction of grammatical sequences (``parse``)."""
  return float(np.mean(parse(grammar, tokens)["grammatical"]))


def to_text(grammar: Grammar, tokens) -> str | list[str]:
  """One sequence ``(T,)`` as text, e.g. '<s> w3 w4 | w9 w10 w11 | </s>' (word i is 'w{i}',
  trailing PAD dropped); a batch ``(n, T)`` as a list of such lines."""
  grammar = _check_grammar(grammar)
  array = np.asarray(tokens)
  if array.ndim == 1:
    return to_text(grammar, array[None])[0]
  lines = []
  for row in _check_tokens(grammar, array):
    keep = len(row) - int(np.argmax(row[::-1] != PAD)) if np.any(row != PAD) else 0
    lines.append(" ".join(_NAMES.get(int(t), f"w{int(t) - NUM_SPECIAL}") for t in row[:keep]))
  return lines
