"""A BERT encoder in Flax Linen that runs pretrained Hugging Face BERT weights.

Post-LayerNorm BERT (``BertModel`` of the transformers library): word, position and token-type
embeddings summed and normalized, then blocks of bidirectional multi-head self-attention over
the unpadded keys and an exact (erf) GELU MLP, each added to the residual stream and followed by
a LayerNorm. `Bert.__call__` returns the last hidden state; the pooler is not part of it.

The parts are named modules whose `__call__` returns a hidden state, so that activations can be
read or patched by '/'-joined module path with `identi.hooks`:

  embed          (n, T, d)  the normalized embeddings: the hidden state entering block_0
  block_0        (n, T, d)  the hidden state after block 0 (transformers' hidden_states[1])
  block_0/attn   (n, T, d)  block 0's attention output, before its residual add and LayerNorm
  block_0/mlp    (n, T, d)  block 0's MLP output, before its residual add and LayerNorm
  ...
  block_{L-1}    (n, T, d)  the last hidden state (the model output)

`convert_weights` turns a transformers BERT state dict (numpy arrays by name, as
``safetensors.numpy`` reads them) into the module's parameters; `mean_pool` and
`sentence_embedding` are the pooling of sentence-transformers (masked mean, then L2 norm).
Matmuls run at float32 precision ("highest") by default, also on accelerators whose default
would round their inputs (TF32, bfloat16 passes).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from identi.errors import CheckpointError, ConfigError, DataError


@dataclasses.dataclass(frozen=True)
class BertConfig:
  """The architecture of a BERT encoder, with the field names of a transformers config.json."""
  vocab_size: int = 30522
  hidden_size: int = 384
  num_hidden_layers: int = 6
  num_attention_heads: int = 12
  intermediate_size: int = 1536
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12
  pad_token_id: int = 0

  def __post_init__(self):
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      ok = (isinstance(value, float) and value > 0) if field.type == "float" else (
          isinstance(value, int) and not isinstance(value, bool) and value >= 0)
      if not ok:
        raise ConfigError(f"BertConfig {field.name}={value!r} is invalid: pass a "
                          f"{'positive float' if field.type == 'float' else 'integer >= 0'}")
    if self.num_attention_heads < 1 or self.hidden_size % self.num_attention_heads:
      raise ConfigError(f"BertConfig hidden_size={self.hidden_size} is not a multiple of "
                        f"num_attention_heads={self.num_attention_heads}: fix config.json")

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> "BertConfig":
    """The config of a transformers BERT config.json (parsed); other keys are ignored.

    Raises ConfigError for an architecture this module does not implement (another activation
    or position embedding type, a decoder, a missing size).
    """
    if not isinstance(d, Mapping):
      raise ConfigError(f"a BERT config must be a dict (config.json), got {type(d).__name__}")
    if d.get("model_type", "bert") != "bert":
      raise ConfigError(f"config model_type={d.get('model_type')!r} is not 'bert': load a BERT "
                        "config.json")
    for key, want in (("hidden_act", "gelu"), ("position_embedding_type", "absolute"),
                      ("is_decoder", False)):
      if d.get(key, want) != want:
        raise ConfigError(f"config {key}={d[key]!r} is not supported: identi's BERT implements "
                          f"{key}={want!r} only")
    names = [f.name for f in dataclasses.fields(cls)]
    missing = [n for n in names[:6] if n not in d]
    if missing:
      raise ConfigError(f"config.json lacks {missing[0]!r}: pass a complete BERT config.json")
    kwargs = {n: d[n] for n in names if n in d and d[n] is not None}
    if "layer_norm_eps" in kwargs:
      kwargs["layer_norm_eps"] = float(kwargs["layer_norm_eps"])
    return cls(**kwargs)

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_attention_heads


def _norm(config: BertConfig, name: str) -> nn.LayerNorm:
  # The two-pass variance: the one-pass E[x^2] - E[x]^2 loses digits on BERT's hidden states.
  return nn.LayerNorm(epsilon=config.layer_norm_eps, use_fast_variance=False, name=name)


class Embeddings(nn.Module):
  """Word + position + token-type embeddings, then LayerNorm."""
  config: BertConfig

  @nn.compact
  def __call__(self, input_ids, token_type_ids):
    c = self.config
    x = nn.Embed(c.vocab_size, c.hidden_size, name="word")(input_ids)
    x = x + nn.Embed(c.max_position_embeddings, c.hidden_size, name="position")(
        jnp.arange(input_ids.shape[1])[None])
    x = x + nn.Embed(c.type_vocab_size, c.hidden_size, name="token_type")(token_type_ids)
    return _norm(c, "norm")(x)


class SelfAttention(nn.Module):
  """Bidirectional multi-head self-attention; padded keys (mask 0) get no weight."""
  config: BertConfig
  precision: Any = "highest"

  @nn.compact
  def __call__(self, x, attention_mask):
    c = self.config
    n, t, _ = x.shape

    def heads(name):
      y = nn.Dense(c.hidden_size, precision=self.precision, name=name)(x)
      return y.reshape(n, t, c.num_attention_heads, c.head_dim)

    q, k, v = heads("query"), heads("key"), heads("value")
    scores = jnp.einsum("nqhd,nkhd->nhqk", q, k, precision=self.precision) / np.sqrt(c.head_dim)
    keep = attention_mask[:, None, None, :].astype(bool)
    scores = jnp.where(keep, scores, jnp.finfo(scores.dtype).min)
    weights = jax.nn.softmax(scores, axis=-1)
    y = jnp.einsum("nhqk,nkhd->nqhd", weights, v, precision=self.precision)
    return nn.Dense(c.hidden_size, precision=self.precision, name="out")(
        y.reshape(n, t, c.hidden_size))


class Mlp(nn.Module):
  """Dense to intermediate_size, exact (erf) GELU, Dense back."""
  config: BertConfig
  precision: Any = "highest"

  @nn.compact
  def __call__(self, x):
    c = self.config
    h = nn.Dense(c.intermediate_size, precision=self.precision, name="up")(x)
    return nn.Dense(c.hidden_size, precision=self.precision, name="down")(
        nn.gelu(h, approximate=False))


class Block(nn.Module):
  """Post-LayerNorm block: h = norm(x + attn(x)), then norm(h + mlp(h))."""
  config: BertConfig
  precision: Any = "highest"

  @nn.compact
  def __call__(self, x, attention_mask):
    c = self.config
    h = _norm(c, "attn_norm")(x + SelfAttention(c, self.precision, name="attn")(x, attention_mask))
    return _norm(c, "mlp_norm")(h + Mlp(c, self.precision, name="mlp")(h))


class Bert(nn.Module):
  """BERT encoder: token ids (n, T) and attention mask (n, T) -> last hidden state (n, T, d).

  Attributes:
    config: the architecture (`BertConfig.from_dict(json.load(config.json))`).
    precision: matmul precision (a `jax.lax.Precision` or its name); None for JAX's default.
  """
  config: BertConfig
  precision: Any = "highest"

  @nn.compact
  def __call__(self, input_ids, attention_mask, token_type_ids=None):
    c = self.config
    check_inputs(c, input_ids, attention_mask, token_type_ids)
    if token_type_ids is None:
      token_type_ids = jnp.zeros_like(input_ids)
    x = Embeddings(c, name="embed")(input_ids, token_type_ids)
    for i in range(c.num_hidden_layers):
      x = Block(c, self.precision, name=f"block_{i}")(x, attention_mask)
    return x


def check_inputs(config: BertConfig, input_ids, attention_mask, token_type_ids=None) -> None:
  """Raises DataError unless the inputs are integer (n, T) arrays of one shape, T fitting."""
  shape = getattr(input_ids, "shape", None)
  limit = config.max_position_embeddings
  for name, a in (("input_ids", input_ids), ("attention_mask", attention_mask),
                  ("token_type_ids", token_type_ids)):
    if a is None and name == "token_type_ids":
      continue
    a_shape, dtype = getattr(a, "shape", None), getattr(a, "dtype", None)
    if (a_shape is None or len(a_shape) != 2 or a_shape != shape or not 1 <= a_shape[1] <= limit
        or not (jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.bool_))):
      got = f"{dtype}{list(a_shape)}" if a_shape is not None else type(a).__name__
      raise DataError(
          f"BERT {name} is {got}, input_ids {shape}: pass integer (n, T) arrays of one shape "
          f"with 1 <= T <= {limit} (identi.models.tokenize returns them)")


def block_names(config: BertConfig) -> tuple[str, ...]:
  """The module paths of the hidden states, in order: 'embed', 'block_0', ...; the same order
  as transformers' ``output_hidden_states``."""
  return ("embed",) + tuple(f"block_{i}" for i in range(config.num_hidden_layers))


def mean_pool(hidden, attention_mask):
  """The mean of `hidden` (n, T, d) over the positions where `attention_mask` (n, T) is 1."""
  mask = jnp.asarray(attention_mask).astype(hidden.dtype)[..., None]
  return jnp.sum(hidden * mask, axis=1) / jnp.maximum(jnp.sum(mask, axis=1), 1e-9)


def sentence_embedding(hidden, attention_mask):
  """Sentence-transformers' embedding: `mean_pool`, then division by the L2 norm (at least
  1e-12), as its Pooling(mean) and Normalize modules do."""
  pooled = mean_pool(hidden, attention_mask)
  norm = jnp.linalg.norm(pooled, axis=-1, keepdims=True)
  return pooled / jnp.maximum(norm, 1e-12)


# (parameter path under the block or embeddings, transformers name, torch Linear weight?)
_EMBED = ((("word", "embedding"), "word_embeddings.weight", False),
          (("position", "embedding"), "position_embeddings.weight", False),
          (("token_type", "embedding"), "token_type_embeddings.weight", False),
          (("norm", "scale"), "LayerNorm.weight", False),
          (("norm", "bias"), "LayerNorm.bias", False))
_BLOCK = tuple(
    item for ours, theirs in (
        (("attn", "query"), "attention.self.query"), (("attn", "key"), "attention.self.key"),
        (("attn", "value"), "attention.self.value"), (("attn", "out"), "attention.output.dense"),
        (("mlp", "up"), "intermediate.dense"), (("mlp", "down"), "output.dense"))
    for item in ((ours + ("kernel",), theirs + ".weight", True),
                 (ours + ("bias",), theirs + ".bias", False))) + tuple(
    item for ours, theirs in (("attn_norm", "attention.output.LayerNorm"),
                              ("mlp_norm", "output.LayerNorm"))
    for item in (((ours, "scale"), theirs + ".weight", False),
                 ((ours, "bias"), theirs + ".bias", False)))


def convert_weights(tensors: Mapping[str, np.ndarray], config: BertConfig) -> dict[str, Any]:
  """`Bert` parameters from a transformers BERT state dict (name -> numpy array).

  Names are transformers' (``embeddings.word_embeddings.weight``,
  ``encoder.layer.{i}.attention.self.query.weight``, ...), optionally under a ``bert.`` prefix
  (task heads' checkpoints); torch Linear weights (out, in) become Dense kernels (in, out).
  Other tensors (the pooler, ``position_ids``, task heads) are ignored. Arrays are float32.

  Raises:
    CheckpointError naming the first tensor that is missing, has the wrong shape or holds NaN/Inf.
  """
  prefix = "bert." if "bert.embeddings.word_embeddings.weight" in tensors else ""
  d, inner = config.hidden_size, config.intermediate_size
  shapes = {"word_embeddings.weight": (config.vocab_size, d),
            "position_embeddings.weight": (config.max_position_embeddings, d),
            "token_type_embeddings.weight": (config.type_vocab_size, d),
            "intermediate.dense.weight": (inner, d), "intermediate.dense.bias": (inner,),
            "output.dense.weight": (d, inner)}

  def take(name, suffix, transpose):
    if name not in tensors:
      raise CheckpointError(f"BERT weights lack tensor {name!r}: pass a complete transformers "
                            "BERT checkpoint (model.safetensors) that matches config.json")
    a = np.asarray(tensors[name])
    want = shapes.get(suffix, (d, d) if suffix.endswith("weight") and transpose else (d,))
    if a.shape != want or not np.issubdtype(a.dtype, np.floating):
      raise CheckpointError(f"BERT tensor {name!r} is {a.dtype}{list(a.shape)}, config.json "
                            f"implies float{list(want)}: the weights and config.json disagree")
    a = a.astype(np.float32)
    if not np.all(np.isfinite(a)):
      raise CheckpointError(f"BERT tensor {name!r} holds NaN or Inf: re-download the weights")
    return np.ascontiguousarray(a.T) if transpose else a

  def put(tree, path, value):
    for key in path[:-1]:
      tree = tree.setdefault(key, {})
    tree[path[-1]] = value

  params: dict[str, Any] = {}
  for path, name, transpose in _EMBED:
    put(params, ("embed",) + path, take(f"{prefix}embeddings.{name}", name, transpose))
  for i in range(config.num_hidden_layers):
    for path, name, transpose in _BLOCK:
      put(params, (f"block_{i}",) + path,
          take(f"{prefix}encoder.layer.{i}.{name}", name, transpose))
  return params
