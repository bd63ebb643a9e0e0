"""Sparse autoencoders: ReLU (L1), TopK, BatchTopK, JumpReLU, Matryoshka BatchTopK and
matching pursuit (MP), with init, decoder and export."""

import dataclasses
from typing import Any

from identi.errors import ConfigError
from identi.sae.base import SAE, field_names
from identi.sae.batchtopk import BatchTopKSAE
from identi.sae.decoder import normalize_decoder, remove_parallel_grad
from identi.sae.export import (check_variables_like, export_weights, fold_input_scale,
                               load_variables, save_variables)
from identi.sae.init import geometric_median, init_sae
from identi.sae.jumprelu import JumpReLUSAE, heaviside_step, jumprelu
from identi.sae.matryoshka import MatryoshkaBatchTopKSAE
from identi.sae.mp import MPSAE
from identi.sae.relu import ReLUSAE
from identi.sae.topk import KSparseSAE, TopKSAE, auxk_loss

SAE_TYPES: dict[str, type[SAE]] = {
    "relu": ReLUSAE,
    "topk": TopKSAE,
    "batchtopk": BatchTopKSAE,
    "jumprelu": JumpReLUSAE,
    "matryoshka": MatryoshkaBatchTopKSAE,
    "mp": MPSAE,
}


def make_sae(kind: str, d_in: int, d_sae: int, **hparams: Any) -> SAE:
  """Builds the SAE type named `kind` with its hyper-parameters; raises ConfigError on bad input.

  Every kind also takes compute_dtype ('float32' or 'bfloat16': bf16 matmuls, float32 weights).
  """
  if kind not in SAE_TYPES:
    raise ConfigError(f"unknown SAE kind {kind!r}; choose one of {', '.join(SAE_TYPES)}")
  cls = SAE_TYPES[kind]
  valid = field_names(cls)
  for name in hparams:
    if name not in valid:
      raise ConfigError(f"unknown hyper-parameter {name!r} for SAE kind {kind!r}; valid ones are "
                        f"{', '.join(valid) or 'none'}")
  fields = cls.__dataclass_fields__
  required = [n for n in valid if n not in hparams and fields[n].default is dataclasses.MISSING
              and fields[n].default_factory is dataclasses.MISSING]
  if required:
    raise ConfigError(f"SAE kind {kind!r} needs hyper-parameter {required[0]!r}; set it, e.g. "
                      f"{required[0]}=32")
  return cls(d_in=d_in, d_sae=d_sae, **hparams)


__all__ = [
    "SAE", "SAE_TYPES", "BatchTopKSAE", "JumpReLUSAE", "KSparseSAE", "MPSAE",
    "MatryoshkaBatchTopKSAE", "ReLUSAE", "TopKSAE",
    "auxk_loss", "check_variables_like", "export_weights", "fold_input_scale",
    "geometric_median", "heaviside_step", "init_sae", "jumprelu", "load_variables", "make_sae",
    "normalize_decoder", "remove_parallel_grad", "save_variables",
]
