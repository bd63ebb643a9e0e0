"""FIND's scores: NMSE (inside and outside an interval), exact match, failures that do not crash."""

import math

from identi.find import CountedBox, Description
from identi.find.protocol import Task
from identi.find.scoring import score_numeric, score_string, summarise

LINE = Description("def f(x):\n  return 3.0 * x\n", "line")


def _task(truth, **info):
  return Task(lambda b: CountedBox("t", "numeric", abs, b), "numeric/x", truth, info)


def test_nmse_is_zero_for_the_truth_and_one_for_the_mean():
  assert score_numeric(_task(LINE), LINE)["nmse"] == 0.0
  mean = Description("def f(x):\n  return 0.0\n", "zero")
  assert abs(score_numeric(_task(LINE), mean)["nmse"] - 1.0) < 1e-9
  assert not score_numeric(_task(LINE), mean)["success"]


def test_crashing_or_non_numeric_descriptions_fail_without_raising():
  for code in ("def f(x):\n  return 1 / 0\n", "def f(x):\n  return 'a'\n", "syntax error("):
    s = score_numeric(_task(LINE), Description(code, ""))
    assert s["nmse"] == math.inf and not s["success"]


def test_interval_errors_are_reported_separately():
  biased = Description("def f(x):\n  return 3.0 * x + (50.0 if 0 <= x <= 20 else 0.0)\n", "")
  s = score_numeric(_task(biased, interval=[0.0, 20.0]), LINE)
  assert s["nmse_outside"] == 0.0 and s["nmse_inside"] > 0.0


def test_strings_are_scored_by_exact_match():
  up = Description("def f(s):\n  return s.upper()\n", "")
  task = Task(lambda b: CountedBox("t", "string", str.upper, b), "string/x", up,
              {"heldout": ["ab", "cd", "ef", "gh"]})
  assert score_string(task, up) == {"accuracy": 1.0, "success": True}
  half = Description("def f(s):\n  return s.upper() if s < 'c' else s\n", "")
  assert score_string(task, half)["accuracy"] == 0.25


def test_summary_per_agent_and_category():
  rows = summarise([{"agent": "a", "category": "numeric/x", "success": True, "nmse": 0.0,
                     "queries": 10}, {"agent": "a", "category": "numeric/x", "success": False,
                                      "nmse": math.inf, "queries": 20}])
  assert rows == [{"agent": "a", "category": "numeric/x", "count": 2, "success": 0.5,
                   "queries": 15.0, "median_nmse": math.inf, "mean_nmse": math.inf}]
