"""The identifiable recipe: a BatchTopK SAE, then the minimality stage (`identi.train.minimality`).

  python -m identi.bin.train --config=configs/sae_identifiable.py --config.data.source=npy \
      --config.data.path=DIR --config.sae.d_sae=N --config.sae.k=K --workdir=W
  python -m identi.bin.encode --workdir=W --input=X.npy --output=C.npy [--mode=minimal]

`train` runs both stages: the SAE's steps, then the minimal dictionary of its decoder (atoms
moved onto the edges of the data's cone, composites and unneeded atoms dropped, missing atoms
seeded from residuals) and an encoder fitted to the minimal codes, stored in
W/minimal.safetensors. `encode` gives the final codes; `--mode=minimal` non-negative OMP over the
minimal atoms. Results: docs/experiments/identify_hsm.md.

Smoke variant for tests: --config=configs/sae_identifiable.py:smoke
"""

from identi.train.config import config_variant, default_config


def get_config(arg=None):
  config = default_config()
  config.sae.kind = "batchtopk"
  config.minimality.enabled = True
  return config_variant(config, arg)
