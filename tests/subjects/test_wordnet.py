"""The WordNet world: parsing WordNet 3.0, the lemma -> category -> top hierarchy, the halves and
the sentences."""

import numpy as np
import pytest

from identi.errors import ConfigError, DataError
from identi.models import minilm
from identi.subjects import wordnet
from identi.subjects.minilm_wordnet import default_config

# The module's fixtures are expensive: one worker runs all its tests (make test's --dist loadgroup).
pytestmark = pytest.mark.xdist_group("wordnet")


@pytest.fixture(scope="module")
def nouns():
  return wordnet.read_nouns()


@pytest.fixture(scope="module")
def vocab():
  return minilm.load_tokenizer(minilm.read_files()["tokenizer.json"]).get_vocab()


@pytest.fixture(scope="module")
def lexicon(nouns, vocab):
  w = default_config().world
  return wordnet.make_lexicon(nouns, vocab, min_lemmas=w.min_lemmas, max_lemmas=w.max_lemmas,
                              categories_per_top=w.categories_per_top,
                              lemmas_per_category=w.lemmas_per_category, split_seed=w.split_seed)


def test_wordnet_is_parsed_with_its_hypernym_chains(nouns):
  assert len(nouns.synsets) == 82115  # The noun synsets of WordNet 3.0.
  dog = nouns.senses["dog"][0]
  assert "dog" in nouns.synsets[dog].words
  names = {nouns.synsets[a].name for a in nouns.ancestors(dog)}
  assert {"canine", "carnivore", "placental", "mammal", "animal", "entity"} <= names
  assert nouns.synsets[dog].examples()[0].startswith("the dog barked")


def test_missing_wordnet_says_how_to_install_it(tmp_path):
  with pytest.raises(DataError, match="apt-get install wordnet-base"):
    wordnet.read_nouns(str(tmp_path))


def test_the_hierarchy_is_a_tree_of_one_piece_lemmas(lexicon, vocab):
  sizes = lexicon.level_sizes
  assert sizes[0] > 400 and sizes[1] >= 18 and sizes[2] == len(wordnet.TOP_CATEGORIES)
  assert all(l in vocab for l in lexicon.lemmas) and len(set(lexicon.lemmas)) == sizes[0]
  a1, a2 = lexicon.adjacency
  assert (a1.sum(1) == 1).all() and (a2.sum(1) == 1).all()  # One parent each.
  assert a1.sum(0).max() <= 24 and a1.sum(0).min() >= 2
  i = lexicon.lemmas.index("dog")
  cat = lexicon.category_of[i]
  assert lexicon.categories[cat] == "mammal" and lexicon.tops[lexicon.top_of[cat]] == "animal"


def test_every_category_has_lemmas_in_both_halves(lexicon):
  for c in range(len(lexicon.categories)):
    half = lexicon.fit_lemma[lexicon.category_of == c]
    assert half.any() and (~half).any()
  assert abs(lexicon.fit_lemma.mean() - 0.5) < 0.05


def test_sentences_use_their_lemma_and_alternate_halves(nouns, lexicon):
  s = wordnet.make_sentences(nouns, lexicon, templates=4, wordnet_per_lemma=2)
  for text, lemma in zip(s.text, s.lemma):
    assert lexicon.lemmas[lemma] in text.lower()
  first = s.lemma == 0
  np.testing.assert_array_equal(s.fit_sentence[first], np.arange(first.sum()) % 2 == 0)
  assert (s.source == 1).sum() > len(lexicon.lemmas)  # Most lemmas have WordNet sentences.
  with pytest.raises(ConfigError, match="world.templates"):
    wordnet.make_sentences(nouns, lexicon, templates=1, wordnet_per_lemma=0)


def test_impossible_category_sizes_are_config_errors(nouns, vocab):
  with pytest.raises(ConfigError, match="min_lemmas"):
    wordnet.make_lexicon(nouns, vocab, min_lemmas=50, max_lemmas=10, categories_per_top=1,
                         lemmas_per_category=4, split_seed=0)
  with pytest.raises(ConfigError, match="widen that range"):
    wordnet.make_lexicon(nouns, vocab, min_lemmas=5000, max_lemmas=6000, categories_per_top=1,
                         lemmas_per_category=4, split_seed=0)
