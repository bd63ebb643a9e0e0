"""The whole function-description benchmark: tasks, agents, scores, transcripts and a figure.

`run(config, workdir)` builds the numeric and string tasks (`identi.find.suite`) and, when
``config.units.enabled``, the unit tasks (`identi.find.units`), lets every agent of
``config.agents`` describe every task with a fresh box, scores each description
(`identi.find.scoring`; units with `identi.find.units.score_unit`), and writes
``workdir/results.json`` (per agent and category: count, success rate, median and mean NMSE or
accuracy, mean queries; bias: NMSE inside and outside the interval; units: concept accuracy and
F1),
``workdir/transcripts/<agent>_<kind>.jsonl`` (every event, tagged with its task) and the figure
``workdir/find.png`` / ``.pdf``.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from typing import Any

import ml_collections

from identi import io, plots
from identi.checks import check_count
from identi.errors import ConfigError
from identi.find import agents
from identi.find import scoring, suite
from identi.find.protocol import agent_names, get_agent

logger = logging.getLogger(__name__)

REGISTERED = agents.Scientist, agents.Baseline  # Importing `agents` registers them.

KEYS = ("seed", "agent_seed", "num_numeric", "num_string", "numeric_budget", "string_budget",
        "agents", "units")


def validate(config: ml_collections.ConfigDict) -> None:
  """ConfigError naming the key for unknown keys, agents and impossible counts."""
  unknown = sorted(set(config.keys()) - set(KEYS))
  if unknown:
    raise ConfigError(f"config keys {unknown} are unknown to the benchmark; use {', '.join(KEYS)}")
  for key in ("num_numeric", "num_string"):
    check_count(config[key], key, minimum=0)
  for key in ("numeric_budget", "string_budget"):
    check_count(config[key], key, minimum=64 if key == "numeric_budget" else 8)
  if "lm" in config.agents:  # Registered on import; its endpoint must be named before a run.
    importlib.import_module("identi.find.lm").env_transport()
  bad = [a for a in config.agents if a not in agent_names()]
  if bad or not config.agents:
    raise ConfigError(f"config key 'agents' is {tuple(config.agents)}; use some of "
                      f"{', '.join(agent_names())}")


def _progress(done: int, total: int, start: float, last: list) -> None:
  now = time.perf_counter()
  if done == total or now - last[0] >= 5.0:
    last[0] = now
    rate = done / max(now - start, 1e-9)
    eta = (total - done) / max(rate, 1e-9)
    logger.info("find %d/%d tasks | %.1f tasks/s | ETA %02d:%02d", done, total, rate,
                 int(eta) // 60, int(eta) % 60)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  validate(config)
  os.makedirs(os.path.join(workdir, "transcripts"), exist_ok=True)
  tasks = suite.numeric_tasks(config.seed, config.num_numeric) + suite.string_tasks(
      config.seed, config.num_string)
  timings: dict[str, float] = {}
  logger.info("find: %d numeric and %d string tasks", config.num_numeric, config.num_string)
  if config.units.enabled:
    from identi.find import units  # pylint: disable=g-import-not-at-top
    tasks += units.unit_tasks(config.units, os.path.join(workdir, "units"), timings)
    logger.info("find: %d unit tasks (%s)", len(tasks) - config.num_numeric - config.num_string,
                 ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
  budgets = {"numeric": config.numeric_budget, "string": config.string_budget,
             "unit": config.units.query_budget}
  records, unit_records, seconds = [], [], {}
  total, start, last = len(tasks) * len(config.agents), time.perf_counter(), [0.0]
  done = 0
  for agent_name in config.agents:
    agent = get_agent(agent_name)()
    events: dict[str, list] = {}
    t0 = time.perf_counter()
    for i, task in enumerate(tasks):
      kind = task.category.split("/")[0]
      box = task.box_factory(budgets[kind])
      description, transcript = agent.describe(box, config.agent_seed * 1_000_003 + i)
      events.setdefault(kind, []).extend(dict(e, task=box.name) for e in transcript.events)
      base = {"agent": agent_name, "category": task.category, "task": box.name,
              "queries": box.queries_used}
      if kind == "numeric":
        records.append({**base, **scoring.score_numeric(task, description)})
      elif kind == "string":
        records.append({**base, **scoring.score_string(task, description)})
      else:
        unit_records.append({**base, **units.score_unit(task, description)})
      done += 1
      _progress(done, total, start, last)
    seconds[agent_name] = time.perf_counter() - t0
    for kind, evs in events.items():
      io.write_jsonl(os.path.join(workdir, "transcripts", f"{agent_name}_{kind}.jsonl"), evs)
  result = {"settings": {k: config[k] for k in KEYS if k != "units"} | {
      "units": config.units.to_dict() if config.units.enabled else {"enabled": False}},
            "rows": scoring.summarise(records),
            "units": units.unit_summary(unit_records) if unit_records else [],
            "seconds": {"agents": seconds, "units_setup": timings}}
  result["settings"]["agents"] = list(config.agents)
  paths = plots.find_bars(result["rows"], result["units"], os.path.join(workdir, "find"))
  result["figure"] = [os.path.basename(p) for p in paths]  # Relative to the workdir.
  io.write_json(os.path.join(workdir, "results.json"), result)
  return result


def tables(result: dict[str, Any]) -> list[tuple[list[dict], list[str]]]:
  """The rows the binary prints: functions per agent and category; units per subject."""
  out = [(result["rows"], ["agent", "category", "count", "success", "median_nmse",
                           "mean_nmse", "median_nmse_inside", "median_nmse_outside",
                           "accuracy", "queries"])]
  if result["units"]:
    out.append((result["units"], ["agent", "subject", "mcc", "units", "concept_accuracy", "f1",
                                  "queries"]))
  return out
