"""The language-model agent (FIND's AIA) against scripted transports: experiments, budget, parse."""

import io
import json

from identi.find import CountedBox, Description, compile_description, get_agent
from identi.find import lm  # noqa: F401  (registers the agent)
from identi.find.protocol import Task
from identi.find.scoring import score_numeric


def _line_task():
  truth = Description("def f(x):\n  return 2.0 * x + 1.0\n", "line")
  f = compile_description(truth)
  return Task(lambda b: CountedBox("t", "numeric", f, b), "numeric/linear", truth)


class Scripted:
  """A fake model: replies in turn, and keeps every conversation it was sent."""

  def __init__(self, *replies):
    self.replies, self.seen = list(replies), []

  def __call__(self, messages):
    self.seen.append([dict(m) for m in messages])
    return self.replies.pop(0)


def test_lm_agent_runs_experiments_and_returns_the_models_code():
  task = _line_task()
  model = Scripted("Let me try. PYTHON(f(0, 1, -2.5))",
                   "[DESCRIPTION]: a line of slope 2\n[CODE]:\n```python\ndef f(x):\n"
                   "  return 2 * x + 1\n```")
  box = task.box_factory(50)
  description, transcript = get_agent("lm")(transport=model).describe(box, 0)
  assert box.queries_used == 3
  assert "f(0.0) = 1.0" in model.seen[1][-1]["content"]
  assert "f(-2.5) = -4.0" in model.seen[1][-1]["content"]
  assert "PYTHON(f(" in model.seen[0][0]["content"] and "50" in model.seen[0][0]["content"]
  assert description.text == "a line of slope 2"
  assert score_numeric(task, description)["nmse"] == 0.0
  types = [e["type"] for e in transcript.events]
  assert types[:3] == ["hypothesis", "experiment", "update"] and types[-1] == "description"


def test_lm_agent_keeps_to_the_budget_and_falls_back_without_code():
  task = _line_task()
  model = Scripted("PYTHON(f(1, 2, 3, 4, 5))", "PYTHON(f(6))", "I am not sure.")
  box = task.box_factory(3)
  description, _ = lm.LanguageModelAgent(transport=model, max_turns=2).describe(box, 0)
  assert box.queries_used == 3
  assert "2 inputs not run" in model.seen[1][-1]["content"]
  assert "final" in model.seen[2][-1]["content"]  # The last turn asks for the answer.
  assert description.text == "the model gave no description"
  assert not score_numeric(task, description)["success"]


def test_lm_agent_parses_unit_and_string_inputs():
  assert lm.parse_inputs('{"a", "b"}, [], ["c"], "dog"', "unit") == [
      frozenset({"a", "b"}), frozenset(), frozenset({"c"}), frozenset({"dog"})]
  assert lm.parse_inputs('"red cat", "x"', "string") == ["red cat", "x"]
  assert lm.parse_inputs("", "numeric") == []


def test_http_transport_posts_chat_completions():
  sent = {}

  class Response(io.BytesIO):
    def __enter__(self):
      return self

    def __exit__(self, *a):
      return False

  def opener(request, timeout):
    sent["url"], sent["body"] = request.full_url, json.loads(request.data)
    sent["auth"] = request.get_header("Authorization")
    return Response(json.dumps({"choices": [{"message": {"content": "hi"}}]}).encode())

  send = lm.http_transport("http://lm.test/v1/chat/completions", "m", api_key="k", opener=opener)
  assert send([{"role": "user", "content": "x"}]) == "hi"
  assert sent["url"] == "http://lm.test/v1/chat/completions" and sent["auth"] == "Bearer k"
  assert sent["body"]["model"] == "m" and sent["body"]["messages"][0]["content"] == "x"
