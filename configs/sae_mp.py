"""Matching-pursuit SAE (MP-SAE: 6 pursuit steps over a 512-atom decoder, tied) on sparse
superposition data.

  python -m identi.bin.train --config=configs/sae_mp.py --workdir=runs/sae_mp

Smoke variant for tests: --config=configs/sae_mp.py:smoke
"""

from identi.train.config import config_variant, default_config


def get_config(arg=None):
  config = default_config()
  config.sae.kind = "mp"
  return config_variant(config, arg)
