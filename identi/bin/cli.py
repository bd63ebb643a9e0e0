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
from identi.train.config import default_config


Schema = Callable[[], ml_collections.ConfigDict]


def merge_schemas(*schemas: Schema) -> ml_collections.ConfigDict:
  """The keys of several config schemas together (for a binary that takes any of them); a key in
  more than one keeps the first schema's default."""
  merged = schemas[0]()
  with merged.unlocked():
    for schema in schemas[1:]:
      other = schema()
      for name in other:
        if name in merged and isinstance(merged[name], ml_collections.ConfigDict):
          for key in other[name]:
            if key not in merged[name]:
              merged[name][key] = other[name][key]
        elif name not in merged:
          merged[name] = other[name]
  return merged


def union_schema() -> ml_collections.ConfigDict:
  """The keys of the HSM concept-graph, the subject-experiment and the LM-experiment schemas
  together (for the binaries that take any of them)."""
  # pylint: disable=g-import-not-at-top
  from identi.concepts.experiment import default_concept_config
  from identi.subjects.experiment import default_subject_experiment_config
  from identi.subjects.lm_experiment import default_lm_experiment_config
  return merge_schemas(default_concept_config, default_subject_experiment_config,
                       default_lm_experiment_config)


def _unknown_override(argv: Sequence[str], schema: Schema = default_config) -> str | None:
  """The first `--config.a.b=...` override whose key is not in the schema, if any."""
  root = schema()
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


def _parse_flags(argv: list[str], schema: Schema = default_config) -> list[str]:
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    sys.exit(f"error: {e}")
  except (AttributeError, KeyError) as e:
    key = _unknown_override(argv, schema)
    if key is None:
      raise
    sys.exit(f"error: unknown config key '{key}' in --config.{key}=...; fix the spelling "
             "(the config file's docstring names its schema, e.g. identi/train/config.py)")


def load_config(config_flag) -> ml_collections.ConfigDict:
  """The value of a config_flags flag, with a one-line error if its file failed to load."""
  try:
    return config_flag.value.copy_and_resolve_references()
  except IOError as e:
    cause = " ".join(str(e.__cause__ or e).split())
    raise IdentiError(f"cannot load the config file ({cause}); pass "
                      "--config=configs/NAME.py[:VARIANT] with an existing file") from e


def run(main: Callable[[list[str]], Any], schema: Schema = default_config) -> None:
  """`absl.app.run` that prints identi's errors as one line and exits with status 2.

  Before anything runs it applies `identi.allocator.retain_freed_memory` (glibc: XLA:CPU reuses
  its per-step scratch memory instead of page-faulting it in afresh every step).

  `schema` returns the config schema that `--config.a.b=...` overrides are checked against
  (default: the SAE training schema).
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
  app.run(guarded, flags_parser=lambda argv: _parse_flags(argv, schema))


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
  """A fixed-width text table of `rows` (floats with 4 significant digits)."""

  def fmt(v):
    if isinstance(v, float):
      return f"{v:.4g}"
    return "-" if v is None else str(v)

  cells = [[fmt(r.get(c)) for c in columns] for r in rows]
  widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
  line = lambda vals: "  ".join(v.rjust(w) for v, w in zip(vals, widths))
  return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])

