"""Evaluation and encoding of activation sources with a trained SAE, sharded over all devices."""

from __future__ import annotations

import functools
from typing import Any, Iterator

import jax
import numpy as np

from identi import data as data_lib
from identi import metrics as metrics_lib
from identi.train import sharding


def _padded_batches(source, batch_size: int) -> Iterator[tuple[np.ndarray, Any, int]]:
  """Sequential batches padded to a multiple of the device count, with the real row count."""
  multiple = jax.device_count()
  for x, z in data_lib.iterate_batches(source, batch_size):
    n = x.shape[0]
    padded = -(-n // multiple) * multiple
    if padded != n:
      x = np.concatenate([x, np.zeros((padded - n, x.shape[1]), x.dtype)])
    yield x, z, n


@functools.lru_cache(maxsize=16)
def _compiled_apply(model, mesh):
  """The jitted inference pass of `model` on `mesh`, built once per (model, mesh), so that the
  SAEs of a sweep, which share one model, compile it once."""
  repl, batch = sharding.replicated(mesh), sharding.batch_sharded(mesh)
  return jax.jit(lambda v, x: model.apply(v, x, train=False),
                 in_shardings=(repl, batch), out_shardings=(repl, repl))


def _forward_fn(model):
  mesh = sharding.data_mesh()
  batch = sharding.batch_sharded(mesh)
  fn = _compiled_apply(model, mesh)

  def forward(variables, x):
    rows = sharding.local_rows(x.shape[0])
    codes, x_hat = fn(variables, sharding.make_global_batch(x[rows], batch, x.shape[0]))
    return np.asarray(codes), np.asarray(x_hat)

  return forward


def encode_batches(model, variables, source, batch_size: int
                   ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, Any]]:
  """Yields (x, codes, x_hat, latents-or-None) for every example of `source`, in order."""
  forward = _forward_fn(model)
  for x, z, n in _padded_batches(source, batch_size):
    codes, x_hat = forward(variables, x)
    yield x[:n], codes[:n], x_hat[:n], z


def evaluate(model, variables, source, batch_size: int, mcc_method: str = "pearson"
             ) -> dict[str, Any]:
  """SAE quality over the whole source, plus MCC against true latents when the source has them."""
  d_sae = model.d_sae
  state = metrics_lib.quality_init(source.dim, d_sae)
  update = jax.jit(metrics_lib.quality_update)
  all_codes, all_z = [], []
  for x, codes, x_hat, z in encode_batches(model, variables, source, batch_size):
    state = update(state, x, x_hat, codes)
    if z is not None:
      all_codes.append(codes)
      all_z.append(z)
  result = metrics_lib.quality_result(state)
  if all_z:
    result.update(_mcc_terms(np.concatenate(all_z), np.concatenate(all_codes), mcc_method))
  return result


def _mcc_terms(z, codes, mcc_method: str) -> dict[str, Any]:
  return {"mcc": float(metrics_lib.mcc(z, codes, method=mcc_method).mcc),
          "mcc_method": mcc_method}


def score_codes(x, x_hat, codes, z=None, mcc_method: str = "pearson") -> dict[str, Any]:
  """The metrics of `evaluate` for codes and reconstructions held in memory (any estimator)."""
  state = metrics_lib.quality_init(x.shape[1], codes.shape[1])
  result = metrics_lib.quality_result(metrics_lib.quality_update(state, x, x_hat, codes))
  if z is not None:
    result.update(_mcc_terms(z, codes, mcc_method))
  return result
