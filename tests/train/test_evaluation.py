"""identi.train.evaluation: whole-source metrics, and one compile for the SAEs of a sweep."""

import jax
import numpy as np

from helpers import count_compiles
from identi import data as data_lib
from identi.sae import init_sae, make_sae
from identi.train import evaluation


def test_saes_of_one_model_share_the_compiled_forward_pass():
  rng = np.random.default_rng(0)
  z = np.abs(rng.normal(size=(96, 5))).astype(np.float32)
  x = z @ np.abs(rng.normal(size=(5, 17))).astype(np.float32)
  source = data_lib.ArraySource(x, z)
  results = []
  for seed in range(2):
    model = make_sae("topk", 17, 23, k=3)  # A new, equal module each time, as in a sweep.
    variables = init_sae(model, jax.random.key(seed), x)
    results.append(count_compiles(lambda: evaluation.evaluate(model, variables, source, 32)))
  (first, n_first), (second, n_second) = results
  assert n_first > 0 and n_second == 0
  assert first["mcc"] != second["mcc"]  # Each SAE is scored on its own parameters.
  for result in (first, second):
    assert 0 < result["fvu"] < 1 and 0 < result["mcc"] <= 1
