"""JumpReLU SAE (L0 penalty, straight-through thresholds) on sparse superposition data.

  python -m identi.bin.train --config=configs/sae_jumprelu.py --workdir=runs/sae_jumprelu

Expected (2-core CPU, ~1 min): see README "Measured results".
Smoke variant for tests: --config=configs/sae_jumprelu.py:smoke
"""

from identi.train.config import config_variant, default_config


def get_config(arg=None):
  config = default_config()
  config.sae.kind = "jumprelu"
  config.sae.d_sae = 512
  config.sae.l0_coeff = 1e-3
  config.train.sparsity_warmup_steps = 200
  return config_variant(config, arg)
