"""The agents that describe black boxes: the scientist (experiments) and a non-interactive
baseline.

Both fit the same typed DSL. Numeric hypotheses are linear combinations of a family's features,
constants by least squares: polynomials of degree 1-3, sines (frequency on a grid), exponentials
and logarithms (rate or shift on a grid), steps with one or two thresholds, piecewise lines (a
hinge), absolute values, and the same families applied to |x - c| (compositions with an
absolute value), every member of a family fitted in one batch; a hypothesis is ranked by BIC.
A local deviation is a run of observations whose residual from a robust fit (with and without
the step families) exceeds four noise levels; the family is refitted without those points, and
a constant correction on that interval is kept when it lowers the BIC. String hypotheses are programs of one or two operations
of the DSL (shift, substitution, deletion, count, prefix, suffix, reversal, category
replacement), enumerated and kept while they reproduce every observation.

- ``scientist``: for numbers, a coarse grid, repeated inputs to estimate the noise, then rounds
  of queries where the best hypotheses disagree most, and dense probes of every window of the
  domain for local deviations, whose edges it then bisects; it stops when one hypothesis
  explains every observation within noise. For strings, inputs chosen from a pool to split the
  surviving programs into the most groups. Units go to `identi.find.unit_agents`.
- ``baseline``: the whole budget at random inputs (uniform on the domain; random words), then the
  same fit.
"""

from __future__ import annotations

import itertools

import numpy as np

from identi.find import suite
from identi.find.protocol import NUMERIC_DOMAIN, Description, Transcript, register_agent

# --- numeric DSL ----------------------------------------------------------------------------

_W_SIN = np.geomspace(0.005, 0.6, 160).tolist()
_W_EXP = np.concatenate([-np.linspace(0.004, 0.05, 24), np.linspace(0.004, 0.05, 24)]).tolist()
_SHIFTS = np.linspace(128.0, 260.0, 24).tolist()
_CENTRES = np.linspace(-100.0, 100.0, 41).tolist()


class _Group:
  """Hypotheses of one family that differ only in a nonlinear parameter (a frequency, a rate, a
  centre): ``basis(x)`` stacks every member's features, (members, len(x), k); ``features(i)``
  is member i's feature expressions in x; ``extra`` counts the parameters fitted by grid."""

  def __init__(self, name, params, basis, features, extra):
    self.name, self.params, self.extra = name, list(params), extra
    self._basis, self._features = basis, features

  def basis(self, x: np.ndarray) -> np.ndarray:
    return self._basis(np.asarray(self.params, np.float64), x)

  def features(self, i: int) -> list[str]:
    return self._features(self.params[i])


def _ones(p, x):
  return np.ones((len(p), len(x)))


def _families() -> list[_Group]:
  """Every candidate family of the numeric DSL, grouped for a batched least-squares fit."""
  out = []
  for deg in (1, 2, 3):
    out.append(_Group(f"poly{deg}", [0.0],
                      lambda p, x, d=deg: np.stack([x ** i for i in range(d + 1)], -1)[None],
                      lambda _, d=deg: [f"x ** {i}" for i in range(d + 1)], 0))
  col = lambda p, x: p[:, None]
  out.append(_Group("sin", _W_SIN, lambda p, x: np.stack(
      [_ones(p, x), np.sin(col(p, x) * x), np.cos(col(p, x) * x)], -1),
                    lambda w: ["1", f"np.sin({w!r} * x)", f"np.cos({w!r} * x)"], 1))
  out.append(_Group("exp", _W_EXP, lambda p, x: np.stack(
      [_ones(p, x), np.exp(col(p, x) * x)], -1), lambda w: ["1", f"np.exp({w!r} * x)"], 1))
  out.append(_Group("log", _SHIFTS, lambda p, x: np.stack(
      [_ones(p, x), np.log(x + col(p, x))], -1), lambda s: ["1", f"np.log(x + {s!r})"], 1))
  xs = lambda p, x: np.broadcast_to(x, (len(p), len(x)))
  ab = lambda p, x: np.abs(x - col(p, x))
  out.append(_Group("abs", _CENTRES, lambda p, x: np.stack([_ones(p, x), xs(p, x), ab(p, x)], -1),
                    lambda c: ["1", "x", f"np.abs(x - {c!r})"], 1))
  out.append(_Group("hinge", _CENTRES, lambda p, x: np.stack(
      [_ones(p, x), xs(p, x), np.maximum(x - col(p, x), 0.0)], -1),
                    lambda c: ["1", "x", f"np.maximum(x - {c!r}, 0.0)"], 1))
  out.append(_Group("abs_poly2", _CENTRES, lambda p, x: np.stack(
      [_ones(p, x), ab(p, x), ab(p, x) ** 2], -1),
                    lambda c: ["1", f"np.abs(x - {c!r})", f"np.abs(x - {c!r}) ** 2"], 1))
  pairs = [(float(c), float(w)) for c in _CENTRES[::2] for w in _W_SIN[::10]]
  cw = lambda p, x: p[:, 1:2] * np.abs(x - p[:, :1])
  out.append(_Group("abs_sin", pairs, lambda p, x: np.stack(
      [_ones(p, x), np.sin(cw(p, x)), np.cos(cw(p, x))], -1),
                    lambda q: ["1", f"np.sin({q[1]!r} * np.abs(x - {q[0]!r}))",
                               f"np.cos({q[1]!r} * np.abs(x - {q[0]!r}))"], 2))
  pairs = [(float(c), float(w)) for c in _CENTRES[::2] for w in _W_EXP[::4]]
  out.append(_Group("abs_exp", pairs, lambda p, x: np.stack(
      [_ones(p, x), np.exp(cw(p, x))], -1),
                    lambda q: ["1", f"np.exp({q[1]!r} * np.abs(x - {q[0]!r}))"], 2))
  return out


FAMILIES = _families()


def _batched_lstsq(basis: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Least squares for a stack of designs (members, n, k): (coefficients, rss), by SVD with
  `np.linalg.lstsq`'s cutoff for small singular values."""
  u, sv, vt = np.linalg.svd(basis, full_matrices=False)
  cutoff = np.finfo(np.float64).eps * max(basis.shape[1:]) * sv[:, :1]
  inv = np.where(sv > cutoff, 1.0 / np.where(sv > cutoff, sv, 1.0), 0.0)
  coef = np.einsum("mji,mj,mj->mi", vt, inv, np.einsum("mnj,n->mj", u, y))
  rss = np.sum((np.einsum("mnk,mk->mn", basis, coef) - y) ** 2, axis=1)
  return coef, rss


def _steps(x: np.ndarray, y: np.ndarray) -> list[dict]:
  """Best piecewise-constant fits with one and with two thresholds (between observations)."""
  order = np.argsort(x)
  xs, ys = x[order], y[order]
  n = len(xs)
  if n < 4:
    return []
  c1, c2 = np.concatenate([[0], np.cumsum(ys)]), np.concatenate([[0], np.cumsum(ys ** 2)])

  def seg(i, j):  # rss of ys[i:j] around its mean
    m = j - i
    s = c1[j] - c1[i]
    return c2[j] - c2[i] - s * s / np.maximum(m, 1)

  out = []
  i = np.arange(1, n)
  rss1 = seg(0, i) + seg(i, n)
  b = int(np.argmin(rss1)) + 1
  t = 0.5 * (xs[b - 1] + xs[b])
  lo, hi = ys[:b].mean(), ys[b:].mean()
  out.append({"name": "step", "k": 3, "rss": float(rss1[b - 1]),
              "expr": f"np.where(x < {t!r}, {lo!r}, {hi!r})"})
  ii, jj = np.meshgrid(np.arange(1, n - 1), np.arange(2, n), indexing="ij")
  ok = jj > ii
  rss2 = np.where(ok, seg(0, ii) + seg(ii, jj) + seg(jj, n), np.inf)
  a, bb = np.unravel_index(int(np.argmin(rss2)), rss2.shape)
  p, q = int(ii[a, bb]), int(jj[a, bb])
  t1, t2 = 0.5 * (xs[p - 1] + xs[p]), 0.5 * (xs[q - 1] + xs[q])
  m0, m1, m2 = ys[:p].mean(), ys[p:q].mean(), ys[q:].mean()
  out.append({"name": "step2", "k": 5, "rss": float(rss2[a, bb]),
              "expr": f"np.where(x < {t1!r}, {m0!r}, np.where(x < {t2!r}, {m1!r}, {m2!r}))"})
  return out


def fit_numeric(x: np.ndarray, y: np.ndarray, top: int = 5, steps: bool = True) -> list[dict]:
  """The `top` hypotheses by BIC, each {name, k, rss, bic, expr}, best first (without the
  piecewise-constant families unless `steps`)."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  n = len(x)
  scale = float(np.var(y)) + 1e-12
  hyps = []
  for group in FAMILIES:  # The best member of every family (the ranking keeps one per name).
    with np.errstate(all="ignore"):
      basis = group.basis(x)
    ok = np.all(np.isfinite(basis), axis=(1, 2))
    if not ok.any():
      continue
    coef, rss = _batched_lstsq(basis[ok], y)
    best = int(np.argmin(rss))
    member = int(np.flatnonzero(ok)[best])
    expr = " + ".join(f"{float(c)!r} * {e}" for c, e in zip(coef[best], group.features(member)))
    hyps.append({"name": group.name, "k": basis.shape[2] + group.extra, "rss": float(rss[best]),
                 "expr": expr})
  if steps:
    hyps += _steps(x, y)
  for h in hyps:
    h["rss"] = max(h["rss"], 0.0)  # The steps' running sums can round below 0.
    h["bic"] = n * np.log(h["rss"] / n + 1e-9 * scale) + 2.0 * h["k"] * np.log(max(n, 2))
  hyps.sort(key=lambda h: h["bic"])
  best, seen = [], set()
  for h in hyps:
    if h["name"] not in seen:
      best.append(h)
      seen.add(h["name"])
    if len(best) == top:
      break
  return best


def predict(expr: str, x) -> np.ndarray:
  """A hypothesis' expression evaluated at `x` (array)."""
  x = np.asarray(x, np.float64)
  with np.errstate(all="ignore"):
    return np.broadcast_to(np.asarray(eval(expr, {"np": np, "x": x}), np.float64), x.shape)  # pylint: disable=eval-used


def deviation(x: np.ndarray, r: np.ndarray, noise: float) -> tuple[float, float, float] | None:
  """The longest run (in x order, at least 2 points) of residuals beyond 4 noise levels of one
  sign: (lo, hi, offset) with the interval's edges halfway to the neighbours; None if none."""
  order = np.argsort(x)
  xs, rs = x[order], r[order]
  flag = np.abs(rs) > 4.0 * noise
  best, i = None, 0
  while i < len(xs):
    if not flag[i]:
      i += 1
      continue
    j = i
    while j + 1 < len(xs) and flag[j + 1] and np.sign(rs[j + 1]) == np.sign(rs[i]):
      j += 1
    if j > i and (best is None or j - i > best[1] - best[0]):
      best = (i, j)
    i = j + 1
  if best is None:
    return None
  i, j = best
  lo = 0.5 * (xs[i - 1] + xs[i]) if i > 0 else NUMERIC_DOMAIN[0]
  hi = 0.5 * (xs[j] + xs[j + 1]) if j + 1 < len(xs) else NUMERIC_DOMAIN[1]
  return float(lo), float(hi), float(np.median(rs[i:j + 1]))


def _bic(n: int, rss: float, k: int, scale: float) -> float:
  return float(n * np.log(max(rss, 0.0) / n + 1e-9 * scale) + 2.0 * k * np.log(max(n, 2)))


# (piecewise-constant families allowed, share of points kept) of the robust fits that look for
# a local deviation: a large deviation can make a two-threshold step the best fit of every point.
DEVIATION_SEARCH = ((True, 0.85), (False, 0.85), (False, 0.6))


def describe_numeric(x, y, noise: float) -> tuple[dict, tuple | None, Description]:
  """The best fit of every point, or a family plus a constant correction on one interval if that
  has the lower BIC (three more parameters). Candidate intervals come from robust fits (least
  squares, then twice without the largest residuals; `DEVIATION_SEARCH`): the longest run of
  residuals beyond four times the larger of `noise` and the inliers' robust spread; the family
  is then refitted without the interval. Returns (fit, (lo, hi, offset) or None, description)."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  n, scale = len(x), float(np.var(y)) + 1e-12
  full = fit_numeric(x, y)[0]
  choice = (_bic(n, full["rss"], full["k"], scale), full, None)
  r = y - predict(full["expr"], x)
  if np.max(np.abs(r), initial=0.0) <= 4.0 * max(noise, 1e-6 * (float(np.std(y)) + 1.0)):
    return full, None, _numeric_description(full, None)  # Every point explained within noise.
  for steps, share in DEVIATION_SEARCH:
    best, keep = fit_numeric(x, y, steps=steps)[0], np.ones(n, bool)
    for _ in range(2):
      r = np.abs(y - predict(best["expr"], x))
      keep = r <= np.quantile(r, share)
      best = fit_numeric(x[keep], y[keep], steps=steps)[0]
    r = y - predict(best["expr"], x)
    spread = 1.4826 * float(np.median(np.abs(r[keep] - np.median(r[keep]))))
    level = max(noise, spread, 1e-6 * (float(np.std(y)) + 1.0))
    dev = deviation(x, r, level)
    if dev is None:
      continue
    outside = (x < dev[0]) | (x > dev[1])
    if outside.sum() < 8:
      continue
    fit = fit_numeric(x[outside], y[outside])[0]
    r = y - predict(fit["expr"], x)
    offset = float(np.median(r[~outside]))
    if abs(offset) <= 4.0 * level:
      continue
    rss = float(np.sum(r[outside] ** 2) + np.sum((r[~outside] - offset) ** 2))
    bic = _bic(n, rss, fit["k"] + 3, scale)
    if bic < choice[0]:
      choice = (bic, fit, (dev[0], dev[1], offset))
  _, best, dev = choice
  return best, dev, _numeric_description(best, dev)


def _numeric_description(best: dict, dev: tuple | None) -> Description:
  code = f"def f(x):\n  y = float({best['expr']})\n"
  text = best["name"]
  if dev is not None:
    code += f"  if {dev[0]!r} <= x <= {dev[1]!r}:\n    y += {dev[2]!r}\n"
    text += f", shifted by {dev[2]:.3g} on [{dev[0]:.3g}, {dev[1]:.3g}]"
  code += "  return y\n"
  return Description(code, text)


class _Asker:
  """Queries a box and records every experiment in the transcript."""

  def __init__(self, box, transcript: Transcript):
    self.box, self.t = box, transcript
    self.x: list = []
    self.y: list = []

  @property
  def left(self) -> int:
    return self.box.budget - self.box.queries_used

  def ask(self, inputs, purpose: str):
    inputs = list(inputs)[:self.left]
    if not inputs:
      return []
    out = self.box.query(inputs)
    self.x += inputs
    self.y += out
    self.t.add("experiment", purpose=purpose, inputs=inputs, outputs=out)
    return out


def _scientist_numeric(box, seed: int) -> tuple[Description, Transcript]:
  t = Transcript()
  a = _Asker(box, t)
  lo, hi = NUMERIC_DOMAIN
  a.ask(np.linspace(lo, hi, 33).tolist(), "coarse grid")
  repeat = np.linspace(lo, hi, 33)[2::4][:8].tolist()
  first = np.asarray(a.y[2::4][:8])
  second = np.asarray(a.ask(repeat, "repeat inputs to estimate the noise"))
  noise = float(np.sqrt(np.mean((second - first) ** 2) / 2.0)) if len(second) == len(first) else 0.0
  exact = noise <= 1e-9 * (np.std(a.y) + 1.0)
  noise = max(noise, 1e-6 * (np.std(a.y) + 1.0))
  t.add("update", noise=noise)
  pool = np.linspace(lo, hi, 1021)
  for _ in range(3):  # Rounds of active design among the surviving hypotheses.
    hyps = fit_numeric(np.array(a.x), np.array(a.y))
    t.add("hypothesis", candidates=[h["name"] for h in hyps], best=hyps[0]["expr"])
    rms = np.sqrt(hyps[0]["rss"] / len(a.x))
    if rms <= 2.0 * noise and (len(hyps) < 2 or hyps[1]["bic"] - hyps[0]["bic"] > 10):
      break
    preds = np.stack([predict(h["expr"], pool) for h in hyps])
    spread = np.std(np.where(np.isfinite(preds), preds, 0.0), axis=0)
    chosen = []
    for i in np.argsort(-spread):
      if all(abs(pool[i] - c) > 4.0 for c in chosen):
        chosen.append(float(pool[i]))
      if len(chosen) == 8:
        break
    a.ask(chosen, "where the best hypotheses disagree most")
  # Probe every window of the domain for a local deviation, then bisect its edges.
  windows = np.linspace(lo, hi, 17)
  probes = [float(p) for w0, w1 in zip(windows[:-1], windows[1:])
            for p in np.linspace(w0, w1, 5)[1:-1] + 0.37]
  a.ask(probes, "probe every window for local deviations")
  for _ in range(3):
    best, dev, _ = describe_numeric(np.array(a.x), np.array(a.y), noise)
    if dev is None or a.left < 4:
      break
    t.add("hypothesis", deviation=list(dev))
    edges = []
    for e in (dev[0], dev[1]):
      xs = np.sort(np.array(a.x))
      left, right = xs[xs < e].max(initial=lo), xs[xs > e].min(initial=hi)
      edges += np.linspace(left, right, 4)[1:-1].tolist()
    a.ask(edges, "bisect the edges of the deviation")
  _, dev, description = describe_numeric(np.array(a.x), np.array(a.y), noise)
  t.add("update", exact=bool(exact), deviation=None if dev is None else list(dev))
  t.add("description", code=description.code, text=description.text)
  return description, t


def _baseline_numeric(box, seed: int) -> tuple[Description, Transcript]:
  t = Transcript()
  a = _Asker(box, t)
  rng = np.random.default_rng(seed)
  a.ask(rng.uniform(*NUMERIC_DOMAIN, box.budget).tolist(), "random inputs")
  x, y = np.array(a.x), np.array(a.y)
  _, _, description = describe_numeric(x, y, 0.0)
  t.add("description", code=description.code, text=description.text)
  return description, t


# --- string DSL -----------------------------------------------------------------------------

def _string_ops() -> list[tuple[str, str]]:
  """(expression in s, text) of every single operation of the DSL."""
  ops = [("s[::-1]", "reverse the string")]
  for k in range(1, 26):
    ops.append((f"''.join(chr((ord(c) - 97 + {k}) % 26 + 97) if 'a' <= c <= 'z' else c "
                f"for c in s)", f"shift every letter by {k}"))
  for a, b in itertools.permutations(suite.LETTERS, 2):
    ops.append((f"s.replace({a!r}, {b!r})", f"replace {a!r} by {b!r}"))
  for c in suite.LETTERS:
    ops.append((f"s.replace({c!r}, '')", f"delete every {c!r}"))
    ops.append((f"str(s.count({c!r}))", f"the number of {c!r} in the string"))
  for x in suite.AFFIXES:
    ops.append((f"{x!r} + s", f"prefix {x!r}"))
    ops.append((f"s + {x!r}", f"suffix {x!r}"))
  for cat, words in suite.CATEGORIES.items():
    for w in suite.FILLERS:
      ops.append((f"' '.join({w!r} if t in {words!r} else t for t in s.split(' '))",
                  f"replace every {cat} word by {w!r}"))
  return ops


STRING_OPS = _string_ops()
_OP_FNS = [eval(f"lambda s: {e}") for e, _ in STRING_OPS]  # pylint: disable=eval-used


def _consistent(examples: list[tuple[str, str]]) -> list[tuple[int, ...]]:
  """Programs (one or two op indices) that reproduce every example, simplest first.

  Enumerated on the example with the longest input: single ops, then pairs whose first op
  changes that input and whose second op changes the first's output (a pair with a no-op step
  is a single op there); then checked on every other example.
  """
  if not examples:
    return []
  x0, y0 = max(examples, key=lambda e: (len(e[0]), e[0]))
  groups: dict[str, list[int]] = {}
  for i, f in enumerate(_OP_FNS):
    groups.setdefault(f(x0), []).append(i)
  out = [(i,) for i in groups.get(y0, [])]
  for v, firsts in groups.items():
    if v == x0:
      continue
    for j, g in enumerate(_OP_FNS):
      w = g(v)
      if w == y0 and w != v:
        out += [(i, j) for i in firsts if i != j]
  return [p for p in out if all(_run(p, x) == y for x, y in examples)]


def _run(program: tuple[int, ...], s: str) -> str:
  for i in program:
    s = _OP_FNS[i](s)
  return s


def _string_description(program: tuple[int, ...] | None) -> Description:
  if program is None:
    return Description("def f(s):\n  return s\n", "no program of the DSL fits")
  lines = "".join(f"  s = {STRING_OPS[i][0]}\n" for i in program)
  return Description(f"def f(s):\n{lines}  return s\n",
                     ", then ".join(STRING_OPS[i][1] for i in program))


def _scientist_string(box, seed: int) -> tuple[Description, Transcript]:
  t = Transcript()
  a = _Asker(box, t)
  rng = np.random.default_rng(seed)
  pool = [suite.random_input(rng) for _ in range(200)]
  a.ask(pool[:3], "first inputs")
  survivors = _consistent(list(zip(a.x, a.y)))
  t.add("hypothesis", surviving=len(survivors))
  while len(survivors) > 1 and a.left > 0:
    # The input that splits the survivors into the most groups of equal outputs.
    best = max(pool, key=lambda s: len({_run(p, s) for p in survivors[:400]}))
    if len({_run(p, best) for p in survivors[:400]}) == 1:
      break
    out = a.ask([best], "splits the surviving programs")
    survivors = [p for p in survivors if _run(p, best) == out[0]]
    t.add("update", surviving=len(survivors))
  description = _string_description(survivors[0] if survivors else None)
  t.add("description", code=description.code, text=description.text)
  return description, t


def _baseline_string(box, seed: int) -> tuple[Description, Transcript]:
  t = Transcript()
  a = _Asker(box, t)
  rng = np.random.default_rng(seed)
  a.ask([suite.random_input(rng) for _ in range(box.budget)], "random inputs")
  survivors = _consistent(list(zip(a.x, a.y)))
  description = _string_description(survivors[0] if survivors else None)
  t.add("description", code=description.code, text=description.text)
  return description, t


@register_agent("scientist")
class Scientist:
  """Hypotheses, experiments where they disagree, updates; deterministic given the seed."""

  def describe(self, box, seed: int) -> tuple[Description, Transcript]:
    if box.kind == "numeric":
      return _scientist_numeric(box, seed)
    if box.kind == "string":
      return _scientist_string(box, seed)
    from identi.find import unit_agents  # pylint: disable=g-import-not-at-top
    return unit_agents.describe_unit(box, seed, interactive=True)


@register_agent("baseline")
class Baseline:
  """The whole budget at random inputs, then the scientist's fit; deterministic given the seed."""

  def describe(self, box, seed: int) -> tuple[Description, Transcript]:
    if box.kind == "numeric":
      return _baseline_numeric(box, seed)
    if box.kind == "string":
      return _baseline_string(box, seed)
    from identi.find import unit_agents  # pylint: disable=g-import-not-at-top
    return unit_agents.describe_unit(box, seed, interactive=False)
