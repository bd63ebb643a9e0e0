"""The identifiable recipe: a BatchTopK SAE, then the minimality stage (`identi.train.minimality`).

  python -m identi.bin.train --config=configs/sae_identifiable.py --config.data.source=npy \
      --config.data.path=DIR --config.sae.d_sae=N --config.sae.k=K --workdir=W
  python -m identi.bin.encode --workdir=W --input=X.npy --output=C.npy [--mode=minimal]

`train` runs both stages: the SAE's steps (with minimality.expansion = 2 times d_sae latents, so
that d_sae may be the number of concepts or more), then the minimal dictionary of its decoder (atoms
moved onto the edges of the data's cone, composites and unneeded atoms dropped, missing atoms
seeded from residuals) and an encoder fitted to the minimal codes, stored in
W/minimal.safetensors. `encode` gives the final codes; `--mode=minimal` non-negative OMP over the
minimal atoms; the final SAE has d_sae latents, at most one per kept atom. Results:
docs/experiments/identify_hsm.md.

Where parts almost never fire without each other (a hierarchy whose parent always fires with one
child), `--config.minimality.dictionary=refined` builds the dictionary the other way: the wide
decoder refined with duplicates replaced, its d_sae most used atoms kept and polished. Results:
docs/experiments/synth_peer.md.

Smoke variant for tests: --config=configs/sae_identifiable.py:smoke
"""

from identi.train.config import config_variant, default_config
from identi.train.minimality import identifiable_recipe


def get_config(arg=None):
  return config_variant(identifiable_recipe(default_config()), arg)
