"""ReLU SAE with the decoder-norm-weighted L1 penalty (l1_coeff = 0.05) on superposition data.

  python -m identi.bin.train --config=configs/sae_relu.py --workdir=runs/sae_relu

Results: docs/experiments/sae_superposition.md.
Smoke variant for tests: --config=configs/sae_relu.py:smoke
"""

from identi.train.config import config_variant, default_config


def get_config(arg=None):
  config = default_config()
  config.sae.kind = "relu"
  config.sae.normalize_decoder = False  # The L1 term is weighted by the decoder norms instead.
  config.train.sparsity_warmup_steps = 200
  return config_variant(config, arg)
