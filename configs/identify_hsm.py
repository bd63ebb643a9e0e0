"""Identifiability on the strong-selection HSM world (leak eps = 0.05, the spec's), `make demo`.

  python -m identi.bin.identify --config=configs/identify_hsm.py --workdir=runs/identify_hsm

World: identi.generators.default_world() at the spec's selection leak eps = 0.05, with pi = 0.202
(the leak sweep's fit that keeps 6.5 active level-1 concepts per sample): 128 level-1 concepts
under 64 level-2 and 16 level-3 wholes of 2 parts each, observed as x = A z1 in d = 64 (2x
superposition); 2^17 samples. A whole's parts fire together in 41% of the samples where either
fires, and plain SAEs learn such pairs as composite units. Every SAE kind (256 latents, 2x the
concepts; TopK/BatchTopK/Matryoshka k = 8, MP 8 pursuit steps, ReLU L1 0.02), the identifiable
recipe (configs/sae_identifiable.py: BatchTopK at 2x d_sae, then the minimality stage) and the
baselines (PCA, dense linear AE, FastICA), scored on 8,192 held-out samples; minimal codes are
non-negative OMP (at most 16 atoms) over the deduplicated decoder.
The weak-selection world (eps = 0.3) is configs/identify_hsm_eps03.py.
Results: docs/experiments/identify_hsm.md.
Smoke variant for tests: --config=configs/identify_hsm.py:smoke
"""

from identi.experiments.identify import default_config, variant

#: The spec's selection leak, and the firing probability that keeps the default world's activity.
EPS, PI = 0.05, 0.202


def get_config(arg=None):
  config = default_config()
  config.world.eps = EPS
  config.world.pi = PI
  config.sae.d_sae = 256  # 2x the 128 level-1 concepts.
  config.sae.k = 8  # 6.5 active level-1 concepts per sample.
  config.sae.l1_coeff = 0.02  # ReLU-L1 only.
  config.minimal.max_atoms = 16
  config.per_kind.relu.sae.normalize_decoder = False
  config.per_kind.relu.train.sparsity_warmup_steps = 200
  config.per_kind.jumprelu.train.sparsity_warmup_steps = 200
  return variant(config, arg)
