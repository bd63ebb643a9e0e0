"""Matryoshka BatchTopK SAE (k = 6 on average, 512 latents in nested prefixes of 128, 256 and
512) on sparse superposition data.

  python -m identi.bin.train --config=configs/sae_matryoshka.py --workdir=runs/sae_matryoshka

Smoke variant for tests: --config=configs/sae_matryoshka.py:smoke
"""

from identi.train.config import config_variant, default_config


def get_config(arg=None):
  config = default_config()
  config.sae.kind = "matryoshka"
  return config_variant(config, arg)
