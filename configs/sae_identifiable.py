"""The identifiable recipe: a BatchTopK SAE, then the minimality stage (`identi.train.minimality`).

  python -m identi.bin.train --config=configs/sae_identifiable.py --config.data.source=npy \
      --config.data.path=DIR --config.sae.d_sae=N --config.sae.k=K --workdir=W
  python -m identi.bin.encode --workdir=W --input=X.npy --output=C.npy [--mode=minimal]

`train` runs both stages: the SAE's steps (with minimality.expansion = 2 times d_sae latents, so
that d_sae may be the number of concepts or more), then the minimal dictionary of its decoder (atoms
moved onto the edges of the data's cone, composites and unneeded atoms dropped, missing atoms
seeded from residuals) and an encoder fitted to the minimal codes, stored in
W/minimal.safetensors. Where more than d_sae atoms pass those tests (parts that almost never fire
without each other, such as a hierarchy whose parent always fires with one child), the stage sets
them aside, refines the trained decoder with duplicates replaced and keeps its d_sae most used
atoms; `--config.minimality.dictionary=refined` goes to that second route directly. On that
route the kept atoms are tree paths of a hierarchy, and the stage adds the directions they share
(the parents) as units (`--config.minimality.ancestors`: refined, always, never;
`--config.minimality.ancestor_grouping`: mean_shift, linkage, union). `encode` gives the final
codes; `--mode=minimal` non-negative OMP over the kept atoms (mapped onto the units with
ancestors); the final SAE has d_sae latents, at most one per kept atom, plus one per ancestor.
Results: docs/experiments/identify_hsm.md (selection), docs/experiments/synth_peer.md (SAELens's
hierarchies).

Smoke variant for tests: --config=configs/sae_identifiable.py:smoke
"""

from identi.train.config import config_variant, default_config
from identi.train.minimality import identifiable_recipe


def get_config(arg=None):
  return config_variant(identifiable_recipe(default_config()), arg)
