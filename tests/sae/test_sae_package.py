"""Tests of the identi.sae registry and make_sae (identi/sae/__init__.py)."""

import jax
import jax.numpy as jnp
import pytest

from identi.errors import ConfigError
from identi.sae import (SAE_TYPES, MPSAE, BatchTopKSAE, JumpReLUSAE, MatryoshkaBatchTopKSAE,
                        ReLUSAE, TopKSAE, make_sae)


def test_registry_maps_kinds_to_classes():
  assert SAE_TYPES == {"relu": ReLUSAE, "topk": TopKSAE, "batchtopk": BatchTopKSAE,
                       "jumprelu": JumpReLUSAE, "matryoshka": MatryoshkaBatchTopKSAE,
                       "mp": MPSAE}


def test_make_sae_passes_hyperparameters():
  model = make_sae("batchtopk", 4, 8, k=2, k_aux=3, threshold_momentum=0.5)
  assert isinstance(model, BatchTopKSAE)
  assert (model.d_in, model.d_sae, model.k, model.k_aux, model.threshold_momentum) == (4, 8, 2, 3,
                                                                                       0.5)
  variables = model.init(jax.random.key(0), jnp.ones((2, 4)))
  assert variables["params"]["W_enc"].shape == (4, 8)
  assert make_sae("jumprelu", 4, 8, bandwidth=0.01).bandwidth == 0.01
  assert make_sae("relu", 4, 8, compute_dtype=jnp.bfloat16).compute_dtype == jnp.bfloat16


def test_unknown_kind_raises_config_error_listing_choices():
  with pytest.raises(ConfigError) as info:
    make_sae("gated", 4, 8)
  assert str(info.value) == (
      "unknown SAE kind 'gated'; choose one of relu, topk, batchtopk, jumprelu, matryoshka, mp")


def test_unknown_or_missing_hyperparameter_raises_config_error_naming_it():
  with pytest.raises(ConfigError, match="'threshold_momentum' for SAE kind 'topk'"):
    make_sae("topk", 4, 8, k=2, threshold_momentum=0.1)
  with pytest.raises(ConfigError, match="'k' for SAE kind 'relu'; valid ones are compute_dtype"):
    make_sae("relu", 4, 8, k=2)
  with pytest.raises(ConfigError, match="needs hyper-parameter 'k'"):
    make_sae("batchtopk", 4, 8)
  with pytest.raises(ConfigError, match="'k' is 9 but d_sae is 8"):
    make_sae("topk", 4, 8, k=9)
