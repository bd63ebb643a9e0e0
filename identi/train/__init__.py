"""Training: config schema, optimiser, the training runtime every trainer shares (`runtime`),
the data-parallel SAE trainer, evaluation and checkpoints."""

from identi.train import runtime
from identi.train.checkpoint import Checkpointer
from identi.train.config import default_config, load_config, validate_config
from identi.train.evaluation import encode_batches, evaluate, score_codes
from identi.train.inference import encode_file, evaluate_workdir, load_trained
from identi.train.optimizer import learning_rate_schedule, make_optimizer, sparsity_schedule
from identi.train.sharding import data_mesh, initialize_distributed
from identi.train.sweep import train_sweep
from identi.train.trainer import (
    abstract_state,
    build_model,
    build_sources,
    make_train_step,
    train_and_evaluate,
)

__all__ = [
    "Checkpointer", "abstract_state", "build_model", "build_sources", "data_mesh",
    "default_config", "encode_batches", "encode_file", "evaluate", "evaluate_workdir",
    "initialize_distributed", "learning_rate_schedule", "load_config", "load_trained",
    "make_optimizer", "make_train_step", "runtime", "score_codes", "sparsity_schedule",
    "train_and_evaluate", "train_sweep", "validate_config",
]
