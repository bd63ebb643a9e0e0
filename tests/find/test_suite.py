"""The function suite: deterministic, every category, truths that are what the boxes compute."""

import numpy as np

from identi.find import suite
from identi.find.protocol import compile_description


def test_numeric_tasks_are_deterministic_and_cover_every_category():
  a, b = suite.numeric_tasks(3, 20), suite.numeric_tasks(3, 20)
  assert [t.truth for t in a] == [t.truth for t in b]
  assert {t.category for t in a} == {f"numeric/{c}" for c in
                                     suite.NUMERIC_PRIMITIVES + suite.NUMERIC_COMPLICATIONS}
  assert [t.truth for t in suite.numeric_tasks(4, 20)] != [t.truth for t in a]


def test_numeric_boxes_compute_their_truth_plus_noise_only_when_noisy():
  for task in suite.numeric_tasks(5, 10):
    f = compile_description(task.truth)
    xs = [-100.0, -3.0, 0.5, 60.0]
    got = np.array(task.box_factory(10).query(xs))
    want = np.array([f(x) for x in xs])
    if task.category == "numeric/noise":
      assert not np.allclose(got, want) and np.all(np.abs(got - want) < 6 * task.info["sigma"])
      again = np.array(task.box_factory(10).query(xs))
      assert np.array_equal(got, again)  # A fresh box draws the same noise.
    else:
      np.testing.assert_allclose(got, want)


def test_bias_tasks_deviate_by_their_offset_at_the_interval_edges():
  tasks = [t for t in suite.numeric_tasks(6, 40) if t.category == "numeric/bias"]
  assert len(tasks) == 4
  for task in tasks:
    lo, hi = task.info["interval"]
    f = compile_description(task.truth)
    for edge, sign in ((lo, 1.0), (hi, -1.0)):
      jump = f(edge + sign * 1e-4) - f(edge - sign * 1e-4)
      np.testing.assert_allclose(jump, task.info["offset"], rtol=1e-3, atol=1e-3)


def test_string_tasks_hold_heldout_inputs_and_run():
  tasks = suite.string_tasks(2, 14)
  assert {t.category.split("/")[1] for t in tasks} == set(suite.STRING_KINDS)
  for t in tasks:
    f = compile_description(t.truth)
    assert len(t.info["heldout"]) == 50
    assert all(isinstance(f(s), str) for s in t.info["heldout"])
