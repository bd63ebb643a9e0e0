"""Tests for identi.generators.hsm (the hierarchical selection model)."""
import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from numpyro import handlers
from numpyro.infer import Predictive
from numpyro.infer.util import log_density

from identi.errors import ConfigError, DataError
from identi.generators import (HSMConfig, almost_complete_samples, default_world, generate_hsm,
                               hsm_model, intervene, make_hsm, sample_hsm)

# Six parts under three overlapping wholes ({2, 3, 4}, {0, 1, 5}, {0, 1, 3}), all three parents
# of one level-3 concept: a single component of 6 level-1 concepts (64 patterns) under two levels
# of selection.
_TINY = HSMConfig(level_sizes=(6, 3, 1), min_parents=2, max_parents=3, overlap=0.0, pi=0.35,
                  eps=0.2, graph_seed=0)
_N = 2000  # one sample count for the tiny world, so its sampler compiles once


def _patterns(c: int) -> np.ndarray:
  return ((np.arange(1 << c)[:, None] >> np.arange(c)) & 1).astype(np.int32)


def _model_log_probs(hsm) -> np.ndarray:
  """Normalised log probabilities of all level-1 patterns under the numpyro model's density."""
  n1 = hsm.level_sizes[0]

  def log_joint(bits):
    return log_density(hsm_model, (hsm, 1), {"intensities": False}, {"a1": bits[None]})[0]

  lp = jax.vmap(log_joint)(jnp.asarray(_patterns(n1)))
  return np.asarray(lp - jax.nn.logsumexp(lp), np.float64)


def _codes(a1: np.ndarray) -> np.ndarray:
  return (a1.astype(np.int64) << np.arange(a1.shape[1])).sum(axis=1)


def test_structure():
  hsm = make_hsm(HSMConfig(level_sizes=(30, 10, 4), min_parents=2, max_parents=3, overlap=0.2,
                           tau=2, graph_seed=3))
  chex.assert_shape(list(hsm.adjacency), [(30, 10), (10, 4)])
  for adj, w, tau in zip(hsm.adjacency, hsm.weights, hsm.tau):
    fan_in = adj.sum(axis=0)
    assert fan_in.min() >= 2 and fan_in.max() <= 3
    assert len({frozenset(np.flatnonzero(c)) for c in adj.T}) == adj.shape[1]
    np.testing.assert_array_equal(w > 0, adj)
    np.testing.assert_allclose(w.sum(axis=0), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(tau, 2)
  assert (hsm.adjacency[0].sum(axis=1) > 1).any(), "overlap=0.2 should share some parts"
  members = np.sort(np.concatenate(hsm.components))
  np.testing.assert_array_equal(members, np.arange(30))
  for s in hsm.support[1:]:
    for col in s.T:
      holders = {hsm.component_of(int(i)) for i in np.flatnonzero(col)}
      assert len(holders) == 1, "a whole's support must lie in one component"
  np.testing.assert_allclose(hsm.pi, hsm.config.pi * np.ones(30))
  np.testing.assert_array_equal(hsm.parents(2, 0), np.flatnonzero(hsm.adjacency[0][:, 0]))


def test_default_tau_zipf_and_graph_seed():
  config = HSMConfig(level_sizes=(12, 4), max_parents=3, zipf_exponent=1.0, pi=0.4, graph_seed=1)
  hsm = make_hsm(config)
  np.testing.assert_array_equal(hsm.tau[0], hsm.adjacency[0].sum(axis=0))
  np.testing.assert_allclose(np.sort(hsm.pi)[::-1], 0.4 / np.arange(1, 13))
  again = make_hsm(config)
  other = make_hsm(dataclasses.replace(config, graph_seed=2))
  np.testing.assert_array_equal(hsm.adjacency[0], again.adjacency[0])
  assert not np.array_equal(hsm.adjacency[0], other.adjacency[0])


def test_exact_tables_equal_model_log_density_and_samples_pass_chi_square():
  hsm = make_hsm(_TINY)
  assert [len(c) for c in hsm.components] == [6]
  model_lp = _model_log_probs(hsm)
  order = hsm.components[0]
  table = hsm.log_probs[0][_codes(_patterns(6)[:, np.argsort(order)])]
  np.testing.assert_allclose(table, model_lp, atol=1e-5)
  draws = [sample_hsm(jax.random.key(k), hsm, _N)["a"][0] for k in range(20)]
  num = 20 * _N
  counts = np.bincount(_codes(np.concatenate(draws)), minlength=64)
  expected = num * np.exp(model_lp)
  assert expected.min() >= 5, "every pattern keeps enough expected counts for the chi-square test"
  assert scipy.stats.chisquare(counts, expected * num / expected.sum()).pvalue > 1e-3


def test_emergence_and_intensities():
  config = HSMConfig(level_sizes=(20, 8, 3), max_parents=3, overlap=0.1, pi=0.4, tau=2, eps=0.3,
                     magnitude="uniform", graph_seed=2)
  hsm = make_hsm(config)
  out = sample_hsm(jax.random.key(1), hsm, 3000)
  for l in range(2):
    counts = out["a"][l].astype(int) @ hsm.adjacency[l].astype(int)
    np.testing.assert_array_equal(out["a"][l + 1], counts >= 2)
    np.testing.assert_allclose(np.log(out["m"][l + 1]), np.log(out["m"][l]) @ hsm.weights[l],
                               rtol=1e-4, atol=1e-5)
  for a, m, z in zip(out["a"], out["m"], out["z"]):
    np.testing.assert_array_equal(z, np.where(a, m, 0.0))
  m1 = out["m"][0]
  assert 0.5 <= m1.min() and m1.max() <= 1.5 and abs(m1.mean() - 1.0) < 0.01
  assert out["a"][0].dtype == np.bool_ and out["z"][0].dtype == np.float32
  chex.assert_shape(out["z"], [(3000, 20), (3000, 8), (3000, 3)])


def test_eps_one_gives_independent_level1_and_predictive_is_ancestral():
  config = HSMConfig(level_sizes=(8, 3), max_parents=3, pi=0.3, eps=1.0, graph_seed=0)
  hsm = make_hsm(config)
  a1 = sample_hsm(jax.random.key(2), hsm, 20000)["a"][0]
  corr = np.corrcoef(a1.T) - np.eye(8)
  assert np.abs(corr).max() < 0.03
  np.testing.assert_allclose(a1.mean(axis=0), 0.3, atol=0.015)
  pred = Predictive(hsm_model, num_samples=1, return_sites=["a1", "a2"])
  draws = pred(jax.random.key(3), hsm, 20000)
  pa1, pa2 = np.asarray(draws["a1"][0]), np.asarray(draws["a2"][0])
  np.testing.assert_allclose(pa1.mean(axis=0), 0.3, atol=0.02)
  np.testing.assert_array_equal(pa2, (pa1 @ hsm.adjacency[0]) >= hsm.tau[0])


def test_selection_creates_sibling_dependence_with_hand_computed_rates():
  # Two disjoint wholes of two parts: p(none) = (1-p)^2, p(one given part) = p(1-p) eps,
  # p(both) = p^2, each normalised by their sum. 70000 samples take two chunks.
  p, eps = 0.3, 0.1
  hsm = make_hsm(HSMConfig(level_sizes=(4, 2), max_parents=2, overlap=0.0, pi=p, eps=eps))
  out = sample_hsm(jax.random.key(4), hsm, 70000)
  chex.assert_shape(out["a"], [(70000, 4), (70000, 2)])
  norm = (1 - p) ** 2 + 2 * p * (1 - p) * eps + p ** 2
  whole, part = p ** 2 / norm, (p * (1 - p) * eps + p ** 2) / norm
  for rows in (slice(0, 35000), slice(35000, None)):
    np.testing.assert_allclose(out["a"][1][rows].mean(axis=0), whole, atol=0.008)
    np.testing.assert_allclose(out["a"][0][rows].mean(axis=0), part, atol=0.008)
  assert (out["m"][0] > 0).all()
  corr = np.corrcoef(out["a"][0].T)
  parents = [hsm.parents(2, j) for j in range(2)]
  assert corr[parents[0][0], parents[0][1]] > 0.7
  assert abs(corr[parents[0][0], parents[1][0]]) < 0.03


def test_do_on_missing_part_makes_the_whole_emerge():
  hsm = make_hsm(_TINY)
  base = almost_complete_samples(jax.random.key(5), hsm, _N, whole=1)
  parents, missing = hsm.parents(2, 1), base["missing"]
  assert missing == parents[0]
  present = [p for p in parents if p != missing]
  assert base["a"][0][:, present].all() and not base["a"][0][:, missing].any()
  assert not base["a"][1][:, 1].any()
  out = intervene(jax.random.key(6), hsm, _N, {f"a1[{missing}]": 1}, base=base)
  assert out["a"][1][:, 1].all()
  assert (out["z"][1][:, 1] > 0).all()
  others = np.arange(6) != missing
  np.testing.assert_array_equal(out["a"][0][:, others], base["a"][0][:, others])
  np.testing.assert_array_equal(out["m"][0], base["m"][0])
  np.testing.assert_array_equal(out["do"]["a1"][:, missing], 1)
  assert out["pre"] is base


def test_do_on_level2_leaves_level1_unchanged():
  hsm = make_hsm(_TINY)
  observed = sample_hsm(jax.random.key(7), hsm, _N)
  out = intervene(jax.random.key(7), hsm, _N, {"a2[0]": 1, "m2[0]": 2.0})
  np.testing.assert_array_equal(out["a"][0], observed["a"][0])
  np.testing.assert_array_equal(out["z"][0], observed["z"][0])
  assert out["a"][1][:, 0].all()
  np.testing.assert_array_equal(out["a"][1][:, 1:], observed["a"][1][:, 1:])
  np.testing.assert_allclose(out["z"][1][:, 0], 2.0)
  np.testing.assert_array_equal(out["a"][2][:, 0], observed["a"][1][:, 1:].all(axis=1))


def test_intervene_with_observation_and_whole_level_values():
  hsm = make_hsm(_TINY)
  mixing = np.eye(3, 6, dtype=np.float32)
  out = intervene(jax.random.key(8), hsm, _N, {"a1": 1}, mixing=mixing)
  assert out["a"][0].all() and out["a"][1].all() and out["a"][2].all()
  np.testing.assert_allclose(out["x"], out["z"][0][:, :3], rtol=1e-6)


@pytest.mark.parametrize(
    "do, error, match",
    [
        ({"b1[0]": 1}, ConfigError, "'a<level>'"),
        ({"a4[0]": 1}, ConfigError, "levels 1..3"),
        ({"a1[9]": 1}, ConfigError, r"index in \[0, 5\]"),
        ({"a1[0]": 2}, DataError, "0 or 1"),
        ({"m1[0]": -1.0}, DataError, "positive"),
        ({}, ConfigError, "non-empty dict"),
    ],
)
def test_bad_interventions_raise(do, error, match):
  with pytest.raises(error, match=match):
    intervene(jax.random.key(0), make_hsm(_TINY), 10, do)


def test_same_seed_same_data_different_seed_different():
  hsm = make_hsm(_TINY)
  a = sample_hsm(jax.random.key(9), hsm, _N)
  b = sample_hsm(jax.random.key(9), hsm, _N)
  c = sample_hsm(jax.random.key(10), hsm, _N)
  chex.assert_trees_all_equal(a, b)
  assert not np.array_equal(a["z"][0], c["z"][0])
  g1 = generate_hsm(jax.random.key(0), _TINY, _N, d=4, sigma=0.1)
  g2 = generate_hsm(jax.random.key(0), _TINY, _N, d=4, sigma=0.1)
  chex.assert_trees_all_equal(g1, g2)


def test_generate_hsm_carries_its_ground_truth():
  out = generate_hsm(jax.random.key(12), _TINY, _N, d=4)
  hsm = make_hsm(_TINY)
  np.testing.assert_allclose(out["x"], out["z"][0] @ out["mixing"]["A"].T, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(out["mixing"]["A"], axis=0), 1.0, rtol=1e-5)
  for g, adj in zip(out["graph"], hsm.adjacency):
    np.testing.assert_array_equal(g, adj)
  assert out["config"] == dataclasses.asdict(_TINY)
  assert out["view"] == {"kind": "superposition", "d": 4, "sigma": 0.0}
  level = generate_hsm(jax.random.key(12), _TINY, _N, view="level", d=3, level=2,
                       cumulative=True)
  chex.assert_shape([level["x"], level["mixing"]["A"]], [(_N, 3), (3, 4)])
  np.testing.assert_allclose(
      level["x"], np.concatenate(level["z"][1:], axis=1) @ level["mixing"]["A"].T, rtol=1e-4,
      atol=1e-6)
  nonlinear = generate_hsm(jax.random.key(12), _TINY, _N, view="nonlinear", d=5, depth=3)
  chex.assert_shape(nonlinear["mixing"]["layers"], (3, 5, 5))
  latents = generate_hsm(jax.random.key(12), _TINY, _N, view=None)
  assert "x" not in latents
  np.testing.assert_array_equal(latents["z"][0], out["z"][0])


def test_mcmc_matches_exact_marginals():
  hsm = make_hsm(HSMConfig(level_sizes=(5, 2), max_parents=3, overlap=0.3, pi=0.35, eps=0.2,
                           graph_seed=4))
  assert [len(c) for c in hsm.components] == [5]
  order = hsm.components[0]
  bits = _patterns(5)[:, np.argsort(order)]
  probs = np.exp(hsm.log_probs[0][_codes(bits)])
  exact_a1 = probs @ bits
  exact_a2 = probs @ ((bits @ hsm.adjacency[0]) >= hsm.tau[0])
  exact_joint = np.einsum("p,pi,pj->ij", probs, bits, bits)
  mcmc = sample_hsm(jax.random.key(14), hsm, 6000, method="mcmc", num_chains=600, num_warmup=30,
                    thinning=2)
  chex.assert_shape(mcmc["a"], [(6000, 5), (6000, 2)])
  np.testing.assert_allclose(mcmc["a"][0].mean(axis=0), exact_a1, atol=0.03)
  np.testing.assert_allclose(mcmc["a"][1].mean(axis=0), exact_a2, atol=0.03)
  a1 = mcmc["a"][0].astype(float)
  np.testing.assert_allclose(a1.T @ a1 / len(a1), exact_joint, atol=0.03)


def test_big_components_need_mcmc():
  big = HSMConfig(level_sizes=(18, 1), min_parents=18, max_parents=18)
  with pytest.raises(ConfigError, match="component of 18 level-1 concepts.*method='mcmc'"):
    make_hsm(big)
  hsm = make_hsm(big, method="mcmc")
  assert hsm.log_probs == (None,)
  with pytest.raises(ConfigError, match="component of 18 level-1 concepts"):
    sample_hsm(jax.random.key(0), hsm, 10)


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(level_sizes=(4, 0)), r"level_sizes\[1\]=0 \(level 2\)"),
        (dict(level_sizes=(-3, 2)), r"level_sizes\[0\]=-3"),
        (dict(level_sizes=()), "non-empty tuple"),
        (dict(level_sizes=(4, 2), max_parents=5),
         "max_parents=5 exceeds the 4 concepts of level 1"),
        (dict(min_parents=1), "at least 2 parts; set min_parents >= 2"),
        (dict(min_parents=3, max_parents=2), "max_parents=2 is invalid.*>= min_parents=3"),
        (dict(pi=0.0), r"pi=0.0 is outside \(0, 1\)"),
        (dict(pi=1.0), r"pi=1.0 is outside \(0, 1\)"),
        (dict(eps=0.0), r"eps=0.0 is outside \(0, 1\]"),
        (dict(eps=1.5), "or 1.0 to switch selection off"),
        (dict(overlap=1.5), r"overlap=1.5.*\[0, 1\]"),
        (dict(tau=3, max_parents=3), r"tau=3 is invalid.*\[1, min_parents=2\]"),
        (dict(zipf_exponent=-1.0), "zipf_exponent=-1.0"),
        (dict(magnitude="gamma"), "lognormal, uniform"),
        (dict(weight_range=(0.0, 1.0)), "0 < low <= high"),
        (dict(graph_seed=-1), "graph_seed=-1"),
        (dict(level_sizes=(4, 7), max_parents=2), "cannot give each a distinct set of parents"),
    ],
)
def test_impossible_settings_raise(overrides, match):
  config = dataclasses.replace(HSMConfig(level_sizes=(10, 3)), **overrides)
  with pytest.raises(ConfigError, match=match):
    make_hsm(config)


def test_entry_points_validate_their_arguments():
  hsm = make_hsm(_TINY)
  with pytest.raises(ConfigError, match="num_samples=0"):
    sample_hsm(jax.random.key(0), hsm, 0)
  with pytest.raises(ConfigError, match="method='gibbs' is unknown"):
    sample_hsm(jax.random.key(0), hsm, 5, method="gibbs")
  with pytest.raises(ConfigError, match="not a single JAX PRNG key"):
    sample_hsm(0, hsm, 5)
  with pytest.raises(ConfigError, match="not an HSM"):
    sample_hsm(jax.random.key(0), _TINY, 5)
  with pytest.raises(ConfigError, match="not a parent of concept 0"):
    almost_complete_samples(jax.random.key(0), hsm, 5, whole=0, missing=hsm.parents(2, 1)[0])
  with pytest.raises(DataError, match=r"pass a finite \(d, 6\) matrix"):
    intervene(jax.random.key(0), hsm, 5, {"a1[0]": 1}, mixing=np.ones((3, 4)))
  with pytest.raises(ConfigError, match="sigma=-1.0"):
    intervene(jax.random.key(0), hsm, 5, {"a1[0]": 1}, mixing=np.ones((3, 6)), sigma=-1.0)
  with pytest.raises(ConfigError, match="view='pixels' is unknown"):
    generate_hsm(jax.random.key(0), _TINY, 5, view="pixels")
  bad = dataclasses.replace(_TINY, eps=2.0)
  with pytest.raises(ConfigError, match="eps=2.0"):
    generate_hsm(jax.random.key(0), bad, 5)


def test_default_world_meets_the_experiment_requirements():
  config = default_world()
  hsm = make_hsm(config)
  assert config.level_sizes[0] >= 128 and len(config.level_sizes) >= 2 and config.eps > 0
  assert max(len(c) for c in hsm.components) <= 16
  assert (hsm.adjacency[0].sum(axis=1) > 1).any(), "the default world shares some parts"
  out = sample_hsm(jax.random.key(15), hsm, 20000)
  active = [a.sum(axis=1) for a in out["a"]]
  assert 4.0 <= active[0].mean() <= 10.0
  assert (active[1] > 0).mean() > 0.4
  assert (active[2] > 0).mean() > 0.001  # Level-3 wholes need 4 parts: rare, but they occur.


def test_model_trace_under_condition_gives_the_exact_likelihood_of_observations():
  hsm = make_hsm(_TINY)
  mixing = np.eye(6, dtype=np.float32)[:4]
  data = sample_hsm(jax.random.key(16), hsm, _N)
  x = data["z"][0][:3] @ mixing.T + 0.1
  values = {"a1": data["a"][0][:3].astype(np.int32), "m1": data["m"][0][:3]}
  trace = handlers.trace(handlers.condition(hsm_model, values)).get_trace(
      hsm, 3, mixing=mixing, sigma=0.5, x=x)
  expected = scipy.stats.norm(0.0, 0.5).logpdf(0.1) * 12
  np.testing.assert_allclose(trace["x"]["fn"].log_prob(trace["x"]["value"]), expected, rtol=1e-5)
