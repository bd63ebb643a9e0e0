"""An agent backed by a language model, as FIND's automated interpretability agent (AIA).

The model talks to the black box through one command: a reply holding
``PYTHON(f(x1, x2, ...))`` asks the box for those inputs (Python literals: numbers, strings, or
for unit boxes sets or lists of concept names), and the next user message gives the outputs. It
ends with a description in FIND's format::

  [DESCRIPTION]: one line of text
  [CODE]:
  ```python
  def f(x):
    ...
  ```

The agent speaks the chat-completions format of OpenAI-compatible servers over `urllib`, or
any ``transport(messages) -> reply`` passed in (the tests pass a scripted one). Importing this
module registers the agent as ``lm``; the benchmark imports it only when ``config.agents`` names
it, and its endpoint comes from the environment: ``IDENTI_LM_URL`` (e.g.
``http://localhost:8000/v1/chat/completions``), ``IDENTI_LM_MODEL`` and, when the server wants
one, ``IDENTI_LM_API_KEY``.
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
import urllib.request
from typing import Any, Callable

from identi.errors import ConfigError
from identi.find.protocol import Description, Transcript, register_agent

Transport = Callable[[list[dict[str, str]]], str]

_COMMAND = re.compile(r"PYTHON\(\s*f\((.*?)\)\s*\)", re.S)
_CODE = re.compile(r"\[CODE\]:?\s*```(?:python)?\s*\n(.*?)```", re.S)
_TEXT = re.compile(r"\[DESCRIPTION\]:?\s*(.+)")

_INPUTS = {
    "numeric": "real numbers in [{lo}, {hi}], e.g. PYTHON(f(-128, 0.5, 3, 100))",
    "string": "strings, e.g. PYTHON(f(\"hello\", \"blue cat\", \"a b c\"))",
    "unit": ("sets of concept names from this vocabulary: {vocab}; e.g. "
             "PYTHON(f({{\"a\"}}, {{\"a\", \"b\"}}, [])) (a list works too; [] is no concept)"),
}
_OUTPUTS = {"numeric": "a real number", "string": "a string",
            "unit": "the unit's activation on a sample showing exactly those concepts"}


def system_prompt(box) -> str:
  """FIND's AIA instructions for one box."""
  lo, hi = getattr(box, "domain", (None, None))
  inputs = _INPUTS[box.kind].format(lo=lo, hi=hi, vocab=", ".join(box.vocabulary))
  return (
      "You are an interpretability agent. There is a black-box function f; your job is to find "
      f"out what it computes. f takes {inputs}, and returns {_OUTPUTS[box.kind]}. Run "
      "experiments by writing PYTHON(f(input1, input2, ...)) in your reply; the next message "
      f"gives the outputs. You may ask for at most {box.budget} inputs in total. Form "
      "hypotheses, test them, and when you are confident end with\n"
      "[DESCRIPTION]: <one line>\n[CODE]:\n```python\ndef f(x):\n  ...\n```\n"
      "The code must define f and may use math and numpy as np.")


def parse_inputs(args: str, kind: str) -> list[Any]:
  """The inputs of one ``f(...)`` command (its argument list as Python literals)."""
  args = args.strip()
  if not args:
    return []
  values = ast.literal_eval(f"({args},)")
  if kind == "numeric":
    out = [float(v) for v in values]
    if not all(math.isfinite(v) for v in out):
      raise ValueError("inputs must be finite numbers")
    return out
  if kind == "string":
    return [str(v) for v in values]
  return [frozenset({v}) if isinstance(v, str) else frozenset(str(c) for c in v) for v in values]


def parse_description(reply: str) -> Description | None:
  """The final description of a reply, or None if it holds no ``[CODE]`` block."""
  code = _CODE.search(reply)
  if code is None:
    return None
  text = _TEXT.search(reply)
  return Description(code.group(1), text.group(1).strip() if text else "")


def _fallback(kind: str) -> Description:
  body = "return s" if kind == "string" else "return float('nan')"
  return Description(f"def f(x):\n  {body}\n" if kind != "string" else f"def f(s):\n  {body}\n",
                     "the model gave no description")


def http_transport(url: str, model: str, api_key: str | None = None, temperature: float = 0.0,
                   timeout: float = 120.0,
                   opener: Callable[..., Any] = urllib.request.urlopen) -> Transport:
  """A transport for an OpenAI-compatible chat-completions endpoint (``opener`` is for tests)."""

  def send(messages: list[dict[str, str]]) -> str:
    body = json.dumps({"model": model, "messages": messages,
                       "temperature": temperature}).encode()
    headers = {"Content-Type": "application/json"}
    if api_key:
      headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with opener(request, timeout=timeout) as response:
      reply = json.loads(response.read().decode())
    return reply["choices"][0]["message"]["content"]

  return send


def env_transport() -> Transport:
  """`http_transport` for the endpoint the environment names; ConfigError if it names none."""
  url, model = os.environ.get("IDENTI_LM_URL"), os.environ.get("IDENTI_LM_MODEL")
  if not url or not model:
    raise ConfigError("agent 'lm' needs an OpenAI-compatible endpoint: set IDENTI_LM_URL (e.g. "
                      "http://localhost:8000/v1/chat/completions) and IDENTI_LM_MODEL")
  return http_transport(url, model, os.environ.get("IDENTI_LM_API_KEY"))


def _show(value: Any) -> str:
  return repr(sorted(value)) if isinstance(value, frozenset) else repr(value)


@register_agent("lm")
class LanguageModelAgent:
  """FIND's AIA loop over a chat model; ``max_turns`` model replies at most per box."""

  def __init__(self, transport: Transport | None = None, max_turns: int = 20):
    self._transport, self.max_turns = transport, int(max_turns)

  @property
  def transport(self) -> Transport:
    if self._transport is None:
      self._transport = env_transport()
    return self._transport

  def describe(self, box, seed: int) -> tuple[Description, Transcript]:
    del seed  # The model's own sampling decides; temperature 0 over HTTP.
    t = Transcript()
    messages = [{"role": "system", "content": system_prompt(box)},
                {"role": "user", "content": "Begin your experiments."}]
    description = None
    for turn in range(self.max_turns + 1):
      if turn == self.max_turns:
        messages.append({"role": "user", "content": "No experiments are left: give your final "
                                                    "[DESCRIPTION] and [CODE] now."})
      reply = self.transport(messages)
      messages.append({"role": "assistant", "content": reply})
      t.add("hypothesis", turn=turn, reply=reply)
      commands = _COMMAND.findall(reply)
      description = parse_description(reply)
      if description is not None or turn == self.max_turns:
        break
      if not commands:
        messages.append({"role": "user", "content": "Run experiments with PYTHON(f(...)) or end "
                                                    "with [DESCRIPTION] and [CODE]."})
        continue
      answers = []
      for args in commands:
        try:
          inputs = parse_inputs(args, box.kind)
        except (ValueError, SyntaxError, TypeError) as e:
          answers.append(f"f({args}) could not be read: {e}")
          continue
        left = box.budget - box.queries_used
        asked, inputs = len(inputs), inputs[:left]
        try:
          outputs = box.query(inputs) if inputs else []
        except ValueError as e:  # e.g. a concept outside the vocabulary
          answers.append(f"f({args}) was refused: {e}")
          continue
        t.add("experiment", inputs=[sorted(v) if isinstance(v, frozenset) else v for v in inputs],
              outputs=outputs)
        answers += [f"f({_show(x)}) = {y!r}" for x, y in zip(inputs, outputs)]
        if asked > len(inputs):
          answers.append(f"({asked - len(inputs)} inputs not run: the budget of {box.budget} "
                         "is spent)")
      answers.append(f"{box.budget - box.queries_used} inputs left.")
      messages.append({"role": "user", "content": "\n".join(answers)})
      t.add("update", queries_used=box.queries_used)
    description = description or _fallback(box.kind)
    t.add("description", code=description.code, text=description.text)
    return description, t
