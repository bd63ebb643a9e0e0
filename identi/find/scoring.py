"""Scoring as FIND does: run the description's code and compare it with the truth.

Numeric: normalised MSE, mean((f_hat - f)^2) / var(f), on 1,001 evenly spaced points of the
domain against the noise-free truth; a function counts as described when NMSE < 0.1. For tasks
with an interval (bias, approximation) the NMSE inside and outside it as well, each normalised
by the variance of f over the whole grid. Strings: exact-match accuracy on the task's held-out
inputs; described when accuracy >= 0.9. Code that raises or returns a non-number scores as a
failure (NMSE inf, a wrong string); it never stops the benchmark.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from identi.find.protocol import NUMERIC_DOMAIN, Description, Task, compile_description

NMSE_SUCCESS = 0.1
STRING_SUCCESS = 0.9
GRID = np.linspace(NUMERIC_DOMAIN[0], NUMERIC_DOMAIN[1], 1001)


def _values(f, xs) -> np.ndarray:
  out = np.full(len(xs), np.nan)
  for i, x in enumerate(xs):
    try:
      out[i] = float(f(float(x)))
    except Exception:  # pylint: disable=broad-except
      out[i] = np.nan
  return out


def score_numeric(task: Task, description: Description) -> dict[str, Any]:
  truth = _values(compile_description(task.truth), GRID)
  guess = _values(compile_description(description), GRID)
  var = max(float(np.var(truth)), 1e-12)
  err = (guess - truth) ** 2

  def nmse(mask) -> float:
    e = err[mask]
    return float(np.mean(e) / var) if np.all(np.isfinite(e)) else math.inf

  out = {"nmse": nmse(np.ones_like(GRID, bool))}
  out["success"] = bool(out["nmse"] < NMSE_SUCCESS)
  if "interval" in task.info:
    lo, hi = task.info["interval"]
    inside = (GRID >= lo) & (GRID <= hi)
    out["nmse_inside"], out["nmse_outside"] = nmse(inside), nmse(~inside)
  return out


def score_string(task: Task, description: Description) -> dict[str, Any]:
  truth, guess = compile_description(task.truth), compile_description(description)
  hits = []
  for s in task.info["heldout"]:
    try:
      hits.append(guess(s) == truth(s))
    except Exception:  # pylint: disable=broad-except
      hits.append(False)
  accuracy = float(np.mean(hits))
  return {"accuracy": accuracy, "success": bool(accuracy >= STRING_SUCCESS)}


def summarise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
  """One row per (agent, category): count, success rate, median and mean NMSE (numeric; the
  mean is inf when any description failed to run) or mean accuracy (strings), the same NMSEs
  inside and outside the interval where there is one, and mean queries."""
  rows = []
  keys = sorted({(r["agent"], r["category"]) for r in records})
  for agent, category in keys:
    group = [r for r in records if r["agent"] == agent and r["category"] == category]
    row = {"agent": agent, "category": category, "count": len(group),
           "success": float(np.mean([r["success"] for r in group])),
           "queries": float(np.mean([r["queries"] for r in group]))}
    for key in ("nmse", "nmse_inside", "nmse_outside"):
      vals = [r[key] for r in group if key in r]
      if vals:  # The mean is inf as soon as one description failed; the median is not.
        row[f"median_{key}"] = float(np.median(vals))
        row[f"mean_{key}"] = float(np.mean(vals))
    vals = [r["accuracy"] for r in group if "accuracy" in r]
    if vals:
      row["accuracy"] = float(np.mean(vals))
    rows.append(row)
  return rows
