"""The contract of the function-description benchmark: black boxes, descriptions, agents.

A *black box* is a function the agent can only call: ``query(inputs) -> outputs`` on inputs it
chooses, within a query budget (every input counts as one query). Three kinds share the contract:

- ``numeric``: inputs are floats in ``domain`` (FIND's [-127.5, 127.5]); outputs are floats.
- ``string``: inputs and outputs are strings.
- ``unit``: inputs are sets of concept names (a subset of ``vocabulary``): the box's world makes
  a sample that shows exactly those concepts, its subject runs, an SAE encodes, and the output is
  one unit's activation.

An *agent* gets a box and returns a `Description`: Python source that defines ``f`` (one input to
one output, what the description claims the box computes; for units ``f(concepts) -> float``)
and one line of text, together with a `Transcript` of what it did (hypotheses, experiments,
updates), written as JSONL. A *task* pairs a box with its ground truth, which only the scorer
reads. Agents are registered by name (``register_agent``), as subjects are.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, ClassVar, Protocol, Sequence, runtime_checkable

import numpy as np

from identi import io
from identi.errors import ConfigError, IdentiError

KINDS = ("numeric", "string", "unit")
NUMERIC_DOMAIN = (-127.5, 127.5)


class QueryBudgetError(IdentiError, RuntimeError):
  """An agent asked a black box for more inputs than its query budget allows."""


@dataclasses.dataclass(frozen=True)
class Description:
  """What an agent says a black box computes: ``code`` defines ``f``; ``text`` is one line."""
  code: str
  text: str


@dataclasses.dataclass
class Transcript:
  """The record of one agent on one box: a list of events, each a JSON-able dict with a
  ``type`` of 'hypothesis', 'experiment' or 'update' (and 'description' at the end)."""
  events: list[dict[str, Any]] = dataclasses.field(default_factory=list)

  def add(self, type_: str, **fields: Any) -> None:
    if type_ not in ("hypothesis", "experiment", "update", "description"):
      raise ValueError(f"transcript event type {type_!r} is not one of hypothesis, experiment, "
                       "update, description")
    self.events.append({"type": type_, **fields})

  def write(self, path: str) -> None:
    """Writes the events as JSONL (atomically)."""
    io.write_jsonl(path, self.events)


@runtime_checkable
class BlackBox(Protocol):
  """What an agent sees of a function: its kind, its input space and ``query``."""

  name: str
  kind: str  # one of KINDS
  budget: int  # the most inputs `query` answers in total

  @property
  def queries_used(self) -> int: ...

  def query(self, inputs: Sequence[Any]) -> list[Any]: ...


class CountedBox:
  """A `BlackBox` over a plain function: counts queries and refuses those past the budget.

  ``vocabulary`` is the concepts a unit box accepts (empty for numeric and string boxes);
  ``domain`` the numeric box's input interval.
  """

  def __init__(self, name: str, kind: str, fn: Callable[[Any], Any], budget: int,
               domain: tuple[float, float] = NUMERIC_DOMAIN,
               vocabulary: tuple[str, ...] = ()):
    if kind not in KINDS:
      raise ConfigError(f"black box kind {kind!r} is not one of {', '.join(KINDS)}")
    self.name, self.kind, self.budget = name, kind, int(budget)
    self.domain, self.vocabulary = domain, tuple(vocabulary)
    self._fn = fn
    self._used = 0

  @property
  def queries_used(self) -> int:
    return self._used

  def query(self, inputs: Sequence[Any]) -> list[Any]:
    inputs = list(inputs)
    if self._used + len(inputs) > self.budget:
      raise QueryBudgetError(
          f"black box {self.name!r}: {len(inputs)} more queries would exceed its budget of "
          f"{self.budget} ({self._used} used); ask for fewer inputs")
    self._used += len(inputs)
    if self.kind == "numeric":
      xs = np.asarray(inputs, np.float64)
      if not np.all(np.isfinite(xs)):
        raise ValueError(f"black box {self.name!r}: inputs must be finite numbers")
      lo, hi = self.domain
      return [float(self._fn(float(np.clip(x, lo, hi)))) for x in xs]
    if self.kind == "string":
      if not all(isinstance(s, str) for s in inputs):
        raise ValueError(f"black box {self.name!r}: inputs must be strings")
      return [self._fn(s) for s in inputs]
    unknown = sorted({c for s in inputs for c in s} - set(self.vocabulary))
    if unknown:
      raise ValueError(f"black box {self.name!r}: unknown concepts {unknown}; choose from its "
                       "vocabulary")
    return [float(v) for v in self._fn([frozenset(s) for s in inputs])]


@dataclasses.dataclass(frozen=True)
class Task:
  """A box and its ground truth. ``category`` groups tasks in the report (e.g. 'numeric/linear',
  'numeric/bias', 'string/reverse', 'unit/grammar'); ``truth`` is the true function as a
  `Description`; ``info`` holds what scoring needs beyond it (a bias interval, held-out inputs,
  a unit's matched concept and MCC)."""
  box_factory: Callable[[int], CountedBox]  # budget -> a fresh box
  category: str
  truth: Description
  info: dict[str, Any] = dataclasses.field(default_factory=dict)


@runtime_checkable
class Agent(Protocol):
  """Describes black boxes. Deterministic given ``seed``."""

  name: ClassVar[str]

  def describe(self, box: BlackBox, seed: int) -> tuple[Description, Transcript]: ...


_AGENTS: dict[str, type] = {}


def register_agent(name: str) -> Callable[[type], type]:
  """Class decorator: registers an agent class under `name`."""

  def register(cls: type) -> type:
    if name in _AGENTS and _AGENTS[name] is not cls:
      raise ValueError(f"agent {name!r} is already registered by {_AGENTS[name].__module__}")
    cls.name = name
    _AGENTS[name] = cls
    return cls

  return register


def agent_names() -> tuple[str, ...]:
  return tuple(sorted(_AGENTS))


def get_agent(name: str) -> type:
  """The agent class registered under `name`; ConfigError naming the known agents otherwise."""
  if name not in _AGENTS:
    raise ConfigError(f"agent {name!r} is not registered; use one of "
                      f"{', '.join(agent_names()) or '(none)'} or register one with "
                      "identi.find.register_agent")
  return _AGENTS[name]


def compile_description(description: Description) -> Callable[[Any], Any]:
  """``f`` from a description's code, run with ``math`` and ``numpy as np`` in scope; a
  description whose code does not define a callable ``f`` gives a function that returns NaN
  (numeric) or None, so that it scores as wrong rather than stopping the benchmark."""
  scope: dict[str, Any] = {"math": math, "np": np, "__builtins__": __builtins__}
  try:
    exec(compile(description.code, "<description>", "exec"), scope)  # pylint: disable=exec-used
  except Exception:  # pylint: disable=broad-except
    return lambda x: None
  f = scope.get("f")
  return f if callable(f) else (lambda x: None)
