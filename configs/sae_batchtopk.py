"""BatchTopK SAE (k = 8 on average over the batch) on sparse superposition data.

  python -m identi.bin.train --config=configs/sae_batchtopk.py --workdir=runs/sae_batchtopk

Expected (2-core CPU, ~1 min): see README "Measured results".
Smoke variant for tests: --config=configs/sae_batchtopk.py:smoke
"""

from identi.train.config import config_variant, default_config


def get_config(arg=None):
  config = default_config()
  config.sae.kind = "batchtopk"
  config.sae.d_sae = 512
  config.sae.k = 8
  return config_variant(config, arg)
