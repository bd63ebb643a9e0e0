"""Training the transformer subject on the grammar world: `train_lm_subject(config, workdir)`.

The subject is the decoder-only transformer of `identi.subjects.transformer`, trained by
next-token cross-entropy on sequences sampled on the fly from `identi.subjects.grammar`. The batch
of step t is `sample_grammar(fold_in(data_key, t))`, so a run restored from a checkpoint continues
bit-identically on CPU. Everything else is the training runtime every identi trainer shares
(`identi.train.runtime`): train, checkpoint and resume rules, state (params, EMA params, Adam
state, failure record), the EMA step, workdir checks and the export format.

Workdir layout: run.json (config), metrics.jsonl (one record per logged step),
checkpoints/<step>/ (orbax), final.json (grammaticality and concept frequencies of sequences
sampled from the EMA params, against the world's own), samples.txt (sampled sequences as text,
'!' marking ungrammatical ones).

`export_lm_subject(workdir, path)` ships the EMA params and the config as one file (kind
'transformer_lm'); `load_lm_subject` reads it back, checking its sha256.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import time
from typing import Any

import jax
import ml_collections
import numpy as np
import optax

from identi import io
from identi.subjects.base import without_subject
from identi.errors import ConfigError
from identi.subjects import transformer
from identi.subjects.grammar import (Grammar, GrammarConfig, make_grammar, parse, sample_grammar,
                                     to_text)
from identi.train import runtime
from identi.train.config import check_keys, check_variant
from identi.train.optimizer import make_optimizer

KIND = "transformer_lm"
SAMPLES_FILE = "samples.txt"
GRAMMATICAL_GATE = 0.95  # Least grammatical rate of samples at temperature 1 for a usable subject.
TRAIN_COMMAND = ("python -m identi.bin.train_subject --config=configs/grammar_lm.py "
                 "--workdir=runs/grammar_lm --export=PATH")
_SHOWN = 64  # Sampled sequences written to samples.txt.

# Config keys that may change when a run is resumed; anything else must match the saved run.
RESUMABLE_CHANGES = ("train.log_every_steps", "checkpoint.", "sample.")

logger = logging.getLogger(__name__)


def default_lm_subject_config() -> ml_collections.ConfigDict:
  """The schema of transformer-subject configs, with defaults (configs/grammar_lm.py); train and
  checkpoint are `runtime.subject_training_sections`."""
  base = runtime.subject_training_sections()
  c = ml_collections.ConfigDict()
  c.grammar = ml_collections.ConfigDict(dataclasses.asdict(GrammarConfig()))

  c.model = ml_collections.ConfigDict()
  c.model.d_model = 128  # Width of the residual stream.
  c.model.num_layers = 2
  c.model.num_heads = 4
  c.model.mlp_ratio = 4

  c.train = base.train
  c.train.num_steps = 3000  # About 11 minutes on 2 busy CPU cores (configs/grammar_lm.py).
  c.train.batch_size = 128
  c.checkpoint = base.checkpoint

  c.sample = ml_collections.ConfigDict()
  c.sample.num_samples = 2048  # Samples (and world sequences) scored in final.json.
  c.sample.temperature = 1.0  # 1: the model's own distribution, which the gate judges.
  return c


_POSITIVE = ("model.d_model", "model.num_layers", "model.num_heads", "model.mlp_ratio",
             "train.num_steps", "train.batch_size", "train.learning_rate",
             "train.log_every_steps", "checkpoint.every_steps", "checkpoint.max_to_keep",
             "sample.num_samples")
_NON_NEGATIVE = ("train.warmup_steps", "train.grad_clip", "train.seed", "sample.temperature")


def validate_lm_subject_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the key for unknown keys, wrong types and impossible values."""
  flat = check_keys(config, default_lm_subject_config())
  runtime.check_ranges(flat, _POSITIVE, _NON_NEGATIVE)
  if flat["model.d_model"] % flat["model.num_heads"]:
    raise ConfigError(
        f"config key 'model.d_model' is {flat['model.d_model']}, not a multiple of "
        f"model.num_heads={flat['model.num_heads']}; every head needs an equal share of the "
        "width, e.g. d_model 128 with 4 heads")
  grammar_config(config).validate()


def grammar_config(config: ml_collections.ConfigDict) -> GrammarConfig:
  return GrammarConfig(**config.grammar.to_dict())


def lm_config_from_json(d: dict[str, Any]) -> ml_collections.ConfigDict:
  """A saved (JSON) transformer-subject config as a validated ConfigDict."""
  return runtime.config_from_schema(d, default_lm_subject_config(), validate_lm_subject_config)


def build_model(config: ml_collections.ConfigDict) -> transformer.Transformer:
  g, m = grammar_config(config), config.model
  return transformer.Transformer(vocab_size=g.vocab_size, seq_len=g.seq_len, d_model=m.d_model,
                                 num_layers=m.num_layers, num_heads=m.num_heads,
                                 mlp_ratio=m.mlp_ratio)


def init_state(config: ml_collections.ConfigDict, tx: optax.GradientTransformation,
               key: jax.Array) -> dict[str, Any]:
  """The training state pytree at step 0."""
  return runtime.state_from_params(transformer.init_params(build_model(config), key), tx)


def abstract_state(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Shapes and dtypes of the training state (no computation), for restoring checkpoints."""
  tx = make_optimizer(config)
  return jax.eval_shape(lambda: init_state(config, tx, jax.random.key(0)))


def make_train_step(config: ml_collections.ConfigDict):
  """The pure training step `(state, tokens) -> (state, metrics)`; jit it with donation."""
  model = build_model(config)

  def loss_fn(params, tokens, step):
    del step
    return transformer.lm_loss(model.apply({"params": params}, tokens), tokens)

  return runtime.make_ema_step(config, loss_fn)


def training_batch(config: ml_collections.ConfigDict, grammar: Grammar, step: int) -> np.ndarray:
  """The tokens of training step `step`: a pure function of (train.seed, step)."""
  key = jax.random.fold_in(runtime.run_keys(config.train.seed)["data"], step)
  return sample_grammar(key, grammar, config.train.batch_size)["tokens"]


def train_lm_subject(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains the transformer subject in `workdir` (resuming from its latest checkpoint), then
  scores sequences sampled from its EMA params.

  Args:
    config: a config from `default_lm_subject_config()` (see configs/grammar_lm.py).
    workdir: output directory; created if missing.

  Returns:
    The final metrics (also written to `workdir/final.json`).
  """
  config = without_subject(config)
  validate_lm_subject_config(config)
  workdir, checkpointer, state, start = runtime.start_run(
      config, workdir, init_state, abstract_state, RESUMABLE_CHANGES)
  lead = jax.process_index() == 0

  grammar = make_grammar(grammar_config(config))

  m = config.model
  num_params = runtime.param_count(state["params"])
  logger.info("training the transformer subject (%d parameters, d_model %d, %d layers) on %d "
              "devices, steps %d-%d", num_params, m.d_model, m.num_layers, jax.device_count(),
              start, config.train.num_steps)
  state = runtime.run_steps(state, make_train_step(config),
                            lambda step, rows: training_batch(config, grammar, step)[rows], config,
                            start, checkpointer, workdir, rate_key="sequences_per_s",
                            rate_format="{:,.1f} seq/s", fields=runtime.SUBJECT_PROGRESS)

  final = evaluate_lm_subject(config, grammar, state["ema_params"], workdir if lead else None)
  final.update(step=int(jax.device_get(state["step"])), num_params=num_params)
  if lead:
    io.write_json(os.path.join(workdir, runtime.FINAL_FILE), final)
  return final


@functools.partial(jax.jit, static_argnames=("model", "num_samples", "temperature"))
def _draw(model: transformer.Transformer, params: Any, key: jax.Array, num_samples: int,
          temperature: float) -> jax.Array:
  """Samples of the model with `params` (traced, so new params do not recompile)."""
  return transformer.sample(key, lambda t: model.apply({"params": params}, t), num_samples,
                            model.seq_len, temperature)


def evaluate_lm_subject(config: ml_collections.ConfigDict, grammar: Grammar, params: Any,
                        workdir: str | None = None) -> dict[str, Any]:
  """Scores `sample.num_samples` sequences sampled from `params` at `sample.temperature` against
  as many world sequences (grammaticality, concepts per sequence and frequency per concept at
  every level, the loss on the world sequences), and writes some to workdir/samples.txt."""
  keys = runtime.run_keys(config.train.seed)
  s = config.sample
  model = build_model(config)
  params = jax.device_get(params)
  start = time.time()
  generated = np.asarray(_draw(model, params, keys["sample"], s.num_samples,
                               float(s.temperature)))
  seconds = time.time() - start
  reference = sample_grammar(keys["reference"], grammar, s.num_samples)["tokens"]
  gen, ref = parse(grammar, generated), parse(grammar, reference)
  loss = transformer.lm_loss(model.apply({"params": params}, reference), reference)
  rate = float(np.mean(gen["grammatical"]))
  final = {
      "grammatical_rate": rate,
      "world_grammatical_rate": float(np.mean(ref["grammatical"])),
      "gate_passed": rate >= GRAMMATICAL_GATE,
      "concepts_per_sequence_generated": [float(a.sum(axis=1).mean()) for a in gen["a"]],
      "concepts_per_sequence_train": [float(a.sum(axis=1).mean()) for a in ref["a"]],
      "frequency_generated": [a.mean(axis=0).tolist() for a in gen["a"]],
      "frequency_train": [a.mean(axis=0).tolist() for a in ref["a"]],
      "frequency_gap": [float(np.mean(np.abs(g.mean(axis=0) - r.mean(axis=0))))
                        for g, r in zip(gen["a"], ref["a"])],
      "loss_train": float(loss),
      "num_samples": s.num_samples,
      "temperature": float(s.temperature),
      "sample_seconds": seconds,
  }
  if workdir is not None:
    path = os.path.join(workdir, SAMPLES_FILE)
    shown = generated[:_SHOWN]
    lines = [f"# {len(shown)} of {s.num_samples} samples at temperature {s.temperature} "
             f"(grammatical rate {rate:.4f}); '!' marks ungrammatical ones"]
    lines += [("  " if ok else "! ") + text
              for ok, text in zip(gen["grammatical"], to_text(grammar, shown))]
    io.write_bytes(path, ("\n".join(lines) + "\n").encode())
    final["samples_file"] = path
  return final


def export_lm_subject(workdir: str, path: str) -> dict[str, Any]:
  """Writes the EMA params of the latest checkpoint and the config to `path` as one file
  (`identi.train.runtime.write_export`, kind 'transformer_lm')."""
  config, state = runtime.restore_latest(workdir, lm_config_from_json, abstract_state,
                                          TRAIN_COMMAND)
  return runtime.write_export(state["ema_params"], config.to_dict(), KIND, path,
                               int(state["step"]))


def build_transformer(config_dict: dict[str, Any]
                       ) -> tuple[transformer.Transformer, ml_collections.ConfigDict, Any]:
  config = lm_config_from_json(config_dict)
  model = build_model(config)
  return model, config, jax.eval_shape(lambda: transformer.init_params(model, jax.random.key(0)))


def load_lm_subject(path: str) -> tuple[transformer.Transformer, Any, ml_collections.ConfigDict]:
  """Reads an exported transformer subject: `(model, params, config)`; CheckpointError if
  missing, corrupt or of another kind."""
  return runtime.read_export(path, KIND, build_transformer,
                              f"re-export it, or retrain with `{TRAIN_COMMAND}`")


def lm_subject_variant(config: ml_collections.ConfigDict,
                       arg: str | None) -> ml_collections.ConfigDict:
  """Applies a `:variant` of a transformer-subject config: '' (full run) or 'smoke' (seconds on
  CPU, tests)."""
  if not check_variant(arg):
    return config
  config.model.d_model = 32
  config.model.num_layers = 1
  config.model.num_heads = 2
  config.train.num_steps = 20
  config.train.batch_size = 16
  config.train.warmup_steps = 5
  config.train.log_every_steps = 10
  config.checkpoint.every_steps = 10
  config.sample.num_samples = 16
  return config
