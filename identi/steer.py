"""Steering with SAE units: edit the codes of activations and map the edit back to raw units.

:func:`steer` encodes activations, applies an edit to the codes and adds the change of the decoded
reconstruction to the input, so that whatever the SAE does not explain (its reconstruction error)
and every unedited unit are preserved; the edit moves x by exactly ``sum_i (new_i - old_i) *
W_dec[i] / input_scale``. Edits (:func:`set_units`, :func:`scale_units`, :func:`ablate_units`,
:func:`inject_units`, or :func:`edit` by name) are pure functions ``codes -> codes``.

On a level-blocked concept graph (edges point upward, part -> whole, as in
``identi.generators.hsm``), :func:`wholes_of` and :func:`parts_of` give the closure of a set of
units, and :func:`steer_levels` edits one SAE per level. Graph unit indices must be the SAEs' unit
indices (e.g. after matching SAE units to the graph's concepts). Ablating a part and the wholes
that need it::

  closure = wholes_of(blocks, 1, [part])
  xs = steer_levels(models, variables_list, xs, {l: edit("ablate", u) for l, u in closure.items()})
"""

import functools
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from identi.checks import is_int
from identi.errors import ConfigError, DataError

Edit = Callable[[jax.Array], jax.Array]
EDIT_KINDS = ("set", "scale", "ablate", "inject")


def _is_tracer(a: Any) -> bool:
  return isinstance(a, jax.core.Tracer)


def _check_units(units: Any, size: int, who: str, unique: bool = True) -> Any:
  """Returns `units` as a 1-D int array after checking that they index `size` units.

  Range and (if `unique`) duplicates are checked only for concrete units; traced units are checked
  for shape and dtype at trace time.
  """
  if _is_tracer(units):
    if units.ndim != 1 or not jnp.issubdtype(units.dtype, jnp.integer):
      raise DataError(f"{who}: units is a traced {units.dtype} array of shape {units.shape}; pass "
                      "a 1-D int array of unit indices")
    return units
  arr = np.asarray(units)
  if arr.size == 0:
    arr = arr.astype(np.int32)
  if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
    raise DataError(f"{who}: units has dtype {arr.dtype} and shape {arr.shape}; pass a 1-D int "
                    "array of unit indices such as [3, 7]")
  bad = arr[(arr < 0) | (arr >= size)]
  if bad.size:
    raise DataError(f"{who}: units {bad.tolist()} are out of range for {size} units; pass "
                    f"indices in 0..{size - 1}")
  uniq, counts = np.unique(arr, return_counts=True)
  if unique and np.any(counts > 1):
    raise DataError(f"{who}: units {uniq[counts > 1].tolist()} appear more than once; pass each "
                    "unit once")
  return arr


def _check_values(values: Any, target: tuple[int, ...], who: str, name: str) -> jax.Array:
  """Returns `values` as an array after checking that it broadcasts to `target` (batch, units)."""
  shape = tuple(jnp.shape(values))
  try:
    ok = np.broadcast_shapes(shape, target) == target
  except ValueError:
    ok = False
  if not ok:
    raise DataError(f"{who}: {name} has shape {shape}, which does not broadcast to the edited "
                    f"codes {target}; pass a scalar, ({target[-1]},) or {target}")
  if not _is_tracer(values) and not np.all(np.isfinite(np.asarray(values))):
    raise DataError(f"{who}: {name} holds NaN or Inf; pass finite values")
  return jnp.asarray(values)


def _edit(codes: jax.Array, units: Any, values: Any, op: Callable, who: str,
          name: str) -> jax.Array:
  """Replaces codes[..., units] by max(op(old, values), 0): SAE codes are non-negative."""
  if jnp.ndim(codes) < 1:
    raise DataError(f"{who}: codes is a scalar; pass codes of shape (batch, d_sae)")
  codes = jnp.asarray(codes)
  units = _check_units(units, codes.shape[-1], who)
  old = codes[..., units]
  if values is not None:
    values = _check_values(values, old.shape, who, name)
  new = jnp.maximum(op(old, values), 0).astype(codes.dtype)
  return codes.at[..., units].set(new)


def set_units(codes: jax.Array, units: Any, values: Any) -> jax.Array:
  """Sets codes[..., units] to `values` (negative values are clipped to 0, i.e. ablate)."""
  return _edit(codes, units, values, lambda old, v: jnp.broadcast_to(v, old.shape), "set_units",
               "values")


def scale_units(codes: jax.Array, units: Any, factor: Any) -> jax.Array:
  """Multiplies codes[..., units] by `factor` (a negative factor clips the units to 0)."""
  return _edit(codes, units, factor, jnp.multiply, "scale_units", "factor")


def ablate_units(codes: jax.Array, units: Any) -> jax.Array:
  """Sets codes[..., units] to 0: the units' dictionary directions are removed from x."""
  return _edit(codes, units, None, lambda old, _: jnp.zeros_like(old), "ablate_units", "values")


def inject_units(codes: jax.Array, units: Any, values: Any) -> jax.Array:
  """Adds `values` to codes[..., units], clipping the sum at 0 (so removal stops at ablation)."""
  return _edit(codes, units, values, jnp.add, "inject_units", "values")


def edit(kind: str, units: Any, values: Any = None) -> Edit:
  """Returns the edit_fn ``codes -> codes`` of kind 'set', 'scale', 'ablate' or 'inject'.

  `values` is the set value, the scale factor or the injected amount; 'ablate' takes none.
  """
  if kind not in EDIT_KINDS:
    raise ConfigError(f"unknown edit kind {kind!r}; choose one of {', '.join(EDIT_KINDS)}")
  if kind == "ablate":
    if values is not None:
      raise ConfigError("edit kind 'ablate' takes no values; drop values or use kind 'set'")
    return functools.partial(ablate_units, units=units)
  if values is None:
    raise ConfigError(f"edit kind {kind!r} needs values; pass e.g. edit({kind!r}, units, 2.0)")
  fn = {"set": set_units, "scale": scale_units, "inject": inject_units}[kind]
  key = "factor" if kind == "scale" else "values"
  return functools.partial(fn, units=units, **{key: values})


def _check_x(model: Any, x: Any) -> jax.Array:
  """Returns x as float32 after checking it is a finite (batch, d_in) array for `model`."""
  d_in = getattr(model, "d_in", None)
  if d_in is None or not hasattr(model, "encode") or not hasattr(model, "decode"):
    raise ConfigError(f"steer got a {type(model).__name__}; pass an identi SAE module such as "
                      "make_sae('topk', d_in, d_sae, k=32)")
  shape, dtype = tuple(jnp.shape(x)), jnp.result_type(x)
  if len(shape) != 2 or shape[1] != d_in:
    raise DataError(f"steer input x has shape {shape}; it must be 2-D (batch, {d_in}) for this "
                    f"SAE: reshape activations to (-1, {d_in})")
  if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)):
    raise DataError(f"steer input x has dtype {dtype}; pass real-valued activations (float32)")
  if not _is_tracer(x):
    host = np.asarray(x)
    n_nan, n_inf = int(np.isnan(host).sum()), int(np.isinf(host).sum())
    if n_nan or n_inf:
      raise DataError(f"steer input x holds {n_nan} NaN and {n_inf} Inf values out of "
                      f"{host.size}; drop or fix the non-finite activations before steering")
  return jnp.asarray(x, jnp.float32)


def steer(model: Any, variables: Mapping[str, Any], x: Any, edit_fn: Edit, *,
          keep_error: bool = True) -> jax.Array:
  """Steers raw activations x (batch, d_in) by editing their SAE codes with `edit_fn`.

  With keep_error, returns ``x + decode(edit_fn(codes)) - decode(codes)``, i.e. the edited
  reconstruction plus the SAE's error ``x - decode(codes)``, so unedited content is kept and the
  identity edit returns x; else returns ``decode(edit_fn(codes))``. Raw units throughout (the SAE
  applies its input_scale). Jit-compatible with model and edit_fn closed over; finiteness of x is
  checked only when x is concrete.
  """
  x = _check_x(model, x)
  codes = model.apply(variables, x, method="encode")
  edited = edit_fn(codes)
  if tuple(jnp.shape(edited)) != codes.shape:
    raise DataError(f"edit_fn returned codes of shape {tuple(jnp.shape(edited))} for codes of "
                    f"shape {codes.shape}; return codes of the same shape")
  steered = model.apply(variables, edited, method="decode")
  if not keep_error:
    return steered
  return x + (steered - model.apply(variables, codes, method="decode"))


def _check_blocks(blocks: Any) -> tuple[list[np.ndarray], list[int]]:
  """Returns the blocks as bool arrays and the unit count per level (index 0 = level 1)."""
  if not isinstance(blocks, (list, tuple)) or not blocks:
    raise DataError("blocks must be a non-empty list of bool adjacency matrices, blocks[l] of "
                    "shape (units at level l+1, units at level l+2); pass one per level pair")
  arrays = []
  for l, block in enumerate(blocks):
    a = np.asarray(block)
    if a.ndim != 2 or a.dtype != np.bool_:
      raise DataError(f"blocks[{l}] has dtype {a.dtype} and shape {a.shape}; pass a 2-D bool "
                      f"adjacency (units at level {l + 1}, units at level {l + 2}), e.g. "
                      "weights != 0")
    if arrays and arrays[-1].shape[1] != a.shape[0]:
      raise DataError(f"blocks[{l - 1}] has shape {arrays[-1].shape} but blocks[{l}] has shape "
                      f"{a.shape}: level {l + 1} needs the same unit count in both "
                      f"(blocks[{l - 1}].shape[1] == blocks[{l}].shape[0]); fix the graph")
    arrays.append(a)
  return arrays, [arrays[0].shape[0]] + [a.shape[1] for a in arrays]


def _start(blocks: Any, level: Any, units: Any, who: str):
  """Validated (blocks, sizes, start mask) for a closure from `units` at 1-based `level`."""
  arrays, sizes = _check_blocks(blocks)
  if not is_int(level) or not 1 <= level <= len(sizes):
    raise DataError(f"{who}: level={level!r} is not a level of this {len(sizes)}-level graph; "
                    f"pass a 1-based level in 1..{len(sizes)}")
  units = _check_units(units, sizes[level - 1], f"{who} level {level}", unique=False)
  mask = np.zeros(sizes[level - 1], bool)
  mask[units] = True
  return arrays, sizes, int(level), mask


def wholes_of(blocks: Sequence[Any], level: int, units: Any) -> dict[int, np.ndarray]:
  """Units at `level` and every unit above reachable upward from them (the wholes needing them).

  Used to ablate, with a part, the wholes that would no longer emerge. Returns {level: sorted
  unique indices} for `level` and every higher level (empty where nothing is reached).
  """
  arrays, sizes, level, mask = _start(blocks, level, units, "wholes_of")
  out = {level: np.flatnonzero(mask)}
  for l in range(level, len(sizes)):
    mask = arrays[l - 1][mask].any(axis=0)
    out[l + 1] = np.flatnonzero(mask)
  return out


def parts_of(blocks: Sequence[Any], level: int, units: Any) -> dict[int, np.ndarray]:
  """Units at `level` and every unit below reachable downward (parts, parts of parts, ...).

  Used to inject, with a whole, the parts it is made of. Returns {level: sorted unique indices}
  for `level` and every lower level (empty where nothing is reached).
  """
  arrays, _, level, mask = _start(blocks, level, units, "parts_of")
  out = {level: np.flatnonzero(mask)}
  for l in range(level, 1, -1):
    mask = arrays[l - 2][:, mask].any(axis=1)
    out[l - 1] = np.flatnonzero(mask)
  return out


def steer_levels(models: Sequence[Any], variables_list: Sequence[Mapping[str, Any]],
                 xs: Sequence[Any], edits_by_level: Mapping[int, Edit], *,
                 keep_error: bool = True) -> list:
  """Steers per-level activations with one SAE per level (lists indexed by level - 1).

  `edits_by_level` maps 1-based levels to edit_fns; levels without an edit return their x as is.
  """
  n = len(models)
  if len(variables_list) != n or len(xs) != n:
    raise DataError(f"steer_levels got {n} models, {len(variables_list)} variables and {len(xs)} "
                    "inputs; pass one of each per level")
  for level, fn in edits_by_level.items():
    if not is_int(level) or not 1 <= level <= n:
      raise DataError(f"edits_by_level has key {level!r} but there are {n} levels; key edits by "
                      f"1-based level in 1..{n}")
    if not callable(fn):
      raise ConfigError(f"edits_by_level[{level}] is a {type(fn).__name__}, not an edit_fn; build "
                        "one with edit(kind, units, values)")
  return [steer(models[i], variables_list[i], xs[i], edits_by_level[i + 1], keep_error=keep_error)
          if i + 1 in edits_by_level else xs[i] for i in range(n)]
