"""BatchTopK SAE (k = 6 on average over the batch, 512 latents) on sparse superposition data.

  python -m identi.bin.train --config=configs/sae_batchtopk.py --workdir=runs/sae_batchtopk

Results: docs/experiments/sae_superposition.md.
Smoke variant for tests: --config=configs/sae_batchtopk.py:smoke
"""

from identi.train.config import config_variant, default_config


def get_config(arg=None):
  config = default_config()
  config.sae.kind = "batchtopk"
  return config_variant(config, arg)
