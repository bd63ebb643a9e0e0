"""The function suite: numeric and string black boxes with known answers, made from a seed.

Numeric functions R -> R on FIND's domain [-127.5, 127.5]: single primitives (``linear``,
``polynomial``, ``periodic``, ``exponential`` (exp and log), ``step`` (steps and piecewise linear),
``abs``) and FIND's real-world complications: ``noise`` (a primitive plus Gaussian noise; the
truth is the noise-free primitive), ``composition`` (g(h(x)) of two primitives), ``approximation``
(the primitive on a sub-domain, a cubic fitted to it elsewhere) and ``bias`` (a constant
deviation on an interval; ``info['interval']``). String functions: ``map`` (a letter shift or a
letter substitution), ``reverse``, ``count`` (how often a letter occurs, as digits),
``delete`` / ``insert`` (a letter removed, a prefix or suffix added), ``category`` (every colour
or animal word replaced by a fixed word) and ``composition`` (two of them in a row).

Every task's truth is a `Description` whose code defines ``f``; the box runs that same code (plus
the noise), so the truth is exactly what the box computes. Nothing is read from files.
"""

from __future__ import annotations

import string

import numpy as np

from identi.find.protocol import NUMERIC_DOMAIN, CountedBox, Description, Task, compile_description

NUMERIC_PRIMITIVES = ("linear", "polynomial", "periodic", "exponential", "step", "abs")
NUMERIC_COMPLICATIONS = ("noise", "composition", "approximation", "bias")
STRING_KINDS = ("map", "reverse", "count", "delete", "insert", "category", "composition")
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "black", "white")
ANIMALS = ("dog", "cat", "horse", "mouse", "lion", "tiger", "sheep", "goat")
FILLERS = ("the", "a", "big", "small", "house", "tree", "runs", "sees", "old", "new", "stone",
           "river", "happy", "quick", "slow", "car", "book", "light")
CATEGORIES = {"colour": COLOURS, "animal": ANIMALS}
AFFIXES = ("ab", "xyz", "q", "pre", "ing", "zz")
LETTERS = string.ascii_lowercase


def _r(v: float) -> str:
  return repr(round(float(v), 6))


def numeric_primitive(rng: np.random.Generator, family: str, u: str = "x") -> tuple[str, str]:
  """(expression in `u`, text) of one random primitive of `family`, scaled to the domain."""
  s = NUMERIC_DOMAIN[1]
  if family == "linear":
    a, b = rng.uniform(-3, 3), rng.uniform(-50, 50)
    return f"{_r(a)} * {u} + {_r(b)}", f"linear, slope {a:.3g}"
  if family == "polynomial":
    deg = int(rng.integers(2, 4))
    coefs = rng.uniform(-1, 1, deg + 1) * 100.0 / s ** np.arange(deg + 1)
    expr = " + ".join(f"{_r(c)} * {u} ** {i}" for i, c in enumerate(coefs))
    return expr, f"polynomial of degree {deg}"
  if family == "periodic":
    a, w, p, c = rng.uniform(5, 50), rng.uniform(0.02, 0.3), rng.uniform(0, 2 * np.pi), rng.uniform(-20, 20)
    return f"{_r(a)} * math.sin({_r(w)} * {u} + {_r(p)}) + {_r(c)}", f"sine of period {2 * np.pi / w:.3g}"
  if family == "exponential":
    if rng.random() < 0.5:
      a, w, c = rng.uniform(1, 10) * rng.choice([-1, 1]), rng.uniform(0.01, 0.035) * rng.choice([-1, 1]), rng.uniform(-10, 10)
      return f"{_r(a)} * math.exp({_r(w)} * {u}) + {_r(c)}", f"exponential, rate {w:.3g}"
    a, sh, c = rng.uniform(5, 30) * rng.choice([-1, 1]), rng.uniform(128.5, 200), rng.uniform(-20, 20)
    return f"{_r(a)} * math.log({u} + {_r(sh)}) + {_r(c)}", "logarithm"
  if family == "step":
    t = rng.uniform(-90, 90)
    if rng.random() < 0.5:
      lo, hi = rng.uniform(-50, 50, 2)
      return f"({_r(lo)} if {u} < {_r(t)} else {_r(hi)})", f"step at {t:.3g}"
    a1, a2, b = rng.uniform(-2, 2, 2).tolist() + [rng.uniform(-30, 30)]
    return (f"({_r(a1)} * ({u} - {_r(t)}) + {_r(b)} if {u} < {_r(t)} else "
            f"{_r(a2)} * ({u} - {_r(t)}) + {_r(b)})"), f"piecewise linear, kink at {t:.3g}"
  if family == "abs":
    a, c, b = rng.uniform(0.3, 3) * rng.choice([-1, 1]), rng.uniform(-80, 80), rng.uniform(-30, 30)
    return f"{_r(a)} * abs({u} - {_r(c)}) + {_r(b)}", f"absolute value around {c:.3g}"
  raise ValueError(f"unknown numeric family {family!r}")


def _code(body: str) -> str:
  return f"def f(x):\n  return {body}\n"


def _numeric_task(i: int, rng: np.random.Generator, category: str) -> tuple[str, str, dict]:
  """(code, text, info) of one numeric task of `category`."""
  if category in NUMERIC_PRIMITIVES:
    expr, text = numeric_primitive(rng, category)
    return _code(expr), text, {}
  base = str(rng.choice(NUMERIC_PRIMITIVES))
  expr, text = numeric_primitive(rng, base)
  if category == "noise":
    grid = np.linspace(*NUMERIC_DOMAIN, 257)
    f = compile_description(Description(_code(expr), ""))
    sigma = float(rng.uniform(0.05, 0.2) * (np.std([f(x) for x in grid]) + 1e-3))
    return _code(expr), f"{text}, plus Gaussian noise of sd {sigma:.3g}", {"sigma": sigma}
  if category == "composition":
    inner = str(rng.choice(("linear", "abs")))
    outer = str(rng.choice(("polynomial", "periodic", "exponential", "step")))
    iexpr, itext = numeric_primitive(rng, inner)
    # Rescale the inner output onto the domain, so the outer function sees its usual inputs.
    g = compile_description(Description(_code(iexpr), ""))
    vals = np.array([g(x) for x in np.linspace(*NUMERIC_DOMAIN, 257)])
    lo, hi = float(vals.min()), float(vals.max())
    scale = 2 * NUMERIC_DOMAIN[1] / max(hi - lo, 1e-6)
    u = f"(({iexpr}) - {_r(lo)}) * {_r(scale)} + {_r(NUMERIC_DOMAIN[0])}"
    oexpr, otext = numeric_primitive(rng, outer, u)
    return _code(oexpr), f"{otext} of ({itext})", {}
  if category == "approximation":
    lo = float(rng.uniform(-110, 20))
    hi = lo + float(rng.uniform(40, 90))
    f = compile_description(Description(_code(expr), ""))
    xs = np.linspace(lo, hi, 101)
    coef = np.polyfit(xs, [f(x) for x in xs], 3)
    poly = " + ".join(f"{_r(c)} * x ** {3 - j}" for j, c in enumerate(coef))
    body = f"({expr}) if {_r(lo)} <= x <= {_r(hi)} else ({poly})"
    return _code(body), f"{text} on [{lo:.3g}, {hi:.3g}], a cubic fit of it elsewhere", {
        "interval": [lo, hi]}
  if category == "bias":
    width = float(rng.uniform(8, 30))
    lo = float(rng.uniform(-120, 120 - width))
    hi = lo + width
    f = compile_description(Description(_code(expr), ""))
    spread = np.std([f(x) for x in np.linspace(*NUMERIC_DOMAIN, 257)]) + 1.0
    d = float(rng.uniform(1.0, 3.0) * spread * rng.choice([-1, 1]))
    body = f"({expr}) + ({_r(d)} if {_r(lo)} <= x <= {_r(hi)} else 0.0)"
    return _code(body), f"{text}, shifted by {d:.3g} on [{lo:.3g}, {hi:.3g}]", {
        "interval": [lo, hi], "offset": d}
  raise ValueError(f"unknown numeric category {category!r}")


def _numeric_box(name: str, code: str, sigma: float, seed: int):
  f = compile_description(Description(code, ""))

  def make(budget: int) -> CountedBox:
    rng = np.random.default_rng(seed)  # A fresh box draws the same noise sequence.
    fn = (lambda x: f(x) + sigma * rng.normal()) if sigma > 0 else f
    return CountedBox(name, "numeric", fn, budget)

  return make


def numeric_tasks(seed: int, n: int) -> list[Task]:
  """`n` numeric tasks, the categories in turn (primitives and complications alike)."""
  categories = NUMERIC_PRIMITIVES + NUMERIC_COMPLICATIONS
  rng = np.random.default_rng([seed, 1])
  tasks = []
  for i in range(n):
    category = categories[i % len(categories)]
    code, text, info = _numeric_task(i, rng, category)
    name = f"numeric_{i:04d}_{category}"
    tasks.append(Task(_numeric_box(name, code, info.get("sigma", 0.0), seed * 100003 + i),
                      f"numeric/{category}", Description(code, text), info))
  return tasks


# --- strings --------------------------------------------------------------------------------


def random_word(rng: np.random.Generator) -> str:
  """A short random word: a filler, a category word, or random letters."""
  r = rng.random()
  if r < 0.3:
    return str(rng.choice(FILLERS))
  if r < 0.55:
    return str(rng.choice(COLOURS + ANIMALS))
  return "".join(rng.choice(list(LETTERS), int(rng.integers(3, 8))))


def random_input(rng: np.random.Generator) -> str:
  """One to four random words separated by spaces."""
  return " ".join(random_word(rng) for _ in range(int(rng.integers(1, 5))))


def string_op(rng: np.random.Generator, kind: str) -> tuple[str, str]:
  """(expression in `s`, text) of one random string operation of `kind` (not 'composition')."""
  if kind == "map":
    if rng.random() < 0.5:
      k = int(rng.integers(1, 26))
      return (f"''.join(chr((ord(c) - 97 + {k}) % 26 + 97) if 'a' <= c <= 'z' else c "
              f"for c in s)", f"shift every letter by {k}")
    a, b = rng.choice(list(LETTERS), 2, replace=False)
    return f"s.replace({a!r}, {b!r})", f"replace {a!r} by {b!r}"
  if kind == "reverse":
    return "s[::-1]", "reverse the string"
  if kind == "count":
    c = str(rng.choice(list("aeiorstn")))
    return f"str(s.count({c!r}))", f"the number of {c!r} in the string"
  if kind == "delete":
    c = str(rng.choice(list(LETTERS)))
    return f"s.replace({c!r}, '')", f"delete every {c!r}"
  if kind == "insert":
    a = str(rng.choice(AFFIXES))
    if rng.random() < 0.5:
      return f"{a!r} + s", f"prefix {a!r}"
    return f"s + {a!r}", f"suffix {a!r}"
  if kind == "category":
    cat = str(rng.choice(sorted(CATEGORIES)))
    w = str(rng.choice(FILLERS))
    words = CATEGORIES[cat]
    return (f"' '.join({w!r} if t in {words!r} else t for t in s.split(' '))",
            f"replace every {cat} word by {w!r}")
  raise ValueError(f"unknown string kind {kind!r}")


def string_tasks(seed: int, n: int, heldout: int = 50) -> list[Task]:
  """`n` string tasks, the kinds in turn; ``info['heldout']`` holds the scoring inputs."""
  rng = np.random.default_rng([seed, 2])
  tasks = []
  singles = [k for k in STRING_KINDS if k != "composition"]
  for i in range(n):
    kind = STRING_KINDS[i % len(STRING_KINDS)]
    if kind == "composition":
      k1, k2 = rng.choice(singles, 2, replace=False)
      e1, t1 = string_op(rng, str(k1))
      e2, t2 = string_op(rng, str(k2))
      code = f"def f(s):\n  s = {e1}\n  return {e2}\n"
      text = f"{t1}, then {t2}"
    else:
      expr, text = string_op(rng, kind)
      code = f"def f(s):\n  return {expr}\n"
    name = f"string_{i:04d}_{kind}"
    f = compile_description(Description(code, ""))
    inputs = [random_input(rng) for _ in range(heldout)]
    tasks.append(Task((lambda budget, name=name, f=f: CountedBox(name, "string", f, budget)),
                      f"string/{kind}", Description(code, text), {"heldout": inputs}))
  return tasks
