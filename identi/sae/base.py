"""Shared interface of identi's sparse autoencoders (SAEs).

Every SAE type is a Flax Linen module with parameters ``W_enc`` (d_in, d_sae), ``b_enc`` (d_sae,),
``W_dec`` (d_sae, d_in) (row i is the dictionary vector of latent i) and ``b_dec`` (d_in,), plus a
non-trainable ``stats`` collection holding ``input_scale``. Inputs are scaled inside the module
(``x_s = x * input_scale``) so that the sparsity hyper-parameters mean the same thing for every
model whose activations have a different norm; :meth:`SAE.decode` returns raw units and
:meth:`SAE.loss` works in scaled units.

``compute_dtype='bfloat16'`` runs the encoder and decoder matmuls on bfloat16 operands with float32
accumulation while parameters, pre-activations, the loss and the gradients stay float32 (see
:mod:`identi.sae.precision`); the default 'float32' computes everything in float32.
"""

import abc
import dataclasses
import numbers
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from identi.errors import ConfigError, DataError
from identi.sae import precision

Terms = dict[str, jax.Array]


def check_positive_int(name: str, value: Any, owner: str) -> None:
  """Raises ConfigError unless `value` is a positive integer (Python or NumPy, not bool)."""
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
    raise ConfigError(f"{owner} field '{name}' is {value!r}; it must be a positive integer")


def unit_row_normal(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
  """Gaussian matrix whose rows have unit L2 norm (the standard SAE decoder init)."""
  w = jax.random.normal(key, shape, dtype)
  return w / jnp.linalg.norm(w, axis=-1, keepdims=True)


class SAE(nn.Module, abc.ABC):
  """Base class of the SAE types; subclasses define :meth:`activate` and :meth:`penalty`.

  Attributes:
    d_in: width of the activations being decomposed.
    d_sae: number of latents (dictionary size).
    compute_dtype: operand dtype of the big matmuls, 'float32' or 'bfloat16' (or the dtype);
      keyword-only. Parameters stay float32 (master weights) either way.
  """

  d_in: int
  d_sae: int
  compute_dtype: Any = dataclasses.field(default="float32", kw_only=True)

  def __post_init__(self) -> None:
    owner = type(self).__name__
    check_positive_int("d_in", self.d_in, owner)
    check_positive_int("d_sae", self.d_sae, owner)
    precision.compute_dtype(self.compute_dtype, owner)
    self.validate()
    super().__post_init__()

  def validate(self) -> None:
    """Raises ConfigError for impossible per-type hyper-parameters (none in the base class)."""

  @property
  def matmul_dtype(self) -> Any:
    """compute_dtype as a dtype: what the matmul operands are rounded to."""
    return precision.compute_dtype(self.compute_dtype)

  def setup(self) -> None:
    self.W_enc = self.param("W_enc", nn.initializers.lecun_normal(), (self.d_in, self.d_sae))
    self.b_enc = self.param("b_enc", nn.initializers.zeros_init(), (self.d_sae,))
    self.W_dec = self.param("W_dec", unit_row_normal, (self.d_sae, self.d_in))
    self.b_dec = self.param("b_dec", nn.initializers.zeros_init(), (self.d_in,))
    self.input_scale = self.variable("stats", "input_scale", lambda: jnp.ones((), jnp.float32))

  def check_input(self, x: jax.Array) -> jax.Array:
    """Returns `x` as float32 after checking (at trace time) that it is (batch, d_in)."""
    name, shape = type(self).__name__, tuple(jnp.shape(x))
    if len(shape) != 2:
      raise DataError(
          f"{name} input has shape {shape} ({len(shape)}-D); expected 2-D (batch, {self.d_in}): "
          f"reshape activations to (-1, {self.d_in})")
    if shape[1] != self.d_in:
      raise DataError(
          f"{name} input has shape {shape} but the SAE has d_in={self.d_in}: feed activations of "
          f"width {self.d_in} or build the SAE with d_in={shape[1]}")
    return jnp.asarray(x, jnp.float32)

  def check_dead_mask(self, dead_mask: jax.Array | None) -> None:
    """Raises DataError unless `dead_mask` is None or has shape (d_sae,)."""
    if dead_mask is not None and jnp.shape(dead_mask) != (self.d_sae,):
      raise DataError(
          f"dead_mask has shape {tuple(jnp.shape(dead_mask))}; expected ({self.d_sae},), one "
          "bool per latent: pass the dead-latent mask of this SAE or None")

  def pre_activation(self, x_s: jax.Array) -> jax.Array:
    """Encoder pre-activations of already scaled inputs: (x_s - b_dec) @ W_enc + b_enc."""
    return precision.matmul(x_s - self.b_dec, self.W_enc, self.matmul_dtype) + self.b_enc

  @abc.abstractmethod
  def activate(self, pre: jax.Array, train: bool) -> jax.Array:
    """Maps pre-activations (batch, d_sae) to non-negative codes (the type's nonlinearity)."""

  def penalty(self, *, pre: jax.Array, codes: jax.Array, x_s: jax.Array, x_hat_s: jax.Array,
              sparsity_coeff: float, dead_mask: jax.Array | None) -> tuple[jax.Array, Terms]:
    """Returns the type's extra loss (added to the MSE) and its named terms."""
    del pre, codes, x_s, x_hat_s, sparsity_coeff, dead_mask
    return jnp.zeros((), jnp.float32), {}

  def decode_scaled(self, codes: jax.Array) -> jax.Array:
    """Reconstruction in scaled units: codes @ W_dec + b_dec."""
    return precision.matmul(codes, self.W_dec, self.matmul_dtype) + self.b_dec

  def code(self, x_s: jax.Array, train: bool) -> tuple[jax.Array, jax.Array]:
    """(pre-activations, codes) of scaled inputs: `activate(pre_activation(x_s))`. Encoders that
    are not one affine map and a nonlinearity (matching pursuit) override this."""
    pre = self.pre_activation(x_s)
    return pre, self.activate(pre, train)

  def encode(self, x: jax.Array, train: bool = False) -> jax.Array:
    """Codes (batch, d_sae) of raw inputs x (batch, d_in); non-negative."""
    x_s = self.check_input(x) * self.input_scale.value
    return self.code(x_s, train)[1]

  def decode(self, codes: jax.Array) -> jax.Array:
    """Reconstruction of codes in raw input units: (codes @ W_dec + b_dec) / input_scale."""
    return self.decode_scaled(codes) / self.input_scale.value

  def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
    """Returns (codes, x_hat) with x_hat in raw units."""
    codes = self.encode(x, train)
    return codes, self.decode(codes)

  def loss(self, x: jax.Array, *, sparsity_coeff: float = 0.0, dead_mask: jax.Array | None = None,
           train: bool = True) -> tuple[jax.Array, Terms, jax.Array]:
    """Training loss in scaled space.

    Args:
      x: raw inputs (batch, d_in).
      sparsity_coeff: weight of the type's sparsity term (ignored by the k-sparse types).
      dead_mask: optional bool (d_sae,), True for dead latents; used by the AuxK term only.
      train: whether to use the training-time activation (matters for BatchTopK).

    Returns:
      (total, terms, codes): terms always holds 'mse' (mean squared error over all elements) and
      'l0' (mean number of active latents per sample, not differentiated) plus type-specific terms.
    """
    self.check_dead_mask(dead_mask)
    x_s = self.check_input(x) * self.input_scale.value
    pre, codes = self.code(x_s, train)
    x_hat_s = self.decode_scaled(codes)
    mse = jnp.mean(jnp.square(x_s - x_hat_s))
    l0 = jax.lax.stop_gradient(jnp.mean(jnp.sum(codes != 0, axis=-1, dtype=jnp.float32)))
    extra, terms = self.penalty(pre=pre, codes=codes, x_s=x_s, x_hat_s=x_hat_s,
                                sparsity_coeff=sparsity_coeff, dead_mask=dead_mask)
    return mse + extra, {"mse": mse, "l0": l0, **terms}, codes


def field_names(cls: type[SAE]) -> tuple[str, ...]:
  """Hyper-parameter names of an SAE class: its dataclass fields but d_in, d_sae, parent, name."""
  fields: Mapping[str, Any] = cls.__dataclass_fields__
  return tuple(n for n, f in fields.items()
               if f.init and n not in ("d_in", "d_sae", "parent", "name"))
