"""identi: identifiable interpretability of generative models, in JAX.

Sub-packages: `identi.sae` (the SAE family), `identi.metrics` (quality and identifiability),
`identi.data` (activation sources), `identi.generators` (data with known latent concepts),
`identi.train` (the sharded trainer, checkpoints and the training runtime), `identi.infer`
(minimal codes), `identi.baselines`, `identi.concepts` (concept graphs), `identi.steer` (code
edits), `identi.hooks` (activation capture and patching of any Flax Linen model),
`identi.subjects` (generative subjects with known concepts, behind the `Subject` protocol and its
registry), `identi.experiments` (the pipeline over any subject: identify, capture, graph, steer),
`identi.models` (pretrained models in Flax: a BERT encoder and the sentence encoder
all-MiniLM-L6-v2), `identi.find` (a function-description benchmark: black boxes with known
answers and agents that describe them by experiment), `identi.plots` (every figure; importing
identi leaves matplotlib's global state alone).
"""

import importlib

from identi.errors import CheckpointError, ConfigError, DataError, IdentiError, NonFiniteError

__version__ = "0.1.0"

#: Sub-packages, imported on first use (PEP 562): `import identi.sae` or `identi.sae` loads only
#: what it needs, so a binary starts without importing every sub-package and its dependencies.
_SUBPACKAGES = ("baselines", "concepts", "data", "experiments", "generators", "hooks", "infer",
                "metrics", "models", "sae", "steer", "subjects", "train")
#: Names re-exported from identi.train.
_TRAIN_NAMES = ("default_config", "evaluate", "load_trained", "train_and_evaluate")

__all__ = [
    "CheckpointError", "ConfigError", "DataError", "IdentiError", "NonFiniteError", "baselines",
    "concepts", "data", "default_config", "errors", "evaluate", "experiments", "generators",
    "hooks", "infer", "load_trained", "metrics", "models", "sae", "steer", "subjects", "train",
    "train_and_evaluate",
]


def __getattr__(name: str):
  if name in _SUBPACKAGES:
    return importlib.import_module(f"identi.{name}")
  if name in _TRAIN_NAMES:
    return getattr(importlib.import_module("identi.train"), name)
  raise AttributeError(f"module 'identi' has no attribute {name!r}")


def __dir__():
  return sorted(set(globals()) | set(__all__))
