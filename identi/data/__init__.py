"""Activation data: in-memory and memory-mapped sources, deterministic batching, shard files."""
from identi.data.shards import NpyShardSource, open_source, write_shards
from identi.data.sources import (ActivationSource, ArraySource, Subset, batch_indices,
                                 iterate_batches, train_eval_split)

__all__ = [
    "ActivationSource",
    "ArraySource",
    "NpyShardSource",
    "Subset",
    "batch_indices",
    "iterate_batches",
    "open_source",
    "train_eval_split",
    "write_shards",
]
