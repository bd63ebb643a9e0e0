"""What every identi binary shares: one-line errors (no tracebacks), config loading, tables."""

from __future__ import annotations

import logging
import sys
from typing import Any, Callable, Mapping, Sequence

import ml_collections
from absl import app, flags
from absl import logging as absl_logging

from identi.allocator import retain_freed_memory
from identi.errors import IdentiError
from identi.train import config as config_lib


def config_spec(argv: Sequence[str]) -> str | None:
  """The `--config=PATH[:VARIANT]` of a command line, if any."""
  for arg in argv:
    if arg.startswith("--config="):
      return arg[len("--config="):]
  return None


def unknown_override(argv: Sequence[str]) -> str | None:
  """The first `--config.a.b=...` override whose key is not in the config file's own schema."""
  spec = config_spec(argv)
  if spec is None:
    return None
  try:
    root = config_lib.load_config(spec)
  except Exception:  # pylint: disable=broad-except  (the flag parser reports a broken file)
    return None
  for arg in argv:
    if not arg.startswith("--config."):
      continue
    node: Any = root
    path = arg[len("--config."):].split("=", 1)[0]
    for part in path.split("."):
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        return path
      node = node[part]
  return None


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing with one-line errors (an unknown config key is named, with the fix)."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    sys.exit(f"error: {e}")
  except (AttributeError, KeyError):
    key = unknown_override(argv)
    if key is None:
      raise
    sys.exit(f"error: unknown config key '{key}' in --config.{key}=...; fix the spelling "
             "(the config file's get_config() returns every key it accepts)")


def load_config(config_flag) -> ml_collections.ConfigDict:
  """The value of a config_flags flag, with a one-line error if its file failed to load."""
  try:
    return config_flag.value.copy_and_resolve_references()
  except IOError as e:
    cause = " ".join(str(e.__cause__ or e).split())
    raise IdentiError(f"cannot load the config file ({cause}); pass "
                      "--config=configs/NAME.py[:VARIANT] with an existing file") from e


def run(main: Callable[[list[str]], Any]) -> None:
  """`absl.app.run` that prints identi's errors as one line and exits with status 2.

  Before anything runs it applies `identi.allocator.retain_freed_memory` (glibc: XLA:CPU reuses
  its per-step scratch memory instead of page-faulting it in afresh every step).
  """

  def guarded(argv):
    # identi's own progress lines at INFO; the libraries (orbax above all) at WARNING.
    absl_logging.set_verbosity(absl_logging.WARNING)
    logging.getLogger("identi").setLevel(logging.INFO)
    try:
      return main(argv)
    except IdentiError as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)

  retain_freed_memory()
  app.run(guarded, flags_parser=parse_flags)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
  """A fixed-width text table of `rows` (floats with 4 significant digits)."""

  def fmt(v):
    if isinstance(v, float):
      return f"{v:.4g}"
    return "-" if v is None else str(v)

  cells = [[fmt(r.get(c)) for c in columns] for r in rows]
  widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
  line = lambda vals: "  ".join(v.rjust(w) for v, w in zip(vals, widths))
  return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])



def print_tables(tables, footer: str = "") -> None:
  """Prints `(rows, columns)` tables (a subject's `tables(stage, result)`), then `footer`."""
  for rows, columns in tables:
    print()
    print(format_table(rows, columns))
  if footer:
    print(f"\n{footer}")
