"""BatchTopK SAE (Bussmann, Leask and Nanda 2024, "BatchTopK Sparse Autoencoders").

Training keeps the k*B largest activations of the whole batch, so samples use a variable number of
latents with mean k. Inference must not depend on the batch, so it thresholds each sample with one
global threshold, estimated during training as a running average of the smallest kept activation.
"""

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from identi.errors import ConfigError
from identi.sae.topk import MODEL_AXIS, KSparseSAE, latent_shard_mesh


def _is_explicitly_sharded(x: jax.Array) -> bool:
  """Whether x's type carries an explicit sharding (jax.make_mesh's default axis type)."""
  return any(axis is not None for axis in jax.typeof(x).sharding.spec)


def _sharded_batch_topk(acts: jax.Array, k: int, mesh) -> tuple[jax.Array, jax.Array, jax.Array]:
  """`batch_topk_codes` under a mesh that shards latents: each (rows, latents) block offers its
  own k*B largest entries with their global positions, the blocks exchange only those candidates,
  and the k*B largest candidates (ties to the lower row, then latent, as `jax.lax.top_k` over the
  flattened batch) are the global selection; each block keeps the codes that fall in it."""
  batch, width = acts.shape
  total = k * batch
  rows = next((a for a in mesh.axis_names
               if a != MODEL_AXIS and batch % mesh.shape[a] == 0 and mesh.shape[a] > 1), None)
  axes = (rows, MODEL_AXIS) if rows else MODEL_AXIS

  def local(a):
    b, d = a.shape
    row0 = jax.lax.axis_index(rows) * b if rows else 0
    col0 = jax.lax.axis_index(MODEL_AXIS) * d
    values, flat = jax.lax.top_k(a.reshape(-1), min(total, b * d))
    r, c = flat // d + row0, flat % d + col0
    values, r, c = (jax.lax.all_gather(v, axes, tiled=True) for v in (values, r, c))
    order = jnp.lexsort((c, r))  # Global flattened order, so that ties go to the lower position.
    best, pos = jax.lax.top_k(values[order], total)
    r, c = r[order][pos] - row0, c[order][pos] - col0
    inside = (r >= 0) & (r < b) & (c >= 0) & (c < d)
    where = jnp.where(inside, r * d + c, b * d)  # Out of range: dropped by the scatter.
    codes = jnp.zeros((b * d,), a.dtype).at[where].set(best, mode="drop").reshape(b, d)
    positive = best > 0
    return codes, jnp.min(jnp.where(positive, best, jnp.inf)), jnp.any(positive)

  spec = P(rows, MODEL_AXIS)
  return jax.shard_map(local, mesh=mesh, in_specs=spec, out_specs=(spec, P(), P()),
                       check_vma=False)(acts)


def batch_topk_codes(acts: jax.Array, k: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Keeps the k*B largest entries of acts (B, d_sae) over the flattened batch.

  The selection is global. Under a mesh that shards the latents (`latent_shard_mesh`) it is
  two-stage and exact without gathering acts (`_sharded_batch_topk`); otherwise an explicitly
  sharded batch is gathered for the top-k and the codes are resharded like `acts` afterwards.

  Returns:
    (codes, min_kept, any_kept): codes of acts' shape; the smallest positive kept value (+inf if
    none) and whether any kept value is positive.
  """
  mesh = latent_shard_mesh(acts.shape[-1])
  if mesh is not None:
    return _sharded_batch_topk(acts, k, mesh)
  flat = acts.reshape(-1)
  explicit = _is_explicitly_sharded(flat)
  if explicit:
    flat = jax.sharding.reshard(flat, jax.typeof(flat).sharding.update(spec=P(None)))
  values, indices = jax.lax.top_k(flat, k * acts.shape[0])
  codes = jnp.zeros_like(flat).at[indices].set(values, unique_indices=True).reshape(acts.shape)
  if explicit:
    codes = jax.sharding.reshard(codes, jax.typeof(acts).sharding)
  positive = values > 0
  min_kept = jnp.min(jnp.where(positive, values, jnp.inf))
  return codes, min_kept, jnp.any(positive)


class BatchTopKSAE(KSparseSAE):
  """BatchTopK SAE with AuxK; stats hold the inference threshold and its running-average state.

  Stats (all float32 scalars): 'threshold' (the debiased running average used at inference; 0
  before any training step), 'threshold_ema' (the biased exponential moving average) and
  'threshold_steps' (how many batches fed the average, for Adam-style debiasing). They change only
  when apply runs in training mode with mutable=['stats'].

  Attributes:
    threshold_momentum: weight of each new batch in the running average, in (0, 1].
  """

  threshold_momentum: float = 0.01

  def validate(self) -> None:
    super().validate()
    if not 0.0 < self.threshold_momentum <= 1.0:
      raise ConfigError(f"BatchTopKSAE field 'threshold_momentum' is {self.threshold_momentum!r}; "
                        "it must be in (0, 1], e.g. 0.01")

  def setup(self) -> None:
    super().setup()
    zero = lambda: jnp.zeros((), jnp.float32)
    self.threshold = self.variable("stats", "threshold", zero)
    self.threshold_ema = self.variable("stats", "threshold_ema", zero)
    self.threshold_steps = self.variable("stats", "threshold_steps", zero)

  def activate(self, pre: jax.Array, train: bool) -> jax.Array:
    acts = jax.nn.relu(pre)
    if not train:
      return jnp.where(pre > self.threshold.value, acts, 0.0)
    codes, min_kept, any_kept = batch_topk_codes(acts, self.k)
    if self.is_mutable_collection("stats") and not self.is_initializing():
      self.update_threshold(jax.lax.stop_gradient(min_kept), any_kept)
    return codes

  def update_threshold(self, min_kept: jax.Array, any_kept: jax.Array) -> None:
    """Folds one batch's smallest kept activation into the debiased running average."""
    decay = 1.0 - self.threshold_momentum
    ema = jnp.where(any_kept, decay * self.threshold_ema.value + (1.0 - decay) * min_kept,
                    self.threshold_ema.value)
    steps = self.threshold_steps.value + any_kept.astype(jnp.float32)
    debias = 1.0 - decay ** steps
    self.threshold_ema.value = ema
    self.threshold_steps.value = steps
    self.threshold.value = jnp.where(steps > 0, ema / jnp.where(steps > 0, debias, 1.0),
                                     self.threshold.value)
