"""The black-box contract: budgets, input checks, transcripts, the agent registry."""

import json

import pytest

from identi.errors import ConfigError
from identi.find import (CountedBox, Description, QueryBudgetError, Transcript,
                         compile_description, get_agent)


def test_box_counts_queries_and_refuses_past_the_budget():
  box = CountedBox("double", "numeric", lambda x: 2 * x, budget=3)
  assert box.query([1.0, 2.0]) == [2.0, 4.0]
  assert box.queries_used == 2
  with pytest.raises(QueryBudgetError, match="budget of 3"):
    box.query([1.0, 2.0])
  assert box.query([500.0]) == [255.0]  # Inputs are clipped to the domain.


def test_box_rejects_bad_inputs():
  with pytest.raises(ValueError, match="finite"):
    CountedBox("n", "numeric", abs, 5).query([float("nan")])
  with pytest.raises(ValueError, match="strings"):
    CountedBox("s", "string", str.upper, 5).query([3])
  with pytest.raises(ValueError, match="unknown concepts"):
    CountedBox("u", "unit", lambda sets: [0.0] * len(sets), 5, vocabulary=("a",)).query([{"b"}])
  with pytest.raises(ConfigError, match="kind"):
    CountedBox("x", "image", abs, 5)


def test_transcript_writes_jsonl(tmp_path):
  t = Transcript()
  t.add("hypothesis", best="x")
  t.add("experiment", inputs=[1.0], outputs=[2.0])
  with pytest.raises(ValueError, match="event type"):
    t.add("guess")
  t.write(str(tmp_path / "t.jsonl"))
  lines = [json.loads(l) for l in (tmp_path / "t.jsonl").read_text().splitlines()]
  assert [l["type"] for l in lines] == ["hypothesis", "experiment"]


def test_broken_description_code_gives_a_function_that_fails_softly():
  assert compile_description(Description("def f(x) return", "broken"))(1.0) is None
  assert compile_description(Description("g = 1", "no f"))(1.0) is None
  assert compile_description(Description("def f(x):\n  return np.abs(x)\n", ""))(-2.0) == 2.0


def test_unknown_agent_names_the_known_ones():
  import identi.find.agents  # noqa: F401  (registers the agents)
  with pytest.raises(ConfigError, match="baseline, (lm, )?scientist"):
    get_agent("oracle")
