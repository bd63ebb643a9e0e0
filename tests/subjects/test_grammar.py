"""Tests for identi.subjects.grammar (the HSM token world and its exact checker)."""
import jax
import numpy as np
import pytest

from identi.errors import ConfigError, DataError
from identi.subjects.grammar import (BOS, EOS, NUM_SPECIAL, PAD, SEP, GrammarConfig,
                                     grammatical_rate, make_grammar, parse, sample_grammar,
                                     to_text)

_N = 512  # one sample count, so the HSM sampler compiles once per world

# The module's fixtures are expensive: one worker runs all its tests (make test's --dist loadgroup).
pytestmark = pytest.mark.xdist_group("grammar_world")


@pytest.fixture(scope="session")
def grammar():
  return make_grammar()


@pytest.fixture(scope="session")
def sample(grammar):
  return sample_grammar(jax.random.key(0), grammar, _N)


def _sequence(grammar, *groups, length=None, end=(EOS,)):
  """BOS, each group of word indices followed by SEP, then `end`, PAD to `length`."""
  tokens = [BOS]
  for group in groups:
    tokens += [NUM_SPECIAL + int(w) for w in group] + [SEP]
  tokens += list(end)
  length = grammar.seq_len if length is None else length
  return np.asarray(tokens + [PAD] * (length - len(tokens)), np.int32)


def test_default_world_structure(grammar):
  assert grammar.vocab_size == 22 and grammar.seq_len == 26
  np.testing.assert_array_equal(np.bincount(grammar.word_phrase), np.full(6, 3))
  np.testing.assert_array_equal(np.bincount(grammar.phrase_sentence), np.full(2, 3))
  assert np.all(np.diff(grammar.phrase_words, axis=1) > 0)
  for j, words in enumerate(grammar.phrase_words):
    np.testing.assert_array_equal(grammar.word_phrase[words], j)
  assert grammar.hsm.config.tau == 2 and grammar.hsm.config.overlap == 0.0
  assert grammar.hsm.config.eps == 0.001


@pytest.mark.parametrize("fields, message", [
    ({"level_sizes": (18, 6, 3)}, r"GrammarConfig.level_sizes=\(18, 6, 3\) do not tile"),
    ({"level_sizes": (18,)}, "GrammarConfig.level_sizes"),
    ({"level_sizes": (64, 16, 4, 1), "parents": 4}, "over the exact sampler's limit"),
    ({"parents": 1}, "GrammarConfig.parents=1"),
    ({"tau": 4}, r"GrammarConfig.tau=4 is invalid: pass an integer in \[1, parents=3\]"),
    ({"pi": 0.0}, "GrammarConfig.pi=0.0"),
    ({"eps": 0.0}, "GrammarConfig.eps=0.0"),
    ({"order": "sorted"}, "GrammarConfig.order='sorted' is unknown: use one of random, fixed"),
    ({"graph_seed": -1}, "GrammarConfig.graph_seed=-1"),
])
def test_bad_configs_are_refused(fields, message):
  with pytest.raises(ConfigError, match=message):
    make_grammar(GrammarConfig(**fields))


def test_make_grammar_refuses_other_objects():
  with pytest.raises(ConfigError, match="not a GrammarConfig"):
    make_grammar({"tau": 2})


def test_sequences_and_ground_truth(grammar, sample):
  tokens = sample["tokens"]
  assert tokens.shape == (_N, 26) and tokens.dtype == np.int32
  assert np.all(tokens[:, 0] == BOS) and np.all((tokens == EOS).sum(axis=1) == 1)
  assert [a.shape for a in sample["a"]] == [(_N, 18), (_N, 6), (_N, 2)]
  assert sample["z"][0].dtype == np.float32
  words = tokens - NUM_SPECIAL
  is_word = tokens >= NUM_SPECIAL
  np.testing.assert_array_equal(sample["position_word"], np.where(is_word, words, -1))
  for i in range(_N):
    present = np.flatnonzero(sample["a"][0][i])
    np.testing.assert_array_equal(np.sort(words[i][is_word[i]]), present)
  at_sep = tokens == SEP
  np.testing.assert_array_equal(at_sep.sum(axis=1),
                                (sample["a"][0].astype(int) @ grammar.hsm.adjacency[0] > 0)
                                .sum(axis=1))
  np.testing.assert_array_equal(sample["position_phrase"] >= 0, is_word | at_sep)


def test_parse_round_trip(grammar, sample):
  found = parse(grammar, sample["tokens"])
  counts = sample["a"][0].astype(int) @ grammar.hsm.adjacency[0].astype(int)
  fragment_free = ~np.any((counts >= 1) & (counts < 2), axis=1)
  np.testing.assert_array_equal(found["grammatical"], fragment_free)
  ok = found["grammatical"]
  assert ok.mean() > 0.95
  for level in range(3):
    np.testing.assert_array_equal(found["a"][level][ok], sample["a"][level][ok])
  np.testing.assert_array_equal(found["position_word"], sample["position_word"])
  np.testing.assert_array_equal(found["position_phrase"], sample["position_phrase"])


def test_sampling_is_deterministic(grammar, sample):
  again = sample_grammar(jax.random.key(0), grammar, _N)
  other = sample_grammar(jax.random.key(1), grammar, _N)
  np.testing.assert_array_equal(sample["tokens"], again["tokens"])
  np.testing.assert_array_equal(sample["z"][0], again["z"][0])
  assert not np.array_equal(sample["tokens"], other["tokens"])


def test_world_is_almost_always_grammatical(grammar):
  tokens = sample_grammar(jax.random.key(2), grammar, 4000)["tokens"]
  assert grammatical_rate(grammar, tokens) >= 0.99


def test_fixed_order_sorts_groups_by_phrase():
  grammar = make_grammar(GrammarConfig(order="fixed"))
  out = sample_grammar(jax.random.key(3), grammar, _N)
  for tokens, phrases in zip(out["tokens"], out["position_phrase"]):
    assert np.all(np.diff(phrases[tokens == SEP]) > 0)
  shuffled = sample_grammar(jax.random.key(3), make_grammar(), _N)
  np.testing.assert_array_equal(out["a"][0], shuffled["a"][0])
  assert any(np.any(np.diff(p[t == SEP]) < 0)
             for t, p in zip(shuffled["tokens"], shuffled["position_phrase"]))


def test_hand_built_sequences(grammar):
  (a, b, c), (d, e, f) = grammar.phrase_words[:2]
  good = [_sequence(grammar), _sequence(grammar, [a, b]), _sequence(grammar, [d, e, f], [a, c]),
          _sequence(grammar, [a, b], length=5)]
  bad = {
      "fragment group": _sequence(grammar, [a, b], [d]),
      "repeated phrase": _sequence(grammar, [a, b], [b, c]),
      "mixed-phrase group": _sequence(grammar, [a, b, d]),
      "descending words": _sequence(grammar, [b, a]),
      "repeated word": _sequence(grammar, [a, a]),
      "empty group": _sequence(grammar, [a, b], []),
      "missing EOS": _sequence(grammar, [a, b], end=()),
      "token after EOS": _sequence(grammar, [a, b], end=(EOS, NUM_SPECIAL + d)),
      "unclosed group": _sequence(grammar, [a, b], end=(NUM_SPECIAL + d, NUM_SPECIAL + e, EOS)),
      "no BOS": np.concatenate([[PAD], _sequence(grammar, [a, b])[1:]]).astype(np.int32),
      "BOS inside": _sequence(grammar, [a, b], end=(BOS, EOS)),
  }
  for tokens in good:
    assert parse(grammar, tokens[None])["grammatical"].tolist() == [True], to_text(grammar, tokens)
  for name, tokens in bad.items():
    assert parse(grammar, tokens[None])["grammatical"].tolist() == [False], name
  found = parse(grammar, np.stack([_sequence(grammar, [d, e, f], [a, c]),
                                   bad["fragment group"], bad["mixed-phrase group"]]))
  np.testing.assert_array_equal(found["a"][1][:, :2], [[True, True], [True, False],
                                                       [True, False]])
  assert found["a"][0][1, d] and not found["a"][0][1, e]
  np.testing.assert_array_equal(found["position_phrase"][0, :8], [-1, 1, 1, 1, 1, 0, 0, 0])
  np.testing.assert_array_equal(found["position_word"][0, :8], [-1, d, e, f, -1, a, c, -1])


def test_to_text(grammar):
  (a, b, _), (d, e, f) = grammar.phrase_words[:2]
  tokens = _sequence(grammar, [a, b], [d, e, f])
  assert to_text(grammar, tokens) == f"<s> w{a} w{b} | w{d} w{e} w{f} | </s>"
  assert to_text(grammar, np.stack([tokens, _sequence(grammar)])) == [
      to_text(grammar, tokens), "<s> </s>"]


@pytest.mark.parametrize("tokens, message", [
    (np.zeros((2, 26), np.float32), "dtype float32: pass integer token ids"),
    (np.zeros(26, np.int32), r"shape \(26,\) are not a batch"),
    (np.full((1, 26), 22), r"outside this world's vocabulary \[0, 22\)"),
    (np.full((1, 26), -1), "outside this world's vocabulary"),
])
def test_bad_tokens_are_refused(grammar, tokens, message):
  with pytest.raises(DataError, match=message):
    parse(grammar, tokens)
