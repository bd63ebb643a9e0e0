"""How the benchmark's agents describe unit boxes: an interactive unit scientist and a
non-interactive baseline, both deterministic given their seed.

`describe_unit(box, seed, interactive)` returns a `Description` (code ``f(concepts)``: a value
when a condition on the concept set holds, else 0.0; text ``concept: <name>``, ``concept: NOT
<name>``, ``concept: <a> AND <b>``, ``concept: <whole> (fragments included ...)`` or ``concept:
none``) and a `Transcript` of hypothesis, experiment and update events. Both agents spend the
box's whole remaining budget.

Hypotheses (`fit_concept`), each scored by the correlation, over every query so far, between
where it holds and the unit's code: a concept present; a concept absent (the unit fires without
it); a whole *with its fragments* (it, or any concept below it, present: a unit that reads any
part of a whole); two concepts together. A family or a pair must beat the best single concept
by 0.05 to be chosen; the unit is named 'none' when it never fired or the best correlation is
below 0.5.

Scientist (``interactive=True``): experiments raise hypotheses, the world's natural samples
decide between them.

1. Screen. Hypothesis: one concept drives the unit. Experiment: the empty set and every concept
   of the world in its smallest possible sample (`UnitWorld.minimal`: a part alone; a whole with
   the first ``tau`` of its parts, recursively). Update: the fit.
2. Parts and wholes. For the leading concept, samples that separate it from its parts and from
   its whole: the whole built from each other ``tau``-subset of its parts, its parts short of
   ``tau`` (a fragment, no whole); a part inside its whole, and its whole built from its siblings
   without it (possible when ``tau`` is below the number of parts). Update: the fit.
3. Natural samples. The rest of the budget: natural samples of the world (its own sampler).
   Update: the fit over every query, then `select_on_natural`: among the five leading concepts
   (with their signs), the wholes above the positive ones, those wholes with their fragments,
   and the fit's own choice, the hypothesis that fits the natural samples best. Why: the
   experiments show the unit's mechanism, including its answers to fragments (a phrase unit
   that also reads a lone word of the phrase), which the world almost never shows; what the unit
   *means* in the world is what it tracks on the world's samples. When the natural samples never
   show the unit firing, or never show the fit's choice (a rare whole), they cannot judge, and
   the fit over every query stands.

Baseline (``interactive=False``): as many natural samples of the world as the budget allows
(seeded), then the same fit.
"""

from __future__ import annotations

import itertools
from typing import Any, Sequence

import numpy as np

from identi.errors import ConfigError
from identi.find.protocol import Description, Transcript
from identi.find.units import NONE, UnitBox, concept_description

MIN_CORR = 0.5  # Below this best correlation the unit is named 'none'.
GAIN = 0.05  # A family or a pair must beat the best single concept by this much.
TOP = 4  # Leading positive concepts combined into pairs.
MAX_PROBES = 8


def _corr(x: np.ndarray, y: np.ndarray) -> float:
  x, y = x - x.mean(), y - y.mean()
  den = float(np.sqrt((x * x).sum() * (y * y).sum()))
  return 0.0 if den < 1e-12 else float((x * y).sum() / den)


def families_of(world) -> dict[str, frozenset]:
  """Every whole with every concept below it (a fragment of it shows some of them)."""
  out = {}
  for name in world.names:
    if world.level(name) > 0:
      below, frontier = set(), list(world.parts(name))
      while frontier:
        c = frontier.pop()
        below.add(c)
        frontier.extend(world.parts(c))
      out[name] = frozenset(below | {name})
  return out


def fit_concept(sets: Sequence[frozenset], values, names: Sequence[str],
                families: dict[str, frozenset] | None = None) -> dict[str, Any]:
  """The hypothesis (module docstring) that fits the unit's code best over the queries:
  ``{'concepts', 'sign', 'family', 'corr', 'value', 'ranking'}``; concepts () names 'none'."""
  values = np.asarray(values, np.float64)
  empty = {"concepts": (), "sign": 1, "family": False, "corr": 0.0, "value": 0.0, "ranking": []}
  if len(sets) < 2 or not np.any(values > 0):
    return empty
  present = np.array([[c in s for c in names] for s in sets], np.float64)
  corr = np.array([_corr(present[:, j], values) for j in range(len(names))])
  order = sorted(range(len(names)), key=lambda j: (-abs(corr[j]), names[j]))
  best = order[0]
  single = float(abs(corr[best]))
  result = dict(empty, concepts=(names[best],), sign=1 if corr[best] >= 0 else -1, corr=single)
  for name, members in sorted((families or {}).items()):
    r = _corr(np.array([bool(members & s) for s in sets], np.float64), values)
    if r > max(result["corr"], single + GAIN):
      result = dict(empty, concepts=(name,), family=True, corr=r)
  positive = [j for j in order if corr[j] > 0][:TOP]
  for i, j in itertools.combinations(positive, 2):
    r = _corr(present[:, i] * present[:, j], values)
    if r > max(result["corr"], single + GAIN):
      result = dict(empty, concepts=(names[i], names[j]), corr=r)
  result["ranking"] = [(names[j], float(corr[j])) for j in order[:5]]
  if result["corr"] < MIN_CORR:
    result["concepts"] = ()
  mask = holds(sets, result, families) & (values > 0)
  result["value"] = float(values[mask].mean()) if mask.any() else 0.0
  return result


def holds(sets: Sequence[frozenset], fit: dict[str, Any], families=None) -> np.ndarray:
  """Per query, whether a fitted hypothesis holds."""
  concepts = fit["concepts"]
  if not concepts:
    return np.zeros(len(sets), bool)
  if fit["family"]:
    return np.array([bool(families[concepts[0]] & s) for s in sets])
  if fit["sign"] < 0:
    return np.array([concepts[0] not in s for s in sets])
  return np.array([all(c in s for c in concepts) for s in sets])


def describe_fit(fit: dict[str, Any], families=None) -> Description:
  """The description of a fitted hypothesis."""
  if not fit["concepts"]:
    return concept_description(NONE)
  value = round(fit["value"], 4)
  if fit["family"]:
    name = fit["concepts"][0]
    members = tuple(sorted(families[name]))
    return Description(f"def f(concepts):\n  return {value!r} if any(c in concepts for c in "
                       f"{members!r}) else 0.0\n",
                       f"concept: {name} (fragments included: it or any concept below it)")
  return concept_description(fit["concepts"][0], fit["sign"], value, also=fit["concepts"][1:])


def ancestors(world, name: str) -> list[str]:
  """The wholes above concept `name`, nearest first."""
  level = world.level(name)
  if level + 1 >= len(world.level_sizes):
    return []
  wholes = [w for w in world.names[world.offsets[level + 1]:world.offsets[level + 2]]
            if name in world.parts(w)]
  return wholes + [a for w in wholes for a in ancestors(world, w)]


def select_on_natural(fit: dict[str, Any], sets: Sequence[frozenset], values, world,
                      families: dict[str, frozenset]) -> dict[str, Any]:
  """Among the hypotheses the experiments raised (the leading concepts with their signs, the
  wholes above the positive ones, those wholes with their fragments, and `fit`'s own choice),
  the one that fits the natural samples `sets` best (a family or pair must beat the best
  single concept by GAIN); concepts () when none reaches MIN_CORR. When the natural samples
  never show the unit firing, or never (or always) show `fit`'s choice, they cannot judge, and
  `fit` (over every query) stands."""
  values = np.asarray(values, np.float64)
  empty = {"concepts": (), "sign": 1, "family": False, "corr": 0.0, "value": 0.0,
           "ranking": fit["ranking"]}
  if not fit["ranking"]:
    return empty
  if len(sets) < 2 or not np.any(values > 0):
    return fit  # The natural samples never show the unit firing: they cannot judge.
  candidates = []
  for name, r in fit["ranking"]:
    candidates.append(dict(empty, concepts=(name,), sign=1 if r >= 0 else -1))
    if r > 0:
      for whole in ancestors(world, name):
        candidates += [dict(empty, concepts=(whole,)),
                       dict(empty, concepts=(whole,), family=True)]
  if fit["concepts"]:
    candidates.append(dict(empty, concepts=fit["concepts"], sign=fit["sign"],
                           family=fit["family"]))
  if fit["concepts"] and len(set(holds(sets, fit, families))) < 2:
    return fit  # The natural samples never (or always) show the experiments' choice.
  best, best_single = None, -1.0
  for cand in candidates:
    cand["corr"] = _corr(holds(sets, cand, families).astype(np.float64), values)
    simple = len(cand["concepts"]) == 1 and not cand["family"]
    if simple:
      best_single = max(best_single, cand["corr"])
  for cand in candidates:
    simple = len(cand["concepts"]) == 1 and not cand["family"]
    margin = 0.0 if simple else GAIN
    if cand["corr"] >= best_single + margin and (best is None or cand["corr"] > best["corr"]):
      best = cand
  if best is None or best["corr"] < MIN_CORR:
    return empty
  mask = holds(sets, best, families) & (values > 0)
  best["value"] = float(values[mask].mean()) if mask.any() else 0.0
  return best


def _update(transcript: Transcript, fit: dict[str, Any]) -> None:
  transcript.add("update", leading=[{"concept": c, "corr": round(r, 4)} for c, r in
                                    fit["ranking"]],
                 named=list(fit["concepts"]) or NONE, sign=fit["sign"], family=fit["family"],
                 corr=round(fit["corr"], 4))


def probes(world, name: str) -> list[frozenset]:
  """Samples that separate concept `name` from its parts and from its whole (module docstring)."""
  out = []
  parts, need = world.parts(name), world.needs(name)
  union = lambda names: frozenset().union(*(world.minimal(p) for p in names))
  if parts:
    out += [world.closure(union(s)) for s in itertools.combinations(parts, need)]
    if need > 1:
      out += [world.closure(union(s)) for s in itertools.combinations(parts, need - 1)]
  level = world.level(name)
  if level + 1 < len(world.level_sizes):
    wholes = world.names[world.offsets[level + 1]:world.offsets[level + 2]]
    for whole in (w for w in wholes if name in world.parts(w)):
      siblings = [p for p in world.parts(whole) if p != name]
      out.append(world.closure(world.minimal(name) | union(siblings[:world.needs(whole) - 1])))
      if len(siblings) >= world.needs(whole):
        out.append(world.closure(union(siblings[:world.needs(whole)])))
  return list(dict.fromkeys(out))[:MAX_PROBES]


def describe_unit(box: UnitBox, seed: int,
                  interactive: bool = True) -> tuple[Description, Transcript]:
  """The scientist's (``interactive``) or the baseline's description of unit box `box`."""
  world = getattr(box, "world", None)
  if box.kind != "unit" or world is None:
    raise ConfigError(f"black box {box.name!r} is not a unit box; describe_unit takes the boxes "
                      "of identi.find.units.unit_tasks")
  names, families = world.names, families_of(world)
  transcript = Transcript()
  sets: list[frozenset] = []
  values: list[float] = []

  def left() -> int:
    return box.budget - box.queries_used

  def ask(batch: list[frozenset], purpose: str) -> dict[str, Any]:
    batch = batch[:left()]
    if batch:
      out = box.query(batch)
      sets.extend(batch)
      values.extend(out)
      transcript.add("experiment", purpose=purpose,
                     queries=[{"concepts": sorted(s), "output": round(float(v), 5)}
                              for s, v in zip(batch, out)])
    fit = fit_concept(sets, values, names, families)
    _update(transcript, fit)
    return fit

  if not interactive:
    transcript.add("hypothesis", text="one concept of the world drives the unit; sample the "
                   "world's natural concept sets and fit")
    fit = ask(world.natural_sets(left(), seed), "natural samples")
  else:
    transcript.add("hypothesis", text="one concept drives the unit; screen every concept in "
                   "its smallest sample, and the empty set")
    fit = ask([frozenset()] + [world.minimal(c) for c in names], "screen")
    if fit["ranking"]:
      lead = fit["ranking"][0][0]
      transcript.add("hypothesis", text=f"the unit tracks {lead}, not its parts or its whole")
      fit = ask(probes(world, lead), "parts and wholes")
    transcript.add("hypothesis", text="of the concepts raised so far, the wholes above them "
                   "and those wholes with their fragments, the one that fits the world's "
                   "natural samples best drives the unit")
    start = len(sets)
    fit = ask(world.natural_sets(left(), seed), "natural samples")
    fit = select_on_natural(fit, sets[start:], values[start:], world, families)
    transcript.add("update", selected_on="natural samples", named=list(fit["concepts"]) or NONE,
                   sign=fit["sign"], family=fit["family"], corr=round(fit["corr"], 4))
  description = describe_fit(fit, families)
  transcript.add("description", code=description.code, text=description.text,
                 queries=box.queries_used)
  return description, transcript
