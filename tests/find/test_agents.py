"""The scientist and the baseline on boxes whose answers are known."""

import numpy as np

from identi.find import CountedBox, Description, get_agent, suite
from identi.find import agents  # noqa: F401  (registers the agents)
from identi.find.scoring import score_numeric, score_string
from identi.find.protocol import Task


def _task(code, kind="numeric", info=None):
  from identi.find.protocol import compile_description
  f = compile_description(Description(code, ""))
  return Task(lambda budget: CountedBox("t", kind, f, budget), f"{kind}/x", Description(code, ""),
              info or {})


def test_scientist_recovers_a_line_exactly_and_records_its_experiments():
  task = _task("def f(x):\n  return 2.5 * x - 7.0\n")
  box = task.box_factory(160)
  description, transcript = get_agent("scientist")().describe(box, 0)
  assert score_numeric(task, description)["nmse"] < 1e-12
  types = [e["type"] for e in transcript.events]
  assert "experiment" in types and "hypothesis" in types and types[-1] == "description"
  assert box.queries_used <= 160


def test_scientist_finds_a_local_deviation_and_its_interval():
  code = "def f(x):\n  return 0.5 * x + (40.0 if 10.0 <= x <= 25.0 else 0.0)\n"
  task = _task(code, info={"interval": [10.0, 25.0]})
  description, _ = get_agent("scientist")().describe(task.box_factory(160), 0)
  score = score_numeric(task, description)
  assert score["success"] and score["nmse_inside"] < 0.05, (description.code, score)
  assert "if" in description.code


def test_a_large_deviation_is_a_correction_not_a_two_threshold_step():
  # Every point's best fit is a two-threshold step; the line plus a correction has the lower BIC.
  code = "def f(x):\n  return 1.3 * x + (230.0 if -85.0 <= x <= -67.0 else 0.0)\n"
  task = _task(code, info={"interval": [-85.0, -67.0]})
  description, _ = get_agent("scientist")().describe(task.box_factory(160), 0)
  score = score_numeric(task, description)
  assert score["nmse"] < 1e-6 and description.text.startswith("poly1, shifted by 230"), (
      description.text, score)


def test_baseline_spends_the_whole_budget_at_random_inputs():
  task = _task("def f(x):\n  return abs(x - 3.0)\n")
  box = task.box_factory(100)
  description, transcript = get_agent("baseline")().describe(box, 1)
  assert box.queries_used == 100
  assert transcript.events[0]["purpose"] == "random inputs"
  assert score_numeric(task, description)["success"]


def test_agents_are_deterministic():
  task = suite.numeric_tasks(9, 10)[6]  # noise
  one = get_agent("scientist")().describe(task.box_factory(160), 3)[0]
  two = get_agent("scientist")().describe(task.box_factory(160), 3)[0]
  assert one == two


def test_scientist_names_string_programs_with_few_queries():
  for task in suite.string_tasks(11, 6):
    box = task.box_factory(40)
    description, _ = get_agent("scientist")().describe(box, 0)
    assert score_string(task, description)["accuracy"] >= 0.9, (task.truth.text, description.text)
    assert box.queries_used < 15


def test_unfitting_string_box_gets_the_fallback_description():
  task = _task("def f(s):\n  return str(len(s) ** 2)\n", kind="string",
               info={"heldout": ["abc", "hello world"]})
  description, _ = get_agent("baseline")().describe(task.box_factory(10), 0)
  assert "no program" in description.text
  assert score_string(task, description)["success"] is False
  np.testing.assert_equal(score_string(task, task.truth)["accuracy"], 1.0)
