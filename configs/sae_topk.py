"""TopK SAE (k = 6, 512 latents, AuxK) on sparse superposition data (256 features in d = 64).

  python -m identi.bin.train --config=configs/sae_topk.py --workdir=runs/sae_topk

Results: docs/experiments/sae_superposition.md.
Smoke variant for tests: --config=configs/sae_topk.py:smoke
"""

from identi.train.config import config_variant, default_config


def get_config(arg=None):
  config = default_config()
  config.sae.kind = "topk"
  return config_variant(config, arg)
