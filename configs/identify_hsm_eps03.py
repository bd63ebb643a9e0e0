"""Identifiability on the weak-selection HSM world (leak eps = 0.3), the second, labelled world.

  python -m identi.bin.identify --config=configs/identify_hsm_eps03.py --workdir=runs/identify_eps03

World (identi.generators.default_world()): 128 level-1 concepts under 64 level-2 and 16 level-3
wholes of 2 parts each (selection leak eps = 0.3; 6.5 active level-1 concepts per sample),
observed as x = A z1 in d = 64 (2x superposition); 2^17 samples. Where selection is this weak,
a whole's parts fire together in 12% of the samples where either fires, and every SAE variant
separates them. The four SAE kinds of the original experiment (512 latents; TopK/BatchTopK
k = 8, ReLU L1 0.02) and the baselines (PCA, dense linear AE, FastICA), scored on 8,192 held-out
samples; minimal codes are non-negative OMP (at most 16 atoms) over the deduplicated decoder.
Results: docs/experiments/identify_hsm.md (second world).
Smoke variant for tests: --config=configs/identify_hsm_eps03.py:smoke
"""

from identi.experiments.identify import default_config, variant


def get_config(arg=None):
  config = default_config()
  config.methods = "relu,topk,batchtopk,jumprelu,pca,linear_ae,ica"
  config.sae.k = 8  # The default world has 6.5 active level-1 concepts per sample.
  config.sae.l1_coeff = 0.02  # ReLU-L1 only.
  config.minimal.max_atoms = 16
  config.per_kind.relu.sae.normalize_decoder = False
  config.per_kind.relu.train.sparsity_warmup_steps = 200
  config.per_kind.jumprelu.train.sparsity_warmup_steps = 200
  return variant(config, arg)
