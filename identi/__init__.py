"""identi: identifiable interpretability of generative models, in JAX.

Sub-packages: `identi.sae` (the SAE family), `identi.metrics` (quality and identifiability),
`identi.data` (activation sources), `identi.generators` (data with known latent concepts),
`identi.train` (the sharded trainer and checkpoints), `identi.infer` (minimal codes),
`identi.baselines`, `identi.concepts` (concept graphs), `identi.steer` (steering), `identi.hooks`
(activation capture and patching of any Flax Linen model), `identi.subjects` (generative subjects
with known concepts: the scenes world and its diffusion model), `identi.allocator` (glibc malloc
settings that let XLA:CPU reuse its per-step scratch memory).
"""

from identi import (allocator, baselines, concepts, data, errors, generators, hooks, infer,
                    metrics, sae, steer, subjects, train)
from identi.allocator import retain_freed_memory
from identi.errors import CheckpointError, ConfigError, DataError, IdentiError, NonFiniteError
from identi.train import default_config, evaluate, load_trained, train_and_evaluate

__version__ = "0.1.0"

__all__ = [
    "CheckpointError", "ConfigError", "DataError", "IdentiError", "NonFiniteError", "allocator",
    "baselines", "concepts", "data", "default_config", "errors", "evaluate", "generators", "hooks",
    "infer", "load_trained", "metrics", "retain_freed_memory", "sae", "steer", "subjects", "train",
    "train_and_evaluate",
]
