"""Tests for identi.generators.hcm (the top-down hierarchical causal model)."""
import dataclasses

import chex
import jax
import numpy as np
import pytest
import scipy.special

from identi.errors import ConfigError
from identi.generators import (HCMConfig, HSMConfig, intervene, intervene_hcm, make_hcm,
                               make_hsm, sample_hcm, sample_hsm)

# Three wholes of two parts over six parts, caused by one top concept that causes two of them.
_TINY = HCMConfig(level_sizes=(6, 3, 1), min_parts=2, max_parts=2, overlap=0.0, pi_top=0.3,
                  graph_seed=0)
_N = 20000


def test_structure():
  hcm = make_hcm(HCMConfig(level_sizes=(30, 10, 4), min_parts=2, max_parts=3, overlap=0.2))
  chex.assert_shape(list(hcm.adjacency), [(30, 10), (10, 4)])
  for adj, w in zip(hcm.adjacency, hcm.weights):
    parts = adj.sum(axis=0)
    assert parts.min() >= 2 and parts.max() <= 3
    np.testing.assert_array_equal(w > 0, adj)
    assert w[adj].min() >= 5.0 and w[adj].max() <= 7.0
  np.testing.assert_array_equal(hcm.parents(1, 0), np.flatnonzero(hcm.adjacency[0][0]))


def test_marginals_follow_the_top_down_mechanism():
  hcm = make_hcm(_TINY)
  out = sample_hcm(jax.random.key(0), hcm, _N)
  chex.assert_shape(out["a"], [(_N, 6), (_N, 3), (_N, 1)])
  np.testing.assert_allclose(out["a"][2].mean(), 0.3, atol=0.012)
  sig = scipy.special.expit
  bias = _TINY.bias
  w2 = hcm.weights[1][:, 0]
  p2 = 0.3 * sig(w2 + bias) + 0.7 * sig(bias)
  np.testing.assert_allclose(out["a"][1].mean(axis=0), p2, atol=0.012)
  for a, m, z in zip(out["a"], out["m"], out["z"]):
    np.testing.assert_array_equal(z, np.where(a, m, 0.0))
  # A level-1 part of whole j given a[2][j]: sigmoid(w + bias) when present, sigmoid(bias) not.
  for j in range(3):
    for i in np.flatnonzero(hcm.adjacency[0][:, j]):
      on = out["a"][1][:, j]
      w = hcm.weights[0][i, j]
      np.testing.assert_allclose(out["a"][0][on, i].mean(), sig(w + bias), atol=0.03)
      np.testing.assert_allclose(out["a"][0][~on, i].mean(), sig(bias), atol=0.01)


def test_parts_depend_through_their_common_cause():
  hcm = make_hcm(_TINY)
  a1 = sample_hcm(jax.random.key(1), hcm, _N)["a"][0]
  corr = np.corrcoef(a1.T)
  siblings = np.flatnonzero(hcm.adjacency[0][:, 0])
  assert corr[siblings[0], siblings[1]] > 0.5
  orphan_whole = int(np.flatnonzero(~hcm.adjacency[1][:, 0])[0])
  stranger = np.flatnonzero(hcm.adjacency[0][:, orphan_whole])[0]
  assert abs(corr[siblings[0], stranger]) < 0.03


def test_do_on_a_part_leaves_the_whole_unchanged():
  hcm = make_hcm(_TINY)
  observed = sample_hcm(jax.random.key(2), hcm, _N)
  part = int(np.flatnonzero(hcm.adjacency[0][:, 0])[0])
  out = intervene_hcm(jax.random.key(2), hcm, _N, {f"a1[{part}]": 1})
  assert out["a"][0][:, part].all()
  for l in (1, 2):
    np.testing.assert_array_equal(out["a"][l], observed["a"][l])
    np.testing.assert_array_equal(out["z"][l], observed["z"][l])
  others = np.arange(6) != part
  np.testing.assert_array_equal(out["a"][0][:, others], observed["a"][0][:, others])
  chex.assert_trees_all_equal(out["pre"], observed)


def test_do_on_a_whole_switches_its_parts_on():
  hcm = make_hcm(_TINY)
  out = intervene_hcm(jax.random.key(3), hcm, _N, {"a2[0]": 1})
  np.testing.assert_array_equal(out["do"]["a2"][:, 0], 1)
  for i in np.flatnonzero(hcm.adjacency[0][:, 0]):
    expected = scipy.special.expit(hcm.weights[0][i, 0] + _TINY.bias)
    np.testing.assert_allclose(out["a"][0][:, i].mean(), expected, atol=0.012)
  np.testing.assert_array_equal(out["a"][2], out["pre"]["a"][2])


def test_hsm_and_hcm_answer_the_same_intervention_differently():
  hsm = make_hsm(HSMConfig(level_sizes=(6, 3), max_parents=2, overlap=0.0, pi=0.3, eps=0.05))
  hcm = make_hcm(dataclasses.replace(_TINY, level_sizes=(6, 3)))
  parts = hsm.parents(2, 0)
  selected = intervene(jax.random.key(4), hsm, _N, {f"a1[{parts[0]}]": 1, f"a1[{parts[1]}]": 1})
  assert selected["a"][1][:, 0].all()
  causal = intervene_hcm(jax.random.key(4), hcm, _N, {"a1": 1})
  np.testing.assert_array_equal(causal["a"][1], causal["pre"]["a"][1])
  hsm_a1 = sample_hsm(jax.random.key(5), hsm, _N)["a"][0]
  hcm_a1 = sample_hcm(jax.random.key(5), hcm, _N)["a"][0]
  siblings_hcm = np.flatnonzero(hcm.adjacency[0][:, 0])
  assert np.corrcoef(hsm_a1[:, parts].T)[0, 1] > 0.3
  assert np.corrcoef(hcm_a1[:, siblings_hcm].T)[0, 1] > 0.3


def test_same_seed_same_data_different_seed_different():
  hcm = make_hcm(_TINY)
  a = sample_hcm(jax.random.key(6), hcm, _N)
  b = sample_hcm(jax.random.key(6), hcm, _N)
  c = sample_hcm(jax.random.key(7), hcm, _N)
  chex.assert_trees_all_equal(a, b)
  assert not np.array_equal(a["z"][0], c["z"][0])


def test_observation_site():
  hcm = make_hcm(_TINY)
  mixing = np.eye(2, 6, dtype=np.float32)
  out = sample_hcm(jax.random.key(8), hcm, _N, mixing=mixing)
  np.testing.assert_allclose(out["x"], out["z"][0][:, :2], rtol=1e-6)


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(level_sizes=(4, 0)), r"level_sizes\[1\]=0 \(level 2\)"),
        (dict(min_parts=1), "at least 2 parts; set min_parts >= 2"),
        (dict(level_sizes=(3, 2), max_parts=4), "max_parts=4 exceeds the 3 concepts of level 1"),
        (dict(pi_top=1.2), r"pi_top=1.2 is outside \(0, 1\)"),
        (dict(weight_range=(2.0, 1.0)), "0 < low <= high"),
        (dict(bias=float("nan")), "bias=nan"),
        (dict(overlap=-0.1), r"overlap=-0.1.*\[0, 1\]"),
        (dict(magnitude="exp"), "lognormal, uniform"),
    ],
)
def test_impossible_settings_raise(overrides, match):
  with pytest.raises(ConfigError, match=match):
    make_hcm(dataclasses.replace(_TINY, **overrides))


def test_bad_arguments_raise():
  with pytest.raises(ConfigError, match="not an HCM"):
    sample_hcm(jax.random.key(0), _TINY, 5)
  with pytest.raises(ConfigError, match="levels 1..3"):
    intervene_hcm(jax.random.key(0), make_hcm(_TINY), 5, {"a7[0]": 1})
