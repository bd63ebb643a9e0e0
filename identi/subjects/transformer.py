"""A small decoder-only transformer over token sequences: model, next-token loss, sampling.

GPT-style: token embedding plus a learned position embedding, pre-LayerNorm blocks (causal
multi-head self-attention, then a GELU MLP, each added to the residual stream), a final
LayerNorm and an untied linear head giving next-token logits. Token conventions are those of
`identi.subjects.grammar` (PAD = 0, BOS = 1, EOS = 2).

The model's parts are named modules whose `__call__` returns what they add to or make of the
residual stream, so that activations can be read or patched by '/'-joined module path with
`identi.hooks` (`flax.linen.intercept_methods`):

  embed        (n, T, d)     token plus position embeddings: the residual stream entering block_0
  block_0      (n, T, d)     the residual stream after block 0
  block_0/attn (n, T, d)     block 0's attention output (added to the stream)
  block_0/mlp  (n, T, d)     block 0's MLP output (added to the stream)
  ...
  block_{L-1}  (n, T, d)     the residual stream after the last block
  final_norm   (n, T, d)     LayerNorm of the last residual stream
  head         (n, T, V)     the logits

Sampling: `sample(key, logits_fn, prompt, seq_len)` draws tokens left to right as one
`jax.lax.scan` under jit, recomputing the full causal forward pass at every position (cheap at
a few dozen tokens); `logits_fn(tokens) -> logits` is any function, so a caller can patch the
model (steering, ablation) as `diffusion.ddim_sample` takes `eps_fn`.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from identi.errors import ConfigError, DataError
from identi.checks import check_key, is_int
from identi.subjects.grammar import BOS, EOS, PAD

LogitsFn = Callable[[jax.Array], jax.Array]
_INIT = nn.initializers.normal(0.02)


class Embed(nn.Module):
  """Token embedding plus a learned position embedding of up to `seq_len` positions."""
  vocab_size: int
  seq_len: int
  d_model: int

  @nn.compact
  def __call__(self, tokens):
    x = nn.Embed(self.vocab_size, self.d_model, embedding_init=_INIT, name="token")(tokens)
    position = self.param("position", _INIT, (self.seq_len, self.d_model))
    return x + position[:tokens.shape[1]]


class Mlp(nn.Module):
  """Dense (ratio x width), GELU, Dense back to the width."""
  ratio: int

  @nn.compact
  def __call__(self, x):
    h = nn.gelu(nn.Dense(self.ratio * x.shape[-1], kernel_init=_INIT, name="dense_0")(x))
    return nn.Dense(x.shape[-1], kernel_init=_INIT, name="dense_1")(h)


class Attention(nn.Module):
  """Causal multi-head self-attention."""
  num_heads: int

  @nn.compact
  def __call__(self, x):
    mask = nn.make_causal_mask(jnp.ones(x.shape[:2], bool))
    return nn.MultiHeadDotProductAttention(self.num_heads, kernel_init=_INIT, name="mha")(
        x, mask=mask)


class Block(nn.Module):
  """Pre-LayerNorm block: x + attn(norm(x)), then + mlp(norm(x)); returns the residual stream."""
  num_heads: int
  mlp_ratio: int

  @nn.compact
  def __call__(self, x):
    x = x + Attention(self.num_heads, name="attn")(nn.LayerNorm(name="norm_0")(x))
    return x + Mlp(self.mlp_ratio, name="mlp")(nn.LayerNorm(name="norm_1")(x))


class Transformer(nn.Module):
  """Decoder-only transformer: int tokens (n, T), T <= seq_len -> next-token logits (n, T, V).

  Attributes:
    vocab_size: number of token ids V.
    seq_len: longest sequence (positions with an embedding).
    d_model: width of the residual stream; a multiple of num_heads.
    num_layers: number of blocks.
    num_heads: attention heads per block.
    mlp_ratio: MLP width over d_model.
  """
  vocab_size: int
  seq_len: int
  d_model: int = 128
  num_layers: int = 2
  num_heads: int = 4
  mlp_ratio: int = 4

  @nn.compact
  def __call__(self, tokens):
    if tokens.ndim != 2 or tokens.shape[1] > self.seq_len:
      raise DataError(f"tokens of shape {tokens.shape} do not fit the transformer: pass "
                      f"(n, T) token ids with T <= seq_len={self.seq_len}")
    x = Embed(self.vocab_size, self.seq_len, self.d_model, name="embed")(tokens)
    for i in range(self.num_layers):
      x = Block(self.num_heads, self.mlp_ratio, name=f"block_{i}")(x)
    x = nn.LayerNorm(name="final_norm")(x)
    return nn.Dense(self.vocab_size, kernel_init=_INIT, name="head")(x)


def block_names(model: Transformer) -> tuple[str, ...]:
  """The module paths of the residual stream, in order: 'embed', 'block_0', ..."""
  return ("embed",) + tuple(f"block_{i}" for i in range(model.num_layers))


def init_params(model: Transformer, key: jax.Array) -> Any:
  """The model's parameters."""
  return model.init(key, jnp.zeros((1, model.seq_len), jnp.int32))["params"]


def param_count(params: Any) -> int:
  return sum(int(a.size) for a in jax.tree.leaves(params))


def lm_loss(logits: jax.Array, tokens: jax.Array) -> jax.Array:
  """Mean next-token cross-entropy of `logits` (n, T, V) on `tokens` (n, T): position t predicts
  token t + 1; PAD targets are left out (the mean is over the others)."""
  targets = tokens[:, 1:]
  log_probs = jax.nn.log_softmax(logits[:, :-1].astype(jnp.float32))
  nll = -jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
  mask = (targets != PAD).astype(jnp.float32)
  return jnp.sum(nll * mask) / jnp.maximum(jnp.sum(mask), 1.0)


@functools.partial(jax.jit, static_argnames=("logits_fn", "seq_len", "temperature"))
def _sample(key, logits_fn, prompt, seq_len, temperature):
  n, k = prompt.shape
  tokens = jnp.full((n, seq_len), PAD, jnp.int32).at[:, :k].set(prompt)

  def body(carry, t):
    tokens, ended = carry
    logits = jax.lax.dynamic_index_in_dim(logits_fn(tokens), t - 1, axis=1, keepdims=False)
    if temperature:
      token = jax.random.categorical(jax.random.fold_in(key, t),
                                     logits.astype(jnp.float32) / temperature)
    else:
      token = jnp.argmax(logits, axis=-1)
    token = jnp.where(ended, PAD, token).astype(jnp.int32)
    tokens = jax.lax.dynamic_update_slice_in_dim(tokens, token[:, None], t, axis=1)
    return (tokens, ended | (token == EOS)), None

  (tokens, _), _ = jax.lax.scan(body, (tokens, jnp.any(prompt == EOS, axis=1)),
                                jnp.arange(k, seq_len))
  return tokens


def sample(key: jax.Array, logits_fn: LogitsFn, prompt: int | jax.Array, seq_len: int,
           temperature: float = 1.0) -> jax.Array:
  """Autoregressive samples (jitted, a lax.scan over positions).

  Args:
    key: PRNG key; token t is drawn with `fold_in(key, t)`.
    logits_fn: `tokens (n, seq_len) -> logits (n, seq_len, V)`, causal; typically
      `lambda t: model.apply({'params': params}, t)`. It is a static argument: pass the same
      function object to reuse the compiled sampler, or call `sample` inside your own jit with
      params as a traced argument that logits_fn closes over.
    prompt: a batch size n (every sequence starts with BOS alone) or int tokens (n, k), k >= 1,
      BOS first, that every sequence starts with.
    seq_len: length of the returned sequences.
    temperature: logits are divided by it; 0 takes the most likely token.

  Returns:
    int32 (n, seq_len) tokens: the prompt, then sampled tokens, PAD after the first EOS.
  """
  key = check_key(key)
  if not is_int(seq_len) or seq_len < 1:
    raise ConfigError(f"seq_len={seq_len!r} is invalid: pass the sequence length, an integer >= 1")
  if not isinstance(temperature, (int, float)) or not temperature >= 0:
    raise ConfigError(f"temperature={temperature!r} is invalid: pass a float >= 0 (1 samples "
                      "the model's distribution, 0 takes the most likely token)")
  if is_int(prompt):
    if prompt < 1:
      raise ConfigError(f"prompt={prompt} sequences is invalid: pass a batch size >= 1")
    prompt = jnp.full((int(prompt), 1), BOS, jnp.int32)
  prompt = jnp.asarray(prompt)
  if (prompt.ndim != 2 or not 1 <= prompt.shape[1] <= seq_len
      or not jnp.issubdtype(prompt.dtype, jnp.integer)):
    raise DataError(f"prompt of shape {prompt.shape} and dtype {prompt.dtype} does not fit: pass "
                    f"integer tokens (n, k) with 1 <= k <= seq_len={seq_len}, BOS first, or a "
                    "batch size")
  return _sample(key, logits_fn, prompt.astype(jnp.int32), int(seq_len), float(temperature))
