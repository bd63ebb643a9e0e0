"""The contract every subject of the pipeline fulfils, and the registry that picks one by name.

A *subject* is a generative model together with the world it was trained on, where the world's
latent concepts are known. The pipeline (`identi.experiments`: capture -> graph -> steer) reads a
config's ``subject.kind`` and asks the registry for that subject; it never looks at the shape of
the config. A new subject (a pretrained model, a black-box function suite) registers itself the
same way:

    @register_subject("my_model")
    class MyModel:
      ...  # the methods of `Subject`

Kinds shipped with identi: ``hsm`` (linear views of a hierarchical selection world),
``scenes`` (a diffusion U-Net on the scenes world), ``grammar`` (a transformer on the grammar
world) and ``minilm_wordnet`` (the pretrained all-MiniLM-L6-v2 on WordNet-labelled sentences).
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Protocol, runtime_checkable

import jax
import ml_collections
import numpy as np

from identi.errors import ConfigError


@runtime_checkable
class Subject(Protocol):
  """What the pipeline needs of a subject.

  World (ground truth):
  - ``level_sizes``: number of concepts per level, parts first.
  - ``adjacency``: the true graph, one bool (n_l, n_{l+1}) matrix per pair of adjacent levels.
  - ``sample(key, n)``: ``{"obs", "a", "z"}``: n observations and, per level, their presence
    bits ``a`` and intensities ``z``.
  - ``read(obs)``: ``{"a", "z"}`` recovered from observations alone (detectors, a parser, or the
    latents the observation was made from).

  Model (what interpretability acts on):
  - ``sites``: the hookable places whose activations the pipeline reads (views, blocks at
    timesteps, layers).
  - ``capture(inputs, sites)``: activations ``{site: array}`` of the model on `inputs`.
  - ``patch(inputs, edits)``: the model's output with ``edits[site](activation)`` applied.
  - ``generate(key, n, edits=None)``: n new observations, optionally with edits applied at every
    step (subjects that do not generate raise NotImplementedError).

  Experiment (the pipeline's entry points, each writing into `workdir`):
  - ``run_capture(workdir)``, ``run_graph(workdir)``, ``run_steering(workdir)``, and
    ``tables(stage, result)``: the rows a binary prints for a stage's result.
  """

  kind: ClassVar[str]
  config: ml_collections.ConfigDict

  @property
  def level_sizes(self) -> tuple[int, ...]: ...

  @property
  def adjacency(self) -> list[np.ndarray]: ...

  @property
  def sites(self) -> tuple[str, ...]: ...

  def sample(self, key: jax.Array, n: int) -> dict[str, Any]: ...

  def read(self, obs: Any) -> dict[str, Any]: ...

  def capture(self, inputs: Any, sites: tuple[str, ...]) -> dict[str, Any]: ...

  def patch(self, inputs: Any, edits: dict[str, Callable[[Any], Any]]) -> Any: ...

  def generate(self, key: jax.Array, n: int,
               edits: dict[str, Callable[[Any], Any]] | None = None) -> Any: ...

  def run_capture(self, workdir: str) -> dict[str, Any]: ...

  def run_graph(self, workdir: str) -> dict[str, Any]: ...

  def run_steering(self, workdir: str) -> dict[str, Any]: ...

  @staticmethod
  def tables(stage: str, result: dict[str, Any]) -> list[tuple[list[dict], list[str]]]: ...


class SubjectSpec(Protocol):
  """A registered subject class: its config schema, `:variant`s and constructor."""

  kind: ClassVar[str]

  @staticmethod
  def default_config() -> ml_collections.ConfigDict: ...

  @staticmethod
  def variant(config: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict: ...

  @staticmethod
  def validate_config(config: ml_collections.ConfigDict) -> None: ...

  def __call__(self, config: ml_collections.ConfigDict) -> Subject: ...


_REGISTRY: dict[str, Any] = {}


def register_subject(kind: str) -> Callable[[type], type]:
  """Class decorator: registers a subject class under `kind` (``config.subject.kind``)."""

  def register(cls: type) -> type:
    if kind in _REGISTRY and _REGISTRY[kind] is not cls:
      raise ValueError(f"subject kind {kind!r} is already registered by "
                       f"{_REGISTRY[kind].__module__}.{_REGISTRY[kind].__name__}")
    cls.kind = kind
    _REGISTRY[kind] = cls
    return cls

  return register


def subject_kinds() -> tuple[str, ...]:
  """The registered subject kinds, sorted."""
  _load_builtin_subjects()
  return tuple(sorted(_REGISTRY))


def get_subject(kind: str) -> Any:
  """The subject class registered under `kind`; ConfigError naming the known kinds otherwise."""
  _load_builtin_subjects()
  if kind not in _REGISTRY:
    raise ConfigError(f"config key 'subject.kind' is {kind!r}; use one of "
                      f"{', '.join(sorted(_REGISTRY))} (or register a subject with "
                      "identi.subjects.register_subject)")
  return _REGISTRY[kind]


def config_kind(config: ml_collections.ConfigDict) -> str:
  """``config.subject.kind``, with a ConfigError that says how to set it when it is missing."""
  if "subject" not in config or "kind" not in config.subject:
    raise ConfigError("the config has no 'subject.kind'; experiment configs name their subject "
                      f"(one of {', '.join(subject_kinds())}), e.g. configs/scenes_concepts.py")
  return config.subject.kind


def without_subject(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy of `config` without its 'subject' section: what a subject's trainer validates, saves
  and exports (``subject.kind`` only says which trainer runs)."""
  out = config.copy_and_resolve_references()
  if "subject" in out:
    with out.unlocked():
      del out["subject"]
  return out


def load_subject_for(config: ml_collections.ConfigDict) -> Subject:
  """The subject named by ``config.subject.kind``, validated and built from `config`."""
  cls = get_subject(config_kind(config))
  cls.validate_config(config)
  return cls(config)


def _load_builtin_subjects() -> None:
  """Imports the subjects identi ships, which registers them."""
  # pylint: disable=g-import-not-at-top,unused-import
  from identi.subjects import (grammar_lm, hsm_views, minilm_wordnet, prompted_scenes,  # noqa: F401
                               scenes_unet)
