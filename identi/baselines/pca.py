"""PCA baseline: the top principal subspace, computed by SVD in JAX.

Codes are the projections of the centred data on the ``width`` leading right singular vectors;
decoding maps them back and adds the mean. PCA finds at most d components, so ``width <= d``; it
recovers the principal subspace, not the concepts in it (any rotation of the subspace explains the
data as well), which is why it is a minimality-free baseline.
"""
import jax
import jax.numpy as jnp
import numpy as np

from identi.baselines.base import Baseline, as_key, check_data, check_width


@jax.jit
def _principal_axes(centred: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Right singular vectors (d, d) as rows and singular values, signs fixed deterministically."""
  _, singular, vt = jnp.linalg.svd(centred, full_matrices=False)
  signs = jnp.sign(vt[jnp.arange(vt.shape[0]), jnp.argmax(jnp.abs(vt), axis=1)])
  return vt * jnp.where(signs == 0, 1.0, signs)[:, None], singular


def fit_pca(key_or_seed, x, width: int) -> Baseline:
  """Fits PCA with ``width`` components (``width <= d``).

  Args:
    key_or_seed: unused (PCA is deterministic); kept so every baseline has the same signature.
    x: (n, d) data.
    width: number of components, 1 <= width <= d.

  Returns:
    A ``Baseline`` whose codes are the principal component scores (variance = eigenvalues) and
    whose component k is the k-th right singular vector of the centred data, its largest-magnitude
    entry made positive.
  """
  as_key(key_or_seed)
  x = check_data(x, "fit_pca")
  width = check_width(width, "fit_pca", x.shape[1])
  mean = np.mean(x, axis=0, dtype=np.float64).astype(np.float32)
  axes, _ = _principal_axes(jnp.asarray(x - mean))
  components = axes[:width]
  w_enc = components.T
  return Baseline(W_enc=w_enc, b_enc=-jnp.asarray(mean) @ w_enc, W_dec=components,
                  b_dec=jnp.asarray(mean), name="pca")
