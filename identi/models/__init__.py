"""Pretrained models in Flax: a BERT encoder (`bert`) and the sentence encoder all-MiniLM-L6-v2
(`minilm`), loaded from its published files without torch.

`load_minilm()` returns ``(config, model, params, tokenizer)``; `tokenize` gives fixed-shape ids
and masks; `model.apply({'params': params}, ids, mask)` the last hidden state, `encode` the
sentence embeddings; `identi.hooks` reads or patches ``embed``, ``block_0``, ... by path.
The ``tokenizers`` package is imported only when a tokenizer is loaded.
"""
from identi.models import bert, minilm
from identi.models.bert import (Bert, BertConfig, block_names, convert_weights, mean_pool,
                                sentence_embedding)
from identi.models.minilm import MAX_SEQ_LENGTH, encode, load_minilm, package_zip, tokenize

__all__ = [
    "Bert", "BertConfig", "MAX_SEQ_LENGTH", "bert", "block_names", "convert_weights", "encode",
    "load_minilm", "mean_pool", "minilm", "package_zip", "sentence_embedding", "tokenize",
]
