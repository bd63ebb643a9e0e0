"""TopK SAE (k = 8, AuxK) on sparse superposition data (256 features in d = 64, 4 active).

  python -m identi.bin.train --config=configs/sae_topk.py --workdir=runs/sae_topk

Expected (2-core CPU, ~1 min): see README "Measured results".
Smoke variant for tests: --config=configs/sae_topk.py:smoke
"""

from identi.train.config import config_variant, default_config


def get_config(arg=None):
  config = default_config()
  config.sae.kind = "topk"
  config.sae.d_sae = 512
  config.sae.k = 8
  return config_variant(config, arg)
