"""JumpReLU SAE (L0 penalty 1e-2, straight-through thresholds, bandwidth 0.1) on superposition data.

  python -m identi.bin.train --config=configs/sae_jumprelu.py --workdir=runs/sae_jumprelu

Results: docs/experiments/sae_superposition.md.
Smoke variant for tests: --config=configs/sae_jumprelu.py:smoke
"""

from identi.train.config import config_variant, default_config


def get_config(arg=None):
  config = default_config()
  config.sae.kind = "jumprelu"
  config.train.sparsity_warmup_steps = 200
  return config_variant(config, arg)
