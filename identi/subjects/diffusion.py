"""A small epsilon-prediction diffusion model of 16 x 16 images: U-Net, cosine schedule, DDIM.

Time is continuous, t in [0, 1] (t = 0 clean, t = 1 noise), with the cosine schedule of Nichol &
Dhariwal (2021): alpha_bar(t) = f(t) / f(0), f(t) = cos^2(pi/2 (t + s) / (1 + s)), s = 0.008,
clipped below at ALPHA_BAR_MIN so that alpha_bar stays in (0, 1] (it reaches 0 at t = 1).
Continuous time lets DDIM use any number of steps without a discrete training grid; the network
sees t * 1000 in its sinusoidal embedding, the scale of the discrete T = 1000 schedule.

The U-Net's blocks are named modules whose `__call__` returns the block's feature map, so that
activations can be read or patched by '/'-joined module path with `flax.linen.intercept_methods`:

  time_embed  (n, 4 c0)           sinusoidal embedding of t, then a 2-layer MLP
  stem        (n, 16, 16, c0)     3x3 conv of the input
  down_0      (n, 16, 16, c0)     residual blocks; also the skip of up_0
  downsample_0 (n, 8, 8, c0)      strided 3x3 conv
  down_1      (n, 8, 8, c1)       residual blocks; also the skip of up_1
  downsample_1 (n, 4, 4, c1)
  mid         (n, 4, 4, c2)       residual blocks (and optional self-attention)
  up_1        (n, 8, 8, c1)       nearest upsampling, concatenated skip, residual blocks
  up_0        (n, 16, 16, c0)
  out         (n, 16, 16, C)      GroupNorm, SiLU, 3x3 conv: the predicted noise

Inside a block, residual blocks are 'res_0', 'res_1', ... (e.g. 'down_1/res_0').

Prompted (text-to-image) U-Net: with ``vocab_size > 0`` the model takes a third input, prompts as
int32 token ids ``(n, L)`` (0 = padding; an all-padding row is the empty prompt of classifier-free
guidance). A small text encoder, ``prompt`` (n, L, d): token embeddings and one self-attention
layer over the prompt's tokens, feeds (a) an attention-pooled summary, added to the time
embedding, and (b) cross-attention from the pixels of the ``mid`` and ``up_1`` stages to the
tokens (``mid/cross``, ``up_1/cross``). `guided_eps` combines a conditional and an unconditional
(or negative-prompt) prediction: eps_u + w (eps_c - eps_u).

Sampling: `ddim_sample(key, eps_fn, shape, num_steps)` runs DDIM (Song et al. 2021) from t = 1 to
t = 0 as one `jax.lax.scan` under jit; `eps_fn(x, t, step_index)` gives the noise prediction of
each step, so a caller can replace it on chosen steps (activation patching, steering).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

COSINE_S = 0.008
ALPHA_BAR_MIN = 1e-5
TIME_SCALE = 1000.0

EpsFn = Callable[[jax.Array, jax.Array, jax.Array], Any]


def alpha_bar(t: jax.Array) -> jax.Array:
  """The cosine schedule's signal fraction at time t in [0, 1]: 1 at t = 0, ALPHA_BAR_MIN at 1."""
  t = jnp.clip(jnp.asarray(t, jnp.float32), 0.0, 1.0)
  f = lambda u: jnp.cos(0.5 * jnp.pi * (u + COSINE_S) / (1 + COSINE_S)) ** 2
  return jnp.clip(f(t) / f(0.0), ALPHA_BAR_MIN, 1.0)


def _bcast(a: jax.Array, x: jax.Array) -> jax.Array:
  """A scalar or per-example (n,) array, shaped to broadcast against images x (n, ...)."""
  a = jnp.asarray(a, jnp.float32)
  return a.reshape(a.shape + (1,) * (x.ndim - a.ndim)) if a.ndim else a


def q_sample(key: jax.Array, x0: jax.Array, t: jax.Array,
             noise: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
  """Noises x0 to time t (scalar or (n,)): (x_t, noise), x_t = sqrt(ab) x0 + sqrt(1 - ab) noise."""
  if noise is None:
    noise = jax.random.normal(key, x0.shape, x0.dtype)
  ab = _bcast(alpha_bar(t), x0)
  return jnp.sqrt(ab) * x0 + jnp.sqrt(1.0 - ab) * noise, noise


def diffusion_loss(apply_fn: Callable[[jax.Array, jax.Array], jax.Array], key: jax.Array,
                   x0: jax.Array) -> jax.Array:
  """Mean squared error of the predicted noise, t ~ U[0, 1) per example (the 'simple' loss)."""
  t_key, n_key = jax.random.split(key)
  t = jax.random.uniform(t_key, (x0.shape[0],))
  x_t, noise = q_sample(n_key, x0, t)
  return jnp.mean(jnp.square(apply_fn(x_t, t) - noise))


def timestep_embedding(t: jax.Array, dim: int) -> jax.Array:
  """Sinusoidal embedding (n, dim) of times t (n,) in [0, 1], scaled by TIME_SCALE."""
  half = dim // 2
  freqs = jnp.exp(-math.log(10_000.0) * jnp.arange(half, dtype=jnp.float32) / half)
  args = (TIME_SCALE * t)[:, None] * freqs[None, :]
  emb = jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)
  return jnp.pad(emb, ((0, 0), (0, dim - 2 * half)))


def _groups(channels: int) -> int:
  return math.gcd(channels, 8)


class TimeEmbed(nn.Module):
  """Sinusoidal embedding of t followed by Dense-SiLU-Dense, width `dim`."""
  dim: int

  @nn.compact
  def __call__(self, t):
    h = timestep_embedding(t, self.dim)
    h = nn.Dense(self.dim, name="dense_0")(h)
    return nn.Dense(self.dim, name="dense_1")(nn.silu(h))


class ResBlock(nn.Module):
  """GroupNorm-SiLU-conv, plus the projected time embedding, GroupNorm-SiLU-conv, residual."""
  channels: int

  @nn.compact
  def __call__(self, x, temb):
    h = nn.Conv(self.channels, (3, 3), name="conv_0")(
        nn.silu(nn.GroupNorm(_groups(x.shape[-1]), name="norm_0")(x)))
    h = h + nn.Dense(self.channels, name="temb")(nn.silu(temb))[:, None, None, :]
    h = nn.Conv(self.channels, (3, 3), kernel_init=nn.initializers.zeros, name="conv_1")(
        nn.silu(nn.GroupNorm(_groups(self.channels), name="norm_1")(h)))
    if x.shape[-1] != self.channels:
      x = nn.Conv(self.channels, (1, 1), name="skip")(x)
    return x + h


class SelfAttention(nn.Module):
  """Single-head self-attention over the pixels of a (n, h, w, c) map, residual."""

  @nn.compact
  def __call__(self, x):
    n, h, w, c = x.shape
    y = nn.GroupNorm(_groups(c), name="norm")(x).reshape(n, h * w, c)
    y = nn.MultiHeadDotProductAttention(num_heads=1, out_kernel_init=nn.initializers.zeros,
                                        name="attn")(y)
    return x + y.reshape(n, h, w, c)


class CrossAttention(nn.Module):
  """Single-head attention from the pixels of a (n, h, w, c) map to prompt tokens (n, L, d)
  (padding masked; a row of only padding attends to nothing and adds 0), residual."""

  @nn.compact
  def __call__(self, x, context, mask):
    n, h, w, c = x.shape
    y = nn.GroupNorm(_groups(c), name="norm")(x).reshape(n, h * w, c)
    q = nn.Dense(c, use_bias=False, name="query")(y)
    k = nn.Dense(c, use_bias=False, name="key")(context)
    v = nn.Dense(c, use_bias=False, name="value")(context)
    logits = jnp.einsum("npc,nlc->npl", q, k) / math.sqrt(c)
    logits = jnp.where(mask[:, None, :], logits, -1e9)
    weights = jax.nn.softmax(logits, axis=-1) * jnp.any(mask, axis=-1)[:, None, None]
    out = jnp.einsum("npl,nlc->npc", weights, v)
    out = nn.Dense(c, kernel_init=nn.initializers.zeros, name="out")(out)
    return x + out.reshape(n, h, w, c)


class PromptEncoder(nn.Module):
  """Token embeddings and one pre-norm self-attention + MLP layer over a prompt's tokens
  (order-free: no positions, as paraphrases reorder the words); returns (tokens (n, L, dim),
  pooled (n, dim)): attention pooling by a learned query, or a learned vector for the empty
  prompt."""
  vocab_size: int
  dim: int

  @nn.compact
  def __call__(self, tokens):
    mask = tokens > 0
    h = nn.Embed(self.vocab_size, self.dim, name="embed")(tokens)
    y = nn.LayerNorm(name="norm_0")(h)
    y = nn.MultiHeadDotProductAttention(num_heads=2, name="attn")(
        y, y, mask=nn.make_attention_mask(mask, mask))
    h = h + jnp.where(mask[..., None], y, 0.0)
    y = nn.Dense(self.dim, name="mlp_1")(nn.silu(nn.Dense(2 * self.dim, name="mlp_0")(
        nn.LayerNorm(name="norm_1")(h))))
    h = h + y
    query = self.param("pool_query", nn.initializers.normal(1.0), (self.dim,))
    logits = jnp.where(mask, jnp.einsum("nld,d->nl", h, query) / math.sqrt(self.dim), -1e9)
    pooled = jnp.einsum("nl,nld->nd", jax.nn.softmax(logits, axis=-1), h)
    empty = self.param("empty", nn.initializers.normal(1.0), (self.dim,))
    pooled = jnp.where(jnp.any(mask, axis=-1, keepdims=True), pooled, empty)
    return h, pooled


class Stage(nn.Module):
  """`num_res_blocks` residual blocks at one resolution; for an up stage, x is first upsampled
  (nearest) to the skip's size and concatenated with it. With a prompt context, a cross-attention
  layer follows the first residual block. Returns the stage's feature map."""
  channels: int
  num_res_blocks: int
  attention: bool = False

  @nn.compact
  def __call__(self, x, temb, skip=None, context=None):
    if skip is not None:
      n, h, w, c = x.shape
      x = jax.image.resize(x, (n, skip.shape[1], skip.shape[2], c), "nearest")
      x = jnp.concatenate([x, skip], axis=-1)
    for i in range(self.num_res_blocks):
      x = ResBlock(self.channels, name=f"res_{i}")(x, temb)
      if self.attention and i == 0:
        x = SelfAttention(name="attn")(x)
      if context is not None and i == 0:
        x = CrossAttention(name="cross")(x, *context)
    return x


class Downsample(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Conv(x.shape[-1], (3, 3), strides=(2, 2), name="conv")(x)


class OutHead(nn.Module):
  out_channels: int

  @nn.compact
  def __call__(self, x):
    x = nn.silu(nn.GroupNorm(_groups(x.shape[-1]), name="norm")(x))
    return nn.Conv(self.out_channels, (3, 3), kernel_init=nn.initializers.zeros, name="conv")(x)


class UNet(nn.Module):
  """Epsilon-prediction U-Net on (n, H, W, C) images, H and W divisible by 4.

  Attributes:
    channels: widths (c0, c1, c2) at resolutions H, H/2 and H/4.
    num_res_blocks: residual blocks per stage.
    mid_attention: one self-attention layer in the H/4 stage.
    out_channels: channels of the predicted noise; 0 means those of the input.
    vocab_size: prompt vocabulary (0: an unconditional model, called as (x, t)).
    text_dim: width of the prompt encoder.
  """
  channels: Sequence[int] = (32, 64, 64)
  num_res_blocks: int = 1
  mid_attention: bool = False
  out_channels: int = 0
  vocab_size: int = 0
  text_dim: int = 64

  @nn.compact
  def __call__(self, x, t, prompt=None):
    """x (n, H, W, C) noisy images, t a scalar or (n,) times in [0, 1], prompt (n, L) token ids
    (prompted models only) -> eps (n, H, W, C)."""
    c0, c1, c2 = self.channels
    x = jnp.asarray(x, jnp.float32)
    t = jnp.broadcast_to(jnp.asarray(t, jnp.float32), (x.shape[0],))
    temb = TimeEmbed(4 * c0, name="time_embed")(t)
    context = None
    if self.vocab_size:
      if prompt is None or prompt.ndim != 2 or prompt.shape[0] != x.shape[0]:
        raise ValueError("a prompted UNet needs prompt token ids of shape (n, L) beside x of "
                         f"shape {x.shape}; got {None if prompt is None else prompt.shape}")
      prompt = jnp.asarray(prompt, jnp.int32)
      tokens, pooled = PromptEncoder(self.vocab_size, self.text_dim, name="prompt")(prompt)
      temb = temb + nn.Dense(4 * c0, kernel_init=nn.initializers.zeros, name="prompt_proj")(pooled)
      context = (tokens, prompt > 0)
    elif prompt is not None:
      raise ValueError("this UNet is unconditional (vocab_size = 0): call it without a prompt")
    h = nn.Conv(c0, (3, 3), name="stem")(x)
    s0 = Stage(c0, self.num_res_blocks, name="down_0")(h, temb)
    s1 = Stage(c1, self.num_res_blocks, name="down_1")(Downsample(name="downsample_0")(s0), temb)
    h = Stage(c2, self.num_res_blocks, self.mid_attention, name="mid")(
        Downsample(name="downsample_1")(s1), temb, context=context)
    h = Stage(c1, self.num_res_blocks, name="up_1")(h, temb, s1, context=context)
    h = Stage(c0, self.num_res_blocks, name="up_0")(h, temb, s0)
    return OutHead(self.out_channels or x.shape[-1], name="out")(h)


BLOCK_NAMES = ("time_embed", "stem", "down_0", "downsample_0", "down_1", "downsample_1", "mid",
               "up_1", "up_0", "out")


def init_params(model: UNet, key: jax.Array, image_shape: Sequence[int],
                prompt_len: int = 0) -> Any:
  """The model's parameters for images of shape (H, W, C) (and prompts of `prompt_len` tokens
  for a prompted model)."""
  x = jnp.zeros((1, *image_shape), jnp.float32)
  args = (jnp.ones((1, prompt_len), jnp.int32),) if model.vocab_size else ()
  return model.init(key, x, jnp.zeros((1,), jnp.float32), *args)["params"]


def guided_eps(apply_fn: Callable[..., jax.Array], x: jax.Array, t: jax.Array, prompt: jax.Array,
               negative: jax.Array, guidance: float | jax.Array) -> jax.Array:
  """Classifier-free guidance: eps_n + w (eps_p - eps_n), with eps_p the prediction for `prompt`
  and eps_n for `negative` (the empty prompt, or a negative prompt), both from one call of
  `apply_fn(x2, t, prompts2)` on the stacked batch (so a patched block sees both halves)."""
  n = x.shape[0]
  eps = apply_fn(jnp.concatenate([x, x]), twice(t), jnp.concatenate([prompt, negative]))
  return eps[n:] + guidance * (eps[:n] - eps[n:])


def twice(t: jax.Array) -> jax.Array:
  """Times for a batch stacked twice: a scalar as it is, per-sample times repeated."""
  t = jnp.asarray(t)
  return t if t.ndim == 0 else jnp.concatenate([t, t])


def param_count(params: Any) -> int:
  return sum(int(a.size) for a in jax.tree.leaves(params))


def ddim_timesteps(num_steps: int) -> jax.Array:
  """The num_steps + 1 times 1 = t_0 > t_1 > ... > t_S = 0 of a DDIM run (uniform in t)."""
  return jnp.linspace(1.0, 0.0, num_steps + 1, dtype=jnp.float32)


def ddim_step(x: jax.Array, eps: jax.Array, t: jax.Array, t_prev: jax.Array, *,
              eta: float = 0.0, key: jax.Array | None = None,
              clip_x0: bool = True) -> jax.Array:
  """One DDIM update from time t to t_prev < t given the noise prediction eps.

  x0 is estimated as (x - sqrt(1 - ab) eps) / sqrt(ab), clipped to [-1, 1] if clip_x0 (the data
  range; the noise direction is then recomputed from the clipped x0). eta = 0 is deterministic
  DDIM; eta = 1 has the variance of ancestral (DDPM) sampling and needs a key.
  """
  ab, ab_prev = alpha_bar(t), alpha_bar(t_prev)
  x0 = (x - jnp.sqrt(1.0 - ab) * eps) / jnp.sqrt(ab)
  if clip_x0:
    x0 = jnp.clip(x0, -1.0, 1.0)
    eps = (x - jnp.sqrt(ab) * x0) / jnp.sqrt(1.0 - ab)
  sigma = eta * jnp.sqrt((1.0 - ab_prev) / (1.0 - ab) * (1.0 - ab / ab_prev))
  x_prev = jnp.sqrt(ab_prev) * x0 + jnp.sqrt(jnp.maximum(1.0 - ab_prev - sigma ** 2, 0.0)) * eps
  if eta:
    if key is None:
      raise ValueError("ddim_step with eta > 0 needs a key for its noise")
    x_prev = x_prev + sigma * jax.random.normal(key, x.shape, x.dtype)
  return x_prev


def _ddim_loop(key, eps_fn, shape, num_steps, eta, clip_x0, return_trajectory, has_aux,
               x_init=None):
  ts = ddim_timesteps(num_steps)
  if x_init is None:
    if key is None:
      raise ValueError("ddim_sample needs a key for its initial noise, or x_init")
    init_key, step_key = jax.random.split(key)
    x_T = jax.random.normal(init_key, shape, jnp.float32)
  else:
    if tuple(x_init.shape) != tuple(shape):
      raise ValueError(f"x_init has shape {x_init.shape}, not the sample shape {shape}")
    if eta and key is None:
      raise ValueError("ddim_sample with eta > 0 needs a key for its per-step noise")
    step_key, x_T = key, jnp.asarray(x_init, jnp.float32)

  def body(x, i):
    t, t_prev = ts[i], ts[i + 1]
    out = eps_fn(x, t, i)
    eps, aux = out if has_aux else (out, None)
    x_prev = ddim_step(x, eps, t, t_prev, eta=eta, clip_x0=clip_x0,
                       key=jax.random.fold_in(step_key, i) if eta else None)
    return x_prev, {"x": x_prev if return_trajectory else None, "aux": aux}

  x0, per_step = jax.lax.scan(body, x_T, jnp.arange(num_steps))
  if not (return_trajectory or has_aux):
    return x0
  info = {}
  if return_trajectory:
    info["x"] = jnp.concatenate([x_T[None], per_step["x"]], axis=0)
  if has_aux:
    info["aux"] = per_step["aux"]
  return x0, info


@functools.partial(jax.jit, static_argnames=("eps_fn", "shape", "num_steps", "eta", "clip_x0",
                                             "return_trajectory", "has_aux"))
def ddim_sample(key: jax.Array | None, eps_fn: EpsFn, shape: tuple[int, ...],
                num_steps: int = 50, *, eta: float = 0.0, clip_x0: bool = True,
                return_trajectory: bool = False, has_aux: bool = False,
                x_init: jax.Array | None = None):
  """DDIM from x_1 ~ N(0, I) of `shape` to t = 0 in `num_steps` steps (jitted, a lax.scan).

  Args:
    key: PRNG key of the initial noise and of the per-step noise when eta > 0; may be None with
      x_init and eta = 0.
    eps_fn: `(x, t, step_index) -> eps` (or `(eps, aux)` if has_aux), with t a scalar time and
      step_index the scan index 0..num_steps-1 (both traced); typically
      `lambda x, t, i: model.apply({'params': params}, x, t)`. It is a static argument: pass the
      same function object to reuse the compiled sampler, or call ddim_sample inside your own
      jit with params as a traced argument that eps_fn closes over (as `sample` does).
    shape: (n, H, W, C) of the samples.
    num_steps: DDIM steps, at the times of `ddim_timesteps(num_steps)`.
    eta: 0 for deterministic DDIM, 1 for DDPM-like stochastic steps.
    clip_x0: clip each step's x0 estimate to the data range [-1, 1].
    return_trajectory: also return x at every time, x_1 first and the samples last.
    has_aux: eps_fn returns (eps, aux); the aux of every step is returned, stacked.
    x_init: the noise x_1 to start from (traced; e.g. the same noise for a steered and an
      unsteered run); None draws it from key.

  Returns:
    The samples x_0, or (x_0, info) if return_trajectory or has_aux, with info['x']
    (num_steps + 1, *shape) and/or info['aux'] (leaves with a leading num_steps axis).
  """
  return _ddim_loop(key, eps_fn, shape, num_steps, eta, clip_x0, return_trajectory, has_aux,
                    x_init)


@functools.partial(jax.jit, static_argnames=("model", "shape", "num_steps", "eta", "clip_x0"))
def sample(model: UNet, params: Any, key: jax.Array, shape: tuple[int, ...],
           num_steps: int = 50, eta: float = 0.0, clip_x0: bool = True,
           prompt: jax.Array | None = None, negative: jax.Array | None = None,
           guidance: float | jax.Array = 1.0) -> jax.Array:
  """DDIM samples of the model with `params` (traced, so new params do not recompile); a
  prompted model samples `prompt` with classifier-free guidance against `negative` (default the
  empty prompt)."""
  if prompt is None:
    eps_fn = lambda x, t, i: model.apply({"params": params}, x, t)
  else:
    negative = jnp.zeros_like(prompt) if negative is None else negative
    eps_fn = lambda x, t, i: guided_eps(functools.partial(model.apply, {"params": params}), x, t,
                                        prompt, negative, guidance)
  return _ddim_loop(key, eps_fn, shape, num_steps, eta, clip_x0, False, False)
