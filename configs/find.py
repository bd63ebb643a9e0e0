"""The function-description benchmark (after FIND): numeric, string and SAE-unit black boxes.

  python -m identi.bin.find --config=configs/find.py --workdir=runs/find

500 numeric functions (6 primitive families and 4 complications, in turn), 300 string functions
(7 kinds), and every unit of one SAE per subject (hsm, scenes, grammar; `identi.find.units`);
agents `scientist` and `baseline`. Budgets: 160 queries per numeric box, 40 per string box,
120 concept sets per unit. Results: docs/experiments/find.md.
Smoke variant for tests: --config=configs/find.py:smoke
"""

import ml_collections

from identi.errors import ConfigError
from identi.find import units


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.seed = 0  # Task seed.
  c.agent_seed = 0  # Seed of the agents' own random choices.
  c.num_numeric = 500
  c.num_string = 300
  c.numeric_budget = 160
  c.string_budget = 40
  c.agents = ("scientist", "baseline")
  c.units = units.default_units_config()
  if arg == "smoke":
    c.num_numeric, c.num_string = 10, 7
    c.units = units.units_smoke_config()
  elif arg:
    raise ConfigError(f"unknown variant {arg!r} of configs/find.py; use '' or 'smoke'")
  return c
