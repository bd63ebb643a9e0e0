"""Errors that identi raises for bad input.

Every message names the problem and the fix, in one line, so that a binary can print it as is.
"""


class IdentiError(Exception):
  """Base class of identi's user-facing errors."""


class ConfigError(IdentiError, ValueError):
  """A config key is unknown, has the wrong type or an impossible value."""


class DataError(IdentiError, ValueError):
  """Input arrays or files have the wrong shape or dtype, or hold NaN/Inf."""


class CheckpointError(IdentiError, RuntimeError):
  """A checkpoint is missing, unreadable or does not fit the config."""


class NonFiniteError(IdentiError, FloatingPointError):
  """Training produced or received a NaN or Inf."""
