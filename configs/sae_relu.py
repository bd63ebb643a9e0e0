"""ReLU SAE with the decoder-norm-weighted L1 penalty on sparse superposition data.

  python -m identi.bin.train --config=configs/sae_relu.py --workdir=runs/sae_relu

Expected (2-core CPU, ~1 min): see README "Measured results".
Smoke variant for tests: --config=configs/sae_relu.py:smoke
"""

from identi.train.config import config_variant, default_config


def get_config(arg=None):
  config = default_config()
  config.sae.kind = "relu"
  config.sae.d_sae = 512
  config.sae.normalize_decoder = False  # The L1 term is weighted by the decoder norms instead.
  config.sae.l1_coeff = 0.1
  config.train.sparsity_warmup_steps = 200
  return config_variant(config, arg)
