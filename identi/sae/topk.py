"""TopK SAE (Gao et al. 2024, "Scaling and evaluating sparse autoencoders") and the AuxK loss.

The AuxK machinery lives in :class:`KSparseSAE`, shared by TopK and BatchTopK: it reconstructs the
main model's residual from the top-k_aux pre-activations of the dead latents, which gives dead
latents a gradient and revives them.

With ``compute_dtype='bfloat16'`` the sparse paths gather bfloat16 rows of the weights, multiply
them with bfloat16-rounded values and accumulate in float32, like the dense bfloat16 matmuls; the
top-k selection then ranks float32 pre-activations computed from bfloat16 operands, so latents
whose pre-activations are (nearly) tied may be selected differently than in float32.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp

from identi.errors import ConfigError
from identi.sae import precision
from identi.sae.base import SAE, Terms, check_positive_int

#: Upper bound of the default k_aux; Gao et al. use 512 for their largest models.
MAX_DEFAULT_K_AUX = 512
#: TopK decoder modes: 'auto' picks 'sparse' when d_sae >= SPARSE_MIN_D_SAE and
#: d_sae >= SPARSE_MIN_RATIO * k (where gathering k rows beats the dense matmul; see
#: benchmarks/README.md), else 'dense'.
DECODERS = ("auto", "dense", "sparse")
SPARSE_MIN_D_SAE = 4096
SPARSE_MIN_RATIO = 32


def scatter_rows(zeros: jax.Array, values: jax.Array, indices: jax.Array) -> jax.Array:
  """`zeros` with `values` placed at `indices` along the last axis, row by row.

  A vmapped scatter keeps the batch axis a batching dimension, so a batch sharded over devices
  (explicit or automatic sharding) stays sharded without any collective.
  """
  return jax.vmap(lambda z, i, v: z.at[i].set(v, unique_indices=True))(zeros, indices, values)


#: The mesh axis over which a latent-sharded run splits the latents (`identi.train.sharding`).
MODEL_AXIS = "model"


def latent_shard_mesh(width: int):
  """The current mesh (`jax.set_mesh`) if it splits latents over MODEL_AXIS (in more than one
  shard, dividing `width`), else None."""
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty or MODEL_AXIS not in mesh.axis_names:
    return None
  shards = mesh.shape[MODEL_AXIS]
  return mesh if shards > 1 and width % shards == 0 else None


def top_k_latents(acts: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
  """`jax.lax.top_k(acts, k)` over the latent (last) axis of (batch, d_sae) activations.

  Under a mesh that shards latents (`latent_shard_mesh`) the selection is two-stage and exact:
  each shard takes the top k of its own latents, the shards exchange only those k candidates
  (with their global indices) and the top k of the candidates is the global top k, ties broken by
  the lower index as in `jax.lax.top_k`. So the (batch, d_sae) activations are never gathered.
  """
  mesh = latent_shard_mesh(acts.shape[-1])
  if mesh is None:
    return jax.lax.top_k(acts, k)
  rows = next((a for a in mesh.axis_names
               if a != MODEL_AXIS and acts.shape[0] % mesh.shape[a] == 0), None)

  def local(a):
    width = a.shape[-1]
    values, indices = jax.lax.top_k(a, min(k, width))
    indices = indices + jax.lax.axis_index(MODEL_AXIS) * width
    values = jax.lax.all_gather(values, MODEL_AXIS, axis=1, tiled=True)
    indices = jax.lax.all_gather(indices, MODEL_AXIS, axis=1, tiled=True)
    best, order = jax.lax.top_k(values, k)
    return best, jnp.take_along_axis(indices, order, axis=1)

  spec = jax.sharding.PartitionSpec(rows, MODEL_AXIS)
  out = jax.sharding.PartitionSpec(rows, None)
  # Every model shard ends with the same candidates, so the result is replicated over MODEL_AXIS;
  # the varying-axes check cannot see that through axis_index, hence check_vma=False.
  return jax.shard_map(local, mesh=mesh, in_specs=spec, out_specs=(out, out),
                       check_vma=False)(acts)


def topk_codes(acts: jax.Array, k: int) -> jax.Array:
  """Keeps the k largest entries of each row of `acts` (ties broken by index), zeroing the rest;
  exact and without gathering `acts` when its latents are sharded (`top_k_latents`)."""
  values, indices = top_k_latents(acts, k)
  return scatter_rows(jnp.zeros_like(acts), values, indices)


#: Rows per block of the CPU sparse decoder: the gathered (block, k, d_in) rows stay in cache
#: (on a 2-core CPU, 64-row blocks made the decode and its gradient 5-7x faster than one gather).
SPARSE_BLOCK_ROWS = 64


def _blocks(array: jax.Array, rows: int) -> jax.Array:
  """(batch, ...) -> (num_blocks, rows, ...), zero-padding the batch to a multiple of rows."""
  pad = (-array.shape[0]) % rows
  if pad:
    array = jnp.concatenate([array, jnp.zeros((pad,) + array.shape[1:], array.dtype)])
  return array.reshape((-1, rows) + array.shape[1:])


def _blocked() -> bool:
  return jax.default_backend() == "cpu"


def _decode(values, indices, w_dec):
  """The sparse decode of operands already in the compute dtype; float32 result."""
  if not _blocked():
    return precision.einsum("bk,bkd->bd", values, jnp.take(w_dec, indices, axis=0))
  rows = SPARSE_BLOCK_ROWS
  out = jax.lax.map(lambda a: precision.einsum("bk,bkd->bd", a[0], jnp.take(w_dec, a[1], axis=0)),
                    (_blocks(values, rows), _blocks(indices, rows)))
  return out.reshape(-1, w_dec.shape[1])[:values.shape[0]]


def _outer_rows(values, inputs, width):
  """values[b, j] * inputs[b] as (b * k, width) float32 rows (bfloat16 products are exact)."""
  f32 = jnp.float32
  return (values.astype(f32)[:, :, None] * inputs.astype(f32)[:, None, :]).reshape(-1, width)


def _scatter_rows_add(values, indices, inputs, shape):
  """sum over (b, j) of values[b, j] * inputs[b] added to row indices[b, j] of zeros(shape).

  Accumulates in float32 whatever the operands' dtype.
  """
  if not _blocked():
    rows = _outer_rows(values, inputs, shape[1])
    return jnp.zeros(shape, jnp.float32).at[indices.reshape(-1)].add(rows)
  blocks = (_blocks(values, SPARSE_BLOCK_ROWS), _blocks(indices, SPARSE_BLOCK_ROWS),
            _blocks(inputs, SPARSE_BLOCK_ROWS))

  def body(acc, block):
    v, i, xb = block
    return acc.at[i.reshape(-1)].add(_outer_rows(v, xb, shape[1])), None

  return jax.lax.scan(body, jnp.zeros(shape, jnp.float32), blocks)[0]


def _decode_fwd(values, indices, w_dec, dtype):
  values_c, w_c = precision.cast(values, dtype), precision.cast(w_dec, dtype)
  return _decode(values_c, indices, w_c), (values_c, indices, w_c)


def _decode_bwd(dtype, res, g):
  values_c, indices, w_c = res
  g_c = precision.cast(g, dtype)
  d_values = _gather_dot(g_c, indices, w_c)
  return d_values, None, _scatter_rows_add(values_c, indices, g_c, w_c.shape)


def _gather_dot(g, indices, rows):
  """d[b, j] = g[b] . rows[indices[b, j]] (the values' gradient of a sparse decode)."""
  if not _blocked():
    return precision.einsum("bd,bkd->bk", g, jnp.take(rows, indices, axis=0))
  out = jax.lax.map(lambda a: precision.einsum("bd,bkd->bk", a[0], jnp.take(rows, a[1], axis=0)),
                    (_blocks(g, SPARSE_BLOCK_ROWS), _blocks(indices, SPARSE_BLOCK_ROWS)))
  return out.reshape(-1, indices.shape[1])[:indices.shape[0]]


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _sparse_decode(values, indices, w_dec, dtype):
  return _decode_fwd(values, indices, w_dec, dtype)[0]


_sparse_decode.defvjp(_decode_fwd, _decode_bwd)


def sparse_decode(values: jax.Array, indices: jax.Array, w_dec: jax.Array,
                  compute_dtype: Any = jnp.float32) -> jax.Array:
  """sum_j values[b, j] * w_dec[indices[b, j]]: a k-sparse decode in k * d_in work per sample.

  Equal to ``codes @ w_dec`` for the codes that scatter `values` at `indices`. The backward pass
  gathers the same rows for the values' gradient and scatter-adds k rows per sample into the
  decoder's gradient. On CPU both run over blocks of SPARSE_BLOCK_ROWS samples, so that the
  gathered rows stay in cache; elsewhere XLA gathers the whole batch at once. With a bfloat16
  `compute_dtype` values, rows and the incoming gradient are rounded to bfloat16, and the result
  and the gradients are float32 (float32 accumulation).
  """
  return _sparse_decode(values, indices, w_dec, jnp.dtype(compute_dtype))


def _normalised_aux_mse(acts, residual, w_dec, dead_mask, k_aux, compute_dtype):
  dead_acts = jnp.where(dead_mask, acts, 0.0)
  aux_codes = topk_codes(dead_acts, min(k_aux, acts.shape[-1]))
  e_hat = precision.matmul(aux_codes, w_dec, compute_dtype)
  return jnp.mean(jnp.square(residual - e_hat)) / jnp.maximum(
      jnp.mean(jnp.square(residual)), jnp.finfo(jnp.float32).tiny)


def _aux_of_acts(diff, const, k_aux, compute_dtype):
  acts, w_dec = diff
  residual, dead_mask = const
  return _normalised_aux_mse(acts, residual, w_dec, dead_mask, k_aux, compute_dtype)


def _aux_of_encoder(diff, const, k_aux, compute_dtype):
  w_enc, b_enc, w_dec, b_dec = diff
  x_s, residual, dead_mask = const
  acts = jax.nn.relu(precision.matmul(x_s - b_dec, w_enc, compute_dtype) + b_enc)
  return _normalised_aux_mse(acts, residual, w_dec, dead_mask, k_aux, compute_dtype)


def _gated_fwd(fn, flag, diff, const):
  def on(diff, const):
    return jax.value_and_grad(fn)(diff, const)

  def off(diff, const):
    del const
    return jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, diff)

  value, grads = jax.lax.cond(flag, on, off, diff, const)
  return value, grads


def _gated_bwd(fn, grads, g):
  del fn
  return None, jax.tree.map(lambda d: d * g, grads), None


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _gated(fn, flag, diff, const):
  return _gated_fwd(fn, flag, diff, const)[0]


_gated.defvjp(_gated_fwd, _gated_bwd)


def auxk_loss(acts, residual: jax.Array, w_dec: jax.Array, dead_mask: jax.Array,
              k_aux: int, compute_dtype: Any = jnp.float32) -> jax.Array:
  """Normalised MSE of reconstructing `residual` from the top-k_aux dead-latent activations.

  Args:
    acts: non-negative activations relu(pre), (batch, d_sae), or the encoder (w_enc, b_enc, x_s,
      b_dec) that computes them as relu((x_s - b_dec) @ w_enc + b_enc) only when a latent is
      dead (the sparse TopK path never forms pre).
    residual: what the main reconstruction missed, x_s - x_hat_s; gradients are stopped here.
    w_dec: decoder (d_sae, d_in); the aux reconstruction uses no bias.
    dead_mask: bool (d_sae,), True for dead latents.
    k_aux: how many dead latents each sample may use (clipped to d_sae).
    compute_dtype: operand dtype of the aux decode (float32 accumulation).

  Returns:
    mean((e - e_hat)^2) / mean(e^2), or 0 when no latent is dead. The value and its gradients
    are computed together inside one `lax.cond` on "some latent is dead" (the top-k_aux selection
    costs a partial sort per sample), so a step without dead latents neither selects nor keeps
    anything for the backward pass.
  """
  residual = jax.lax.stop_gradient(residual)
  dead_mask = jnp.asarray(dead_mask, bool)
  any_dead = jnp.any(dead_mask)
  dtype = jnp.dtype(compute_dtype)
  if isinstance(acts, tuple):
    w_enc, b_enc, x_s, b_dec = acts
    fn = functools.partial(_aux_of_encoder, k_aux=k_aux, compute_dtype=dtype)
    aux = _gated(fn, any_in_sweep(any_dead), (w_enc, b_enc, w_dec, b_dec),
                 (jax.lax.stop_gradient(x_s), residual, dead_mask))
  else:
    fn = functools.partial(_aux_of_acts, k_aux=k_aux, compute_dtype=dtype)
    aux = _gated(fn, any_in_sweep(any_dead), (acts, w_dec), (residual, dead_mask))
  return jnp.where(any_dead, aux, 0.0)


#: The vmapped axis of a sweep of SAEs trained together (`identi.train.sweep`).
SWEEP_AXIS = "sweep"


def any_in_sweep(flag: jax.Array) -> jax.Array:
  """`flag` or-ed over the SAEs of a sweep when traced under `jax.vmap(..., axis_name=SWEEP_AXIS)`,
  else `flag`. A `lax.cond` on a per-SAE flag would become a select under vmap, computing both
  branches for every SAE; on the sweep-wide flag it stays a cond."""
  try:
    return jax.lax.psum(flag.astype(jnp.int32), SWEEP_AXIS) > 0
  except NameError:  # Not in a sweep: the axis name is unbound.
    return flag


#: Rows per block of the CPU sparse encoder's forward pass (matmul + top-k stay in cache).
ENCODE_BLOCK_ROWS = 512


#: Up to this k and width, `row_top_k` on CPU extracts the k largest entries one by one from groups
#: of about sqrt(width) entries instead of running XLA's top-k. On 512 rows of a 2-core CPU: 1.1
#: against 1.7 ms at width 680 and k 12, 4.0 against 8.0 ms at 4096 and 16, 7.6 against 8.3 ms at
#: 4096 and 32; from 8192 wide it is no faster (12.0 against 12.6 ms at k 32) and at 16384 slower.
EXTRACT_MAX_K = 32
EXTRACT_MAX_WIDTH = 4096


def _sortable(a: jax.Array) -> jax.Array:
  """int32 keys of float32 `a` with the order of the values (-0.0 just below +0.0); every key of a
  non-NaN value is above int32's minimum, which marks taken entries in `row_top_k`."""
  bits = jax.lax.bitcast_convert_type(a.astype(jnp.float32), jnp.int32)
  return jnp.where(bits < 0, bits ^ jnp.int32(0x7FFFFFFF), bits)


def row_top_k(a: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
  """`jax.lax.top_k(a, k)` of a float32 (rows, width) array: the same values and indices (ties
  broken by the lower index) for every input without NaN.

  On CPU with k <= EXTRACT_MAX_K and 4 k <= width <= EXTRACT_MAX_WIDTH the k largest entries are
  extracted one at a time: the row is cut into groups of about sqrt(width) entries, and each round
  takes the largest group maximum (first group on ties), its largest entry (first on ties), marks
  it taken and refreshes that group's maximum. The comparisons run on order-preserving int32 keys so that a taken entry
  (int32's minimum) ranks below every real value, -inf included. Elsewhere it is lax.top_k.
  """
  rows, width = a.shape
  if (k > EXTRACT_MAX_K or width > EXTRACT_MAX_WIDTH or width < 4 * k or not _blocked()
      or a.dtype != jnp.float32):
    return jax.lax.top_k(a, k)
  size = max(1, round(width ** 0.5))
  groups = -(-width // size)
  taken = jnp.iinfo(jnp.int32).min
  keys = jnp.pad(_sortable(a), ((0, 0), (0, groups * size - width)), constant_values=taken)
  keys = keys.reshape(rows, groups, size)
  row = jnp.arange(rows)

  def extract(i, carry):
    keys, best, indices = carry
    g = jnp.argmax(best, axis=1)
    group = keys[row, g]
    j = jnp.argmax(group, axis=1)
    indices = indices.at[:, i].set((g * size + j).astype(jnp.int32))
    group = group.at[row, j].set(taken)
    return keys.at[row, g].set(group), best.at[row, g].set(group.max(-1)), indices

  # A loop, not k unrolled rounds: as fast, and it halves the compile time.
  _, _, indices = jax.lax.fori_loop(0, k, extract, (keys, keys.max(-1),
                                                    jnp.zeros((rows, k), jnp.int32)))
  return jnp.take_along_axis(a, indices, axis=1), indices


def _topk_encode(x_c, w_enc, b_enc, k):
  """Top-k of x_c @ w_enc + b_enc for operands already in the compute dtype (float32 pre)."""
  def block(xb):
    values, indices = row_top_k(precision.dot(xb, w_enc) + b_enc, k)
    return jax.nn.relu(values), indices

  if not _blocked():
    return block(x_c)
  values, indices = jax.lax.map(block, _blocks(x_c, ENCODE_BLOCK_ROWS))
  n = x_c.shape[0]
  return values.reshape(-1, k)[:n], indices.reshape(-1, k)[:n]


def topk_encode(x_c: jax.Array, w_enc: jax.Array, b_enc: jax.Array, k: int,
                compute_dtype: Any = jnp.float32) -> tuple[jax.Array, jax.Array]:
  """(values, indices) of the k largest pre-activations x_c @ w_enc + b_enc per row, rectified.

  The backward pass touches only the k active latents per sample: the encoder's weight gradient
  is a scatter-add of k rows per sample (k * d_in work instead of the dense d_sae * d_in matmul),
  exact because the gradient of every inactive latent is 0. On CPU the forward runs over blocks of
  ENCODE_BLOCK_ROWS samples so that the pre-activations never leave the cache. With a bfloat16
  `compute_dtype`, x_c and w_enc are rounded to bfloat16 (also in the backward pass); the
  pre-activations, values and gradients are float32. It is `topk_autoencode` without a decoder
  (zero b_dec, so its input is x_c; the unused reconstruction is dropped by XLA).
  """
  d_in, d_sae = w_enc.shape
  values, indices, _ = topk_autoencode(x_c, w_enc, b_enc, jnp.zeros((d_sae, d_in), jnp.float32),
                                       jnp.zeros((d_in,), jnp.float32), k, compute_dtype)
  return values, indices


def _autoencode_fwd(x_s, w_enc, b_enc, w_dec, b_dec, k, dtype):
  x_c = precision.cast(x_s - b_dec, dtype)
  w_enc_c, w_dec_c = precision.cast(w_enc, dtype), precision.cast(w_dec, dtype)
  values, indices = _topk_encode(x_c, w_enc_c, b_enc, k)
  values_c = precision.cast(values, dtype)
  x_hat = _decode(values_c, indices, w_dec_c) + b_dec
  return (values, indices, x_hat), (x_c, w_enc_c, w_dec_c, values, values_c, indices)


def _autoencode_bwd(k, dtype, res, cotangents):
  del k
  x_c, w_enc_c, w_dec_c, values, values_c, indices = res
  d_values_out, _, g = cotangents
  g_c = precision.cast(g, dtype)
  d_values = jnp.where(values > 0, _gather_dot(g_c, indices, w_dec_c) + d_values_out, 0.0)
  d_values_c = precision.cast(d_values, dtype)
  w_rows = w_enc_c.T  # (d_sae, d_in): the rows that the active latents read.
  d_w_dec = _scatter_rows_add(values_c, indices, g_c, w_dec_c.shape)
  d_w_enc = _scatter_rows_add(d_values_c, indices, x_c, w_rows.shape).T
  d_b_enc = jnp.zeros((w_rows.shape[0],), jnp.float32).at[indices.reshape(-1)].add(
      d_values.reshape(-1))
  # The input's gradient; XLA drops it when nobody asks (the trainer differentiates parameters).
  d_x = _decode(d_values_c, indices, w_rows)
  # b_dec enters the reconstruction (+) and the centred input (-): the second part is
  # -sum_b d_x[b] = -w_enc @ d_b_enc (summed over latents instead of over samples).
  d_values_sum = d_b_enc if dtype == jnp.float32 else jnp.zeros_like(d_b_enc).at[
      indices.reshape(-1)].add(d_values_c.astype(jnp.float32).reshape(-1))
  d_b_dec = jnp.sum(g, axis=0) - w_enc_c.astype(jnp.float32) @ d_values_sum
  return d_x, d_w_enc, d_b_enc, d_w_dec, d_b_dec


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def _autoencode(x_s, w_enc, b_enc, w_dec, b_dec, k, dtype):
  return _autoencode_fwd(x_s, w_enc, b_enc, w_dec, b_dec, k, dtype)[0]


_autoencode.defvjp(_autoencode_fwd, _autoencode_bwd)


def topk_autoencode(x_s: jax.Array, w_enc: jax.Array, b_enc: jax.Array, w_dec: jax.Array,
                    b_dec: jax.Array, k: int, compute_dtype: Any = jnp.float32
                    ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(values, indices, reconstruction) of a TopK SAE in one differentiable op.

  values, indices = `topk_encode`(x_s - b_dec, ...) and reconstruction =
  `sparse_decode`(values, indices, w_dec) + b_dec, with one backward pass for both: the values'
  gradient is gathered once, the encoder's and decoder's weight gradients are scatter-adds of k
  rows per sample, and b_dec's gradient is computed over latents (sum of the reconstruction's
  gradient minus w_enc @ b_enc's gradient) rather than from a per-sample input gradient, which
  XLA then never forms unless the input's gradient is asked for.
  """
  return _autoencode(x_s, w_enc, b_enc, w_dec, b_dec, k, jnp.dtype(compute_dtype))


class KSparseSAE(SAE):
  """Base of the SAEs whose sparsity is fixed by k; adds the AuxK term.

  Attributes:
    k: number of active latents per sample (on average over the batch for BatchTopK).
    k_aux: dead latents used by AuxK per sample; None means min(d_sae // 2, 512) (at least 1),
      following Gao et al.'s advice of "a power of two close to d_model / 2", capped by their 512.
    aux_alpha: weight of the AuxK term (Gao et al. use 1/32).
  """

  k: int
  k_aux: int | None = None
  aux_alpha: float = 1.0 / 32.0

  def validate(self) -> None:
    owner = type(self).__name__
    check_positive_int("k", self.k, owner)
    if self.k > self.d_sae:
      raise ConfigError(f"{owner} field 'k' is {self.k} but d_sae is {self.d_sae}; "
                        f"choose k between 1 and d_sae={self.d_sae}")
    if self.k_aux is not None:
      check_positive_int("k_aux", self.k_aux, owner)
    if not self.aux_alpha >= 0.0:
      raise ConfigError(f"{owner} field 'aux_alpha' is {self.aux_alpha!r}; it must be >= 0 "
                        "(use 0 to switch AuxK off)")

  @property
  def effective_k_aux(self) -> int:
    """k_aux actually used: the field, or min(d_sae // 2, 512) (at least 1), clipped to d_sae."""
    k_aux = self.k_aux if self.k_aux is not None else min(self.d_sae // 2, MAX_DEFAULT_K_AUX)
    return max(1, min(k_aux, self.d_sae))

  def penalty(self, *, pre: jax.Array, codes: jax.Array, x_s: jax.Array, x_hat_s: jax.Array,
              sparsity_coeff: float, dead_mask: jax.Array | None) -> tuple[jax.Array, Terms]:
    del codes, sparsity_coeff
    if dead_mask is None:
      auxk = jnp.zeros((), jnp.float32)
    else:
      auxk = auxk_loss(jax.nn.relu(pre), x_s - x_hat_s, self.W_dec,
                       jnp.asarray(dead_mask, bool), self.effective_k_aux, self.matmul_dtype)
    return self.aux_alpha * auxk, {"auxk": auxk}


class TopKSAE(KSparseSAE):
  """codes = the k largest entries of relu(pre) per sample; sparsity_coeff is ignored.

  Attributes:
    decoder: 'dense' (codes @ W_dec), 'sparse' (`sparse_decode` gathers the k active decoder rows:
      k * d_in work per sample instead of d_sae * d_in, with a scatter-add backward; and
      `topk_autoencode` computes the encoder's gradient for the k active latents only) or 'auto'
      (sparse when d_sae >= SPARSE_MIN_D_SAE and d_sae >= SPARSE_MIN_RATIO * k). Both give the
      same loss and gradients up to float rounding; the AuxK term always decodes densely.
      With compute_dtype='bfloat16' the encoder, the decoder and both sparse paths take bfloat16
      operands and accumulate in float32; top-k then ranks float32 pre-activations of bfloat16
      operands, so near-ties may pick other latents than in float32.
  """

  decoder: str = "auto"

  def validate(self) -> None:
    super().validate()
    if self.decoder not in DECODERS:
      raise ConfigError(f"TopKSAE field 'decoder' is {self.decoder!r}; use one of "
                        f"{', '.join(DECODERS)}")

  @property
  def sparse_decoder(self) -> bool:
    if self.decoder == "auto":
      return self.d_sae >= SPARSE_MIN_D_SAE and self.d_sae >= SPARSE_MIN_RATIO * self.k
    return self.decoder == "sparse"

  def activate(self, pre: jax.Array, train: bool) -> jax.Array:
    del train
    return topk_codes(jax.nn.relu(pre), self.k)

  def loss(self, x: jax.Array, *, sparsity_coeff: float = 0.0, dead_mask: jax.Array | None = None,
           train: bool = True):
    """As `SAE.loss`; with the sparse decoder the reconstruction never forms codes @ W_dec.

    The sparse path adds terms['fired'] (bool (d_sae,)), so that a caller that only needs to know
    which latents fired (the trainer) lets XLA drop the dense codes.
    """
    if not self.sparse_decoder:
      return super().loss(x, sparsity_coeff=sparsity_coeff, dead_mask=dead_mask, train=train)
    self.check_dead_mask(dead_mask)
    x_s = self.check_input(x) * self.input_scale.value
    dtype = self.matmul_dtype
    values, indices, x_hat_s = topk_autoencode(x_s, self.W_enc, self.b_enc, self.W_dec,
                                               self.b_dec, self.k, dtype)
    mse = jnp.mean(jnp.square(x_s - x_hat_s))
    codes = scatter_rows(jnp.zeros((x_s.shape[0], self.d_sae), values.dtype), values, indices)
    l0 = jax.lax.stop_gradient(jnp.mean(jnp.sum(values != 0, axis=-1, dtype=jnp.float32)))
    if dead_mask is None:
      auxk = jnp.zeros((), jnp.float32)
    else:
      auxk = auxk_loss((self.W_enc, self.b_enc, x_s, self.b_dec), x_s - x_hat_s, self.W_dec,
                       dead_mask, self.effective_k_aux, dtype)
    extra, terms = self.aux_alpha * auxk, {"auxk": auxk}
    fired = jnp.zeros((self.d_sae,), values.dtype).at[indices.reshape(-1)].max(
        jax.lax.stop_gradient(values).reshape(-1)) > 0
    return mse + extra, {"mse": mse, "l0": l0, "fired": fired, **terms}, codes
