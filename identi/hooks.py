"""Activation capture and patching for any Flax Linen model, by module path.

A module path is the '/'-joined scope path Flax gives a bound module (``module.path``), e.g.
``'mid'`` or ``'up_0/res_1'``; :func:`module_paths` lists every path that runs in a forward pass.
:func:`capture` returns the outputs of chosen modules with the model output, :func:`patch` runs
the model with chosen module outputs replaced by ``edit_fn(output)`` (steering, ablation), and
``capture(..., edits=...)`` does both at once. All are pure functions built on
``flax.linen.intercept_methods``: they run ``apply_fn(variables, *args, **kwargs)`` (e.g.
``model.apply``) with a method interceptor, so they trace under ``jax.jit``, ``jax.vmap`` and
``jax.grad`` like the model does::

  out, acts = jax.jit(lambda v, x: capture(model.apply, v, x, paths=('mid',)))(variables, x)
  steered = patch(model.apply, variables, x, path='mid', edit_fn=lambda h: h + alpha * direction)

Rules:

- A module called several times in one pass (a shared module) yields a tuple of its outputs in
  call order, and an edit applies to each of its calls; a module called once yields its output as
  is (tuples and pytrees included).
- The root module (path ``''``) is never hooked: its output is the model output.
- Only calls of ``method_name`` (default ``'__call__'``) are hooked; pass e.g. ``'encode'`` to hook
  another method. Keyword arguments other than the hooks' own (``paths``, ``path``, ``edit_fn``,
  ``edits``, ``method_name``) go to ``apply_fn``.
- An edit replaces a module's output after the module has run, so its submodules (which ran
  inside it) see the unedited input; everything that consumes the output sees the edit.
- Pass the plain ``model.apply``, never a jitted one, and jit the capture/patch call instead: a
  jitted ``apply_fn`` (or a module under ``nn.jit``) reuses traces made without the hooks, so a
  cached trace would silently skip them, or later plain calls would silently replay an edit.
  A jitted ``apply_fn`` is refused; paths that did not run raise ConfigError.
- Modules under a Flax lifted transform (``nn.remat``, ``nn.scan``, ``nn.vmap``, ...) run in an
  inner trace: they can be patched, but capturing them raises ConfigError (their outputs would be
  leaked tracers); capture the enclosing module instead.

Writing activations for an SAE: activations are rows of an (n, d) matrix, so reduce spatial
(n, H, W, C) outputs with :func:`reduce_spatial` first, then write them in the identi shard
format with ``identi.data.write_shards(directory, np.asarray(x), z=latents)`` (one directory per
path; it refuses bfloat16, so cast to float32) and read them back with
``identi.data.open_source(directory)``.
"""
import difflib
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import numpy as np

from identi.errors import ConfigError, DataError

# Identifies the current JAX trace, to tell modules in an inner (lifted) trace; no public API yet.
try:
  from jax._src.core import get_opaque_trace_state as _trace_state
except ImportError:
  _trace_state = None

Edit = Callable[[Any], Any]
REDUCE_MODES = ("flatten", "pool", "position")
_MAX_LISTED = 40


def _path_of(module: nn.Module) -> str | None:
  """The '/'-joined scope path of a bound module, or None for an unbound one."""
  scope = getattr(module, "scope", None)
  return None if scope is None else "/".join(scope.path)


def _normalize_paths(paths: Any, who: str) -> tuple[str, ...]:
  """Paths as a tuple of unique strings without leading/trailing '/'; a lone string is one path."""
  if isinstance(paths, str):
    paths = (paths,)
  if not isinstance(paths, (Sequence, set, frozenset)) or not all(
      isinstance(p, str) for p in paths):
    raise ConfigError(f"{who}={paths!r} is invalid: pass a sequence of module paths such as "
                      "('mid', 'up_0/res_1')")
  out = tuple(dict.fromkeys(p.strip("/") for p in paths))
  if "" in out:
    raise ConfigError(f"{who} holds the root path '': the root module's output is the model "
                      "output, which capture and patch return anyway; name a submodule")
  return out


def _normalize_edits(edits: Mapping[str, Edit] | None) -> dict[str, Edit]:
  """Edits as a dict normalized path -> callable."""
  if edits is None:
    return {}
  if not isinstance(edits, Mapping):
    raise ConfigError(f"edits={edits!r} is invalid: pass a dict module path -> edit_fn")
  out = {}
  for p, fn in edits.items():
    (key,) = _normalize_paths([p], "edits")
    if not callable(fn):
      raise ConfigError(f"edits[{p!r}] is {fn!r}, not a function: pass edit_fn(output) -> output")
    out[key] = fn
  return out


def _leaf_spec(leaf: Any) -> tuple[tuple[int, ...], str]:
  return tuple(np.shape(leaf)), str(getattr(leaf, "dtype", type(leaf).__name__))


def _describe(tree: Any) -> str:
  """A pytree of arrays as 'float32[2, 4]' strings, for error messages."""

  def leaf(l):
    shape, dtype = _leaf_spec(l)
    return f"{dtype}[{', '.join(map(str, shape))}]"

  return str(jax.tree.map(leaf, tree))


def _apply_edit(path: str, edit_fn: Edit, y: Any) -> Any:
  """``edit_fn(y)``, after checking that it keeps the tree structure, shapes and dtypes of y."""
  new = edit_fn(y)
  same = jax.tree.structure(new) == jax.tree.structure(y) and all(
      _leaf_spec(a) == _leaf_spec(b) for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(y)))
  if not same:
    raise DataError(
        f"edit for module path {path!r} returned {_describe(new)} but the module output is "
        f"{_describe(y)}: edit_fn must return the same tree of shapes and dtypes (cast with "
        ".astype(h.dtype), broadcast to h.shape)")
  return new


def _missing_error(missing: str, seen: Sequence[str], method_name: str) -> ConfigError:
  """ConfigError naming a path that never ran, its closest matches and the paths that did run."""
  available = list(dict.fromkeys(seen))
  close = difflib.get_close_matches(missing, available, n=3, cutoff=0.4)
  hint = f"closest: {', '.join(close)}; " if close else ""
  listed = ", ".join(available[:_MAX_LISTED])
  if len(available) > _MAX_LISTED:
    listed += f", ... ({len(available)} in all; see identi.hooks.module_paths)"
  if not available:
    listed = ("none: apply_fn called no Flax module (a jitted apply_fn whose trace was cached? "
              "pass the plain model.apply and jit the capture/patch call)")
  return ConfigError(
      f"module path {missing!r} did not run {method_name} in this forward pass: {hint}"
      f"available: {listed}")


def _run(apply_fn: Callable[..., Any], variables: Any, args: tuple, kwargs: dict,
         method_name: str, paths: tuple[str, ...], edits: dict[str, Edit]
         ) -> tuple[Any, dict[str, list[Any]], list[str]]:
  """Runs ``apply_fn`` with one interceptor that edits and records the hooked module outputs.

  Returns:
    The model output, the outputs of ``paths`` per call, and every hooked path in call order
    (pre-order: a parent before its children; a shared module once per call).
  """
  if hasattr(apply_fn, "lower") and hasattr(apply_fn, "trace"):
    raise ConfigError(
        "apply_fn is jitted: its cached traces skip the hooks (or replay them later); pass the "
        "plain model.apply and jit the capture/patch call instead")
  if not isinstance(method_name, str):
    raise ConfigError(f"method_name={method_name!r} is invalid: pass a method name such as "
                      "'__call__'")
  captured = {p: [] for p in paths}
  seen = []
  outer = _trace_state() if _trace_state is not None and paths else None

  def interceptor(next_fun, a, k, context):
    if context.method_name != method_name:
      return next_fun(*a, **k)
    path = _path_of(context.module)
    if not path:
      return next_fun(*a, **k)
    seen.append(path)
    y = next_fun(*a, **k)
    if path in edits:
      y = _apply_edit(path, edits[path], y)
    if path in captured:
      if outer is not None and _trace_state() != outer:
        raise ConfigError(
            f"module path {path!r} runs inside a Flax lifted transform (nn.remat, nn.scan, "
            "nn.vmap, nn.jit, ...) whose inner trace its output cannot leave: capture the "
            "enclosing module instead (patching it works)")
      captured[path].append(y)
    return y

  with nn.intercept_methods(interceptor):
    out = apply_fn(variables, *args, **kwargs)
  for p in (*paths, *edits):
    if p not in seen:
      raise _missing_error(p, seen, method_name)
  return out, captured, seen


def module_paths(apply_fn: Callable[..., Any], variables: Any, *args,
                 method_name: str = "__call__", **kwargs) -> list[str]:
  """Every module path whose ``method_name`` runs in ``apply_fn(variables, *args, **kwargs)``.

  Paths are unique, in order of first call (a parent before its children), without the root.
  The pass is only traced (``jax.eval_shape``), so it costs no model FLOPs.
  """
  seen = []

  def trace():
    seen.extend(_run(apply_fn, variables, args, kwargs, method_name, (), {})[2])

  jax.eval_shape(trace)
  return list(dict.fromkeys(seen))


def capture(apply_fn: Callable[..., Any], variables: Any, *args, paths: Sequence[str],
            method_name: str = "__call__", edits: Mapping[str, Edit] | None = None,
            **kwargs) -> tuple[Any, dict[str, Any]]:
  """Runs ``apply_fn(variables, *args, **kwargs)`` and returns its output and module outputs.

  Args:
    apply_fn: the model's apply, e.g. ``model.apply`` (not jitted; see the module docstring).
    variables: the model variables, passed to ``apply_fn`` first.
    *args: the model inputs.
    paths: module paths to capture (a lone string is one path).
    method_name: the module method whose output is captured.
    edits: optional dict path -> edit_fn applied as in :func:`patch`; captured activations of an
      edited path are the edited ones (what flows downstream).
    **kwargs: passed to ``apply_fn`` (e.g. ``rngs``, ``train``).

  Returns:
    ``(output, activations)``: the model output and a dict path -> that module's output, or a
    tuple of its outputs in call order when the module ran more than once.

  Raises:
    ConfigError: a path never ran (the message names the closest paths that did) or runs in a
      lifted transform; DataError: an edit changed a shape or dtype.
  """
  paths = _normalize_paths(paths, "paths")
  out, captured, _ = _run(apply_fn, variables, args, kwargs, method_name, paths,
                          _normalize_edits(edits))
  return out, {p: ys[0] if len(ys) == 1 else tuple(ys) for p, ys in captured.items()}


def patch(apply_fn: Callable[..., Any], variables: Any, *args, path: str | None = None,
          edit_fn: Edit | None = None, edits: Mapping[str, Edit] | None = None,
          method_name: str = "__call__", **kwargs) -> Any:
  """Runs ``apply_fn(variables, *args, **kwargs)`` with module outputs replaced by edits.

  Give one edit as ``path=..., edit_fn=...``, several as ``edits={path: edit_fn}``, or both (with
  distinct paths). Each edit maps the module's output to a replacement of the same tree of shapes
  and dtypes, and applies to every call of a shared module. Edits compose with later modules: a
  module downstream of an edited one sees the edited value. To also read activations, use
  ``capture(..., edits=...)``.

  Returns:
    The model output (whatever ``apply_fn`` returns).

  Raises:
    ConfigError: no edit given, a path given twice, or an edited path never ran; DataError: an
      edit changed a shape or dtype (the message names the path and both shapes).
  """
  all_edits = _normalize_edits(edits)
  if (path is None) != (edit_fn is None):
    raise ConfigError("patch needs path and edit_fn together: patch(apply_fn, variables, x, "
                      "path='mid', edit_fn=lambda h: 0 * h)")
  if path is not None:
    extra = _normalize_edits({path: edit_fn})
    twice = set(extra) & set(all_edits)
    if twice:
      raise ConfigError(f"module path {twice.pop()!r} is edited both by path= and by edits=: "
                        "give each path one edit")
    all_edits.update(extra)
  if not all_edits:
    raise ConfigError("patch got no edit: pass path= and edit_fn=, or edits={path: edit_fn}")
  return _run(apply_fn, variables, args, kwargs, method_name, (), all_edits)[0]


def reduce_spatial(act: Any, mode: str) -> Any:
  """Reduces channels-last spatial activations (n, H, W, C) to rows for an SAE.

  Modes: ``'flatten'`` -> (n, H*W*C), one row per example with position kept in the features;
  ``'pool'`` -> (n, C), the mean over H and W (position-invariant, H*W times fewer numbers);
  ``'position'`` -> (n*H*W, C), every position a token (row ``(i*H + h)*W + w``), so that SAE
  units are per-position channel features. Works on NumPy and JAX arrays.
  """
  if mode not in REDUCE_MODES:
    raise ConfigError(f"reduce_spatial mode={mode!r} is unknown: pick one of {REDUCE_MODES}")
  shape = getattr(act, "shape", None)
  if shape is None or len(shape) != 4:
    got = f"shape {tuple(shape)}" if shape is not None else f"a {type(act).__name__}"
    raise DataError(
        f"reduce_spatial expects channels-last activations (n, H, W, C), got {got}: pass a 4-D "
        "array (transpose NCHW with x.transpose(0, 2, 3, 1); (n, d) rows need no reduction)")
  n, h, w, c = shape
  if mode == "flatten":
    return act.reshape(n, h * w * c)
  if mode == "pool":
    return act.mean(axis=(1, 2))
  return act.reshape(n * h * w, c)


def edit_spatial(act: Any, mode: str, edit_rows: Callable[[Any], Any]) -> Any:
  """Applies a row edit made in :func:`reduce_spatial` space back to spatial activations.

  ``edit_rows`` maps the reduced rows to edited rows of the same shape (e.g. an SAE steering
  edit). ``'flatten'`` and ``'position'`` reshape the edited rows back; ``'pool'`` adds the change
  of each pooled row to every position of its map, so the pooled mean of the result is exactly the
  edited row and the spatial detail of ``act`` is kept. Use it as a :func:`patch` ``edit_fn``::

    patch(model.apply, v, x, path='mid', edit_fn=lambda h: edit_spatial(h, 'pool', steer_rows))
  """
  rows = reduce_spatial(act, mode)
  edited = edit_rows(rows)
  if tuple(getattr(edited, "shape", ())) != tuple(rows.shape):
    raise DataError(f"edit_rows returned shape {tuple(getattr(edited, 'shape', ()))} for rows of "
                    f"shape {tuple(rows.shape)}; return rows of the same shape")
  if mode == "pool":
    return act + (edited - rows)[:, None, None, :]
  return edited.reshape(act.shape)
