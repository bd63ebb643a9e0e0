"""Tests for identi.subjects.transformer (the decoder-only subject, its loss and its sampler)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from identi import hooks
from identi.errors import ConfigError, DataError
from identi.subjects import transformer
from identi.subjects.grammar import BOS, EOS, PAD

_V, _T, _D = 12, 10, 16

# The module's fixtures are expensive: one worker runs all its tests (make test's --dist loadgroup).
pytestmark = pytest.mark.xdist_group("transformer")


@pytest.fixture(scope="session")
def model_and_params():
  model = transformer.Transformer(vocab_size=_V, seq_len=_T, d_model=_D, num_layers=2,
                                  num_heads=2)
  return model, transformer.init_params(model, jax.random.key(0))


def _tokens(key=1, n=3, length=_T):
  return jax.random.randint(jax.random.key(key), (n, length), 0, _V)


def test_shapes_and_parameter_count(model_and_params):
  model, params = model_and_params
  variables = {"params": params}
  assert model.apply(variables, _tokens()).shape == (3, _T, _V)
  assert model.apply(variables, _tokens(length=4)).shape == (3, 4, _V)
  per_block = 4 * (_D * _D + _D) + 2 * 2 * _D + (4 * _D * _D + 4 * _D) + (4 * _D * _D + _D)
  expected = _V * _D + _T * _D + 2 * per_block + 2 * _D + _D * _V + _V
  assert transformer.param_count(params) == expected
  with pytest.raises(DataError, match="T <= seq_len=10"):
    model.apply(variables, _tokens(length=_T + 1))


def test_causality(model_and_params):
  model, params = model_and_params
  tokens = _tokens()
  logits = model.apply({"params": params}, tokens)
  for t in range(_T - 1):
    changed = tokens.at[:, t + 1].set((tokens[:, t + 1] + 1) % _V)
    other = model.apply({"params": params}, changed)
    np.testing.assert_allclose(other[:, :t + 1], logits[:, :t + 1], atol=1e-6)
    assert not np.allclose(other[:, t + 1], logits[:, t + 1])


def test_loss_masks_pad_targets():
  logits = jax.random.normal(jax.random.key(2), (2, 5, _V))
  tokens = jnp.array([[BOS, 4, 5, EOS, PAD], [BOS, 6, EOS, PAD, PAD]])
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  picks = [(0, 0, 4), (0, 1, 5), (0, 2, EOS), (1, 0, 6), (1, 1, EOS)]
  expected = -np.mean([log_probs[i, t, k] for i, t, k in picks])
  assert float(transformer.lm_loss(logits, tokens)) == pytest.approx(expected, rel=1e-5)
  # Logits whose target is PAD (or past the end) do not count.
  moved = logits.at[0, 3:].add(7.0).at[1, 2:].add(-3.0)
  assert float(transformer.lm_loss(moved, tokens)) == pytest.approx(expected, rel=1e-5)


def test_sampler_is_deterministic_and_pads_after_eos(model_and_params):
  model, params = model_and_params
  logits_fn = lambda t: model.apply({"params": params}, t)
  first = transformer.sample(jax.random.key(3), logits_fn, 64, _T)
  again = transformer.sample(jax.random.key(3), logits_fn, 64, _T)
  other = transformer.sample(jax.random.key(4), logits_fn, 64, _T)
  assert first.shape == (64, _T) and first.dtype == jnp.int32
  np.testing.assert_array_equal(first, again)
  assert not np.array_equal(first, other)
  assert np.all(np.asarray(first[:, 0]) == BOS)
  # A logits_fn that favours EOS: every sequence ends, and only PAD follows its EOS.
  eos_fn = lambda t: jnp.broadcast_to(jnp.where(jnp.arange(_V) == EOS, 3.0, 0.0), t.shape + (_V,))
  for tokens in (np.asarray(first), np.asarray(transformer.sample(jax.random.key(5), eos_fn, 64,
                                                                  _T))):
    for row in tokens:
      ends = np.flatnonzero(row == EOS)
      if len(ends):
        assert np.all(row[ends[0] + 1:] == PAD)
  ended = np.asarray(transformer.sample(jax.random.key(5), eos_fn, 64, _T))
  assert np.mean(np.any(ended == EOS, axis=1)) > 0.9


def test_sampler_prompt_and_greedy(model_and_params):
  model, params = model_and_params
  logits_fn = lambda t: model.apply({"params": params}, t)
  prompt = jnp.array([[BOS, 5, 6], [BOS, 7, 8]], jnp.int32)
  out = transformer.sample(jax.random.key(6), logits_fn, prompt, _T, temperature=0.0)
  np.testing.assert_array_equal(out[:, :3], prompt)
  logits = logits_fn(out)
  for t in range(3, _T):
    live = ~np.any(np.asarray(out[:, :t]) == EOS, axis=1)
    np.testing.assert_array_equal(np.asarray(out[live, t]),
                                  np.argmax(np.asarray(logits[live, t - 1]), axis=-1))
  with pytest.raises(DataError, match="prompt of shape"):
    transformer.sample(jax.random.key(6), logits_fn, jnp.zeros((2, _T + 1), jnp.int32), _T)
  with pytest.raises(ConfigError, match="temperature=-1.0"):
    transformer.sample(jax.random.key(6), logits_fn, 2, _T, temperature=-1.0)


def test_hooks_read_and_patch_the_residual_stream(model_and_params):
  model, params = model_and_params
  variables, tokens = {"params": params}, _tokens()
  paths = transformer.block_names(model) + ("block_0/attn", "block_0/mlp", "final_norm")
  logits, acts = hooks.capture(model.apply, variables, tokens, paths=paths)
  assert transformer.block_names(model) == ("embed", "block_0", "block_1")
  for path in paths:
    assert acts[path].shape == (3, _T, _D), path
  np.testing.assert_allclose(acts["block_0"],
                             acts["embed"] + acts["block_0/attn"] + acts["block_0/mlp"],
                             atol=1e-5)
  zeroed = hooks.patch(model.apply, variables, tokens, path="block_0", edit_fn=jnp.zeros_like)
  assert zeroed.shape == logits.shape and not np.allclose(zeroed, logits)
  patched_fn = lambda t: hooks.patch(model.apply, variables, t, path="block_0",
                                     edit_fn=jnp.zeros_like)
  out = transformer.sample(jax.random.key(7), patched_fn, 4, _T)
  assert out.shape == (4, _T)
