"""Tests for identi.steer: code edits, steering in raw units, concept-graph closures."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from identi.errors import ConfigError, DataError
from identi.sae import init_sae, make_sae
from identi.steer import (ablate_units, edit, inject_units, parts_of, scale_units, set_units, steer,
                          steer_levels, wholes_of)

UNITS = np.array([1, 5, 9])

# The module's fixtures are expensive: one worker runs all its tests (make test's --dist loadgroup).
pytestmark = pytest.mark.xdist_group("steer")


@pytest.fixture(scope="session")
def sae():
  """A random ReLU SAE (16 units over d_in = 8) with input_scale != 1 and b_dec != 0."""
  x = 3.0 * np.abs(np.random.default_rng(0).normal(size=(32, 8))).astype(np.float32)
  model = make_sae("relu", 8, 16)
  variables = init_sae(model, jax.random.key(0), x)
  params = {**variables["params"], "b_enc": jnp.full((16,), 2.0)}  # units active
  return model, {**variables, "params": params}, x[:6]


def _encode(model, variables, x):
  return np.asarray(model.apply(variables, x, method="encode"))


def _by_hand(variables, x, old, new):
  """x moved by (new - old) times the decoder rows, in raw units."""
  w_dec = np.asarray(variables["params"]["W_dec"], np.float64)
  scale = float(variables["stats"]["input_scale"])
  return x + (np.asarray(new, np.float64) - old) @ w_dec / scale


def test_identity_edit_returns_x_or_the_reconstruction(sae):
  model, variables, x = sae
  assert float(variables["stats"]["input_scale"]) != 1.0
  np.testing.assert_allclose(steer(model, variables, x, lambda c: c), x, atol=1e-5)
  codes, x_hat = model.apply(variables, x)
  assert np.abs(x_hat - x).max() > 1e-2  # the SAE has a real error, which keep_error keeps
  np.testing.assert_allclose(steer(model, variables, x, lambda c: c, keep_error=False), x_hat,
                             atol=1e-5)
  np.testing.assert_allclose(
      steer(model, variables, x, edit("ablate", []), keep_error=False), x_hat, atol=1e-5)
  assert np.all(np.asarray(codes)[:, UNITS] > 0)


@pytest.mark.parametrize("kind,values,expected", [
    ("set", 2.0, lambda old: np.full_like(old, 2.0)),
    ("set", np.array([0.0, 1.0, 3.0]), lambda old: np.broadcast_to([0.0, 1.0, 3.0], old.shape)),
    ("scale", 3.0, lambda old: 3.0 * old),
    ("scale", -1.0, np.zeros_like),  # clipped at 0
    ("ablate", None, np.zeros_like),
    ("inject", np.arange(6.0)[:, None], lambda old: old + np.arange(6.0)[:, None]),
    ("inject", -1e3, np.zeros_like),  # clipped at 0
])
def test_edits_change_exactly_the_targeted_units(sae, kind, values, expected):
  model, variables, x = sae
  old = _encode(model, variables, x)
  new = np.asarray(edit(kind, UNITS, values)(jnp.asarray(old)))
  others = np.setdiff1d(np.arange(16), UNITS)
  np.testing.assert_array_equal(new[:, others], old[:, others])
  np.testing.assert_allclose(new[:, UNITS], expected(old[:, UNITS]), rtol=1e-6)
  assert np.all(new >= 0)
  steered = steer(model, variables, x, edit(kind, UNITS, values))
  chex.assert_shape(steered, x.shape)
  np.testing.assert_allclose(steered, _by_hand(variables, x, old, new), atol=1e-4)
  np.testing.assert_allclose(steer(model, variables, x, edit(kind, UNITS, values),
                                   keep_error=False),
                             _by_hand(variables, model.apply(variables, old, method="decode"),
                                      old, new), atol=1e-4)


def test_named_edits_equal_the_functions(sae):
  model, variables, x = sae
  codes = jnp.asarray(_encode(model, variables, x))
  pairs = [(edit("set", UNITS, 1.5), set_units(codes, UNITS, 1.5)),
           (edit("scale", UNITS, 0.5), scale_units(codes, UNITS, 0.5)),
           (edit("ablate", UNITS), ablate_units(codes, UNITS)),
           (edit("inject", UNITS, 0.25), inject_units(codes, UNITS, 0.25))]
  for fn, direct in pairs:
    np.testing.assert_array_equal(fn(codes), direct)


@pytest.mark.parametrize("keep_error", [True, False])
def test_jit_equals_eager(sae, keep_error):
  model, variables, x = sae
  for fn in (lambda c: c, edit("set", UNITS, 2.0), edit("scale", UNITS, 3.0),
             edit("ablate", UNITS), edit("inject", UNITS, np.ones(3))):
    eager = steer(model, variables, x, fn, keep_error=keep_error)
    jitted = jax.jit(lambda v, a, f=fn: steer(model, v, a, f, keep_error=keep_error))(variables, x)
    np.testing.assert_allclose(jitted, eager, atol=1e-5)
  codes = jnp.asarray(_encode(model, variables, x))
  for fn in (set_units, scale_units, inject_units):  # traced units and values
    np.testing.assert_allclose(jax.jit(fn)(codes, jnp.asarray(UNITS), jnp.full((6, 3), 2.0)),
                               fn(codes, UNITS, 2.0), atol=1e-6)
  np.testing.assert_array_equal(jax.jit(ablate_units)(codes, jnp.asarray(UNITS)),
                                ablate_units(codes, UNITS))


@pytest.fixture(scope="session")
def planted():
  """A TopK SAE (k = 3, input_scale 2) whose tied weights are a known orthonormal dictionary."""
  rng = np.random.default_rng(1)
  dictionary = np.linalg.qr(rng.normal(size=(24, 12)))[0].T.astype(np.float32)  # (12, 24) rows
  z = np.zeros((40, 12), np.float32)
  for row in z:
    row[rng.choice(12, 3, replace=False)] = rng.uniform(0.5, 1.5, 3)
  x = z @ dictionary
  model = make_sae("topk", 24, 12, k=3)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 24)))
  params = {**variables["params"], "W_enc": jnp.asarray(dictionary.T),
            "W_dec": jnp.asarray(dictionary), "b_dec": jnp.zeros((24,))}
  return model, {"params": params, "stats": {"input_scale": jnp.asarray(2.0)}}, x, z, dictionary


def test_ablating_a_planted_unit_removes_exactly_its_concept(planted):
  model, variables, x, z, dictionary = planted
  np.testing.assert_allclose(_encode(model, variables, x), 2.0 * z, atol=1e-5)
  for unit in (0, 7):
    for keep_error in (True, False):
      out = np.asarray(steer(model, variables, x, edit("ablate", [unit]), keep_error=keep_error))
      np.testing.assert_allclose(out, x - z[:, unit:unit + 1] * dictionary[unit], atol=1e-5)
      np.testing.assert_allclose(out @ dictionary[unit], 0.0, atol=1e-5)
      others = np.arange(12) != unit
      np.testing.assert_allclose(out @ dictionary[others].T, z[:, others], atol=1e-5)
  out = steer(model, variables, x, edit("inject", [3], 2.0))  # 2 code units = 1 raw unit
  np.testing.assert_allclose(out, x + dictionary[3], atol=1e-5)


def _graph():
  """Level 1 (5 parts) -> level 2 (3) -> level 3 (2); part 1 is shared by wholes 0 and 1."""
  b0 = np.zeros((5, 3), bool)
  b0[[0, 1, 1, 2, 3], [0, 0, 1, 1, 2]] = True
  b1 = np.zeros((3, 2), bool)
  b1[[0, 1, 2], [0, 0, 1]] = True
  return [b0, b1]


def _assert_closure(got, want):
  assert sorted(got) == sorted(want)
  for level, units in want.items():
    np.testing.assert_array_equal(got[level], units)
    assert np.issubdtype(got[level].dtype, np.integer)


def test_wholes_and_parts_closures():
  blocks = _graph()
  _assert_closure(wholes_of(blocks, 1, [1]), {1: [1], 2: [0, 1], 3: [0]})  # shared part
  _assert_closure(wholes_of(blocks, 1, [3, 0, 3]), {1: [0, 3], 2: [0, 2], 3: [0, 1]})
  _assert_closure(wholes_of(blocks, 1, [4]), {1: [4], 2: [], 3: []})
  _assert_closure(wholes_of(blocks, 2, np.array([2])), {2: [2], 3: [1]})
  _assert_closure(wholes_of(blocks, 3, [1]), {3: [1]})
  _assert_closure(parts_of(blocks, 3, [0]), {3: [0], 2: [0, 1], 1: [0, 1, 2]})
  _assert_closure(parts_of(blocks, 3, [1]), {3: [1], 2: [2], 1: [3]})
  _assert_closure(parts_of(blocks, 2, [1]), {2: [1], 1: [1, 2]})
  _assert_closure(parts_of(blocks, 1, [2, 2]), {1: [2]})
  _assert_closure(parts_of(blocks, 2, []), {2: [], 1: []})


def test_steer_levels_edits_only_the_given_levels(planted):
  model, variables, x, z, dictionary = planted
  blocks = [np.eye(12, dtype=bool), np.eye(12, dtype=bool)]  # unit i of each level is one concept
  closure = wholes_of(blocks, 1, [4])
  xs = [x, 2.0 * x, 3.0 * x]
  out = steer_levels([model] * 3, [variables] * 3, xs,
                     {l: edit("ablate", u) for l, u in closure.items() if l < 3})
  assert len(out) == 3 and out[2] is xs[2]
  for level in (1, 2):
    np.testing.assert_allclose(out[level - 1], level * (x - z[:, 4:5] * dictionary[4]), atol=1e-5)
  np.testing.assert_allclose(steer_levels([model], [variables], [x], {1: edit("scale", [0], 1.0)},
                                          keep_error=False)[0], x, atol=1e-5)


def test_bad_inputs_raise_errors_naming_the_fix(sae):
  model, variables, x = sae
  codes = jnp.asarray(_encode(model, variables, x))
  with pytest.raises(DataError, match=r"units \[16\] are out of range for 16 units"):
    steer(model, variables, x, edit("ablate", [3, 16]))
  with pytest.raises(DataError, match=r"units \[-1\] are out of range"):
    set_units(codes, [-1], 1.0)
  with pytest.raises(DataError, match="appear more than once"):
    inject_units(codes, [2, 2], 1.0)
  with pytest.raises(DataError, match="pass a 1-D int array"):
    scale_units(codes, [[1, 2]], 2.0)
  with pytest.raises(DataError, match="pass a 1-D int array"):
    ablate_units(codes, [1.0])
  with pytest.raises(DataError, match=r"shape \(4,\), which does not broadcast"):
    set_units(codes, [1, 2, 3], np.ones(4))
  with pytest.raises(DataError, match="NaN or Inf"):
    inject_units(codes, [1], np.nan)
  with pytest.raises(DataError, match=r"x has shape \(6, 7\).*reshape activations to \(-1, 8\)"):
    steer(model, variables, x[:, :7], edit("ablate", [1]))
  with pytest.raises(DataError, match=r"x has shape \(8,\)"):
    steer(model, variables, x[0], edit("ablate", [1]))
  with pytest.raises(DataError, match="6 NaN and 0 Inf"):
    steer(model, variables, np.where(np.arange(8) == 3, np.nan, x), edit("ablate", [1]))
  with pytest.raises(DataError, match="return codes of the same shape"):
    steer(model, variables, x, lambda c: c[:, :4])
  with pytest.raises(ConfigError, match="unknown edit kind 'remove'; choose one of set, scale"):
    edit("remove", [1])
  with pytest.raises(ConfigError, match="needs values"):
    edit("inject", [1])
  with pytest.raises(ConfigError, match="takes no values"):
    edit("ablate", [1], 1.0)
  with pytest.raises(ConfigError, match="pass an identi SAE module"):
    steer(object(), variables, x, edit("ablate", [1]))
  with pytest.raises(DataError, match="out of range"):
    steer_levels([model], [variables], [x], {1: edit("ablate", [99])})
  with pytest.raises(DataError, match="key 2 but there are 1 levels"):
    steer_levels([model], [variables], [x], {2: edit("ablate", [1])})
  with pytest.raises(DataError, match="pass one of each per level"):
    steer_levels([model], [variables, variables], [x], {})


def test_bad_graphs_raise_errors_naming_the_fix():
  b0, b1 = _graph()
  with pytest.raises(DataError, match=r"blocks\[0\] has shape \(5, 3\) but blocks\[1\] has shape "
                     r"\(2, 2\).*blocks\[0\].shape\[1\] == blocks\[1\].shape\[0\]"):
    wholes_of([b0, np.zeros((2, 2), bool)], 1, [0])
  with pytest.raises(DataError, match="pass a 2-D bool adjacency"):
    parts_of([b0.astype(float), b1], 2, [0])
  with pytest.raises(DataError, match="non-empty list"):
    wholes_of([], 1, [0])
  with pytest.raises(DataError, match=r"level=4 is not a level of this 3-level graph"):
    wholes_of([b0, b1], 4, [0])
  with pytest.raises(DataError, match=r"level 2: units \[3\] are out of range for 3 units"):
    parts_of([b0, b1], 2, [3])
