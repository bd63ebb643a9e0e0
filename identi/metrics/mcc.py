"""Mean correlation coefficient (MCC): how well learned units identify ground-truth concepts.

Definition used by identi:

1. Split the samples in order: the first ``fit_fraction`` of them is the fit half, the rest the
   score half.
2. On each half, compute the absolute correlation matrix between true concepts (columns of
   ``z_true``) and learned units (columns of ``codes``): |Pearson|, or |Spearman| (Pearson of
   ranks, ties averaged).
3. Match concepts to units one-to-one maximising the summed fit-half |corr| (Hungarian algorithm;
   at scale an exact sparse equivalent, see below).
4. Score each concept by the score-half |corr| with its matched unit (0 when there are fewer units
   than concepts and it is left unmatched), and average over TRUE concepts.

Fitting the matching and scoring it on disjoint samples keeps chance correlations from inflating
the score when there are many units. Constant columns (dead units, never-active concepts) have
correlation 0, never NaN.

Modules: `identi.metrics.correlation` computes the correlation matrices (in memory, or streamed
over batches with `CorrelationState`), `identi.metrics.assignment` the one-to-one matching
(`max_weight_assignment`), this module the MCC on top of both (`mcc`, `streamed_mcc`).
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

import numpy as np

from identi.errors import ConfigError, DataError
from identi.metrics.assignment import max_weight_assignment
from identi.metrics.correlation import (METHODS, MIN_SAMPLES_PER_HALF, as_matrix,
                                        correlation_finalize,
                                        correlation_matrix, stream_state)


class MCCResult(NamedTuple):
  """Result of ``mcc`` and ``streamed_mcc``.

  Attributes:
    mcc: mean over true concepts of the score-half |corr| with the matched unit.
    per_concept: ``(n_true,)`` score-half |corr| of each concept (0 when unmatched).
    matching: ``(n_true,)`` int index of the learned unit matched to each concept, -1 if unmatched.
    corr_fit: ``(n_true, n_units)`` |corr| on the fit half, from which the matching was made.
  """
  mcc: float
  per_concept: np.ndarray
  matching: np.ndarray
  corr_fit: np.ndarray


def mcc(z_true, codes, *, method: str = "pearson", fit_fraction: float = 0.5) -> MCCResult:
  """Mean correlation coefficient between true concepts and learned units (see module docstring).

  Args:
    z_true: ``(n, n_true)`` ground-truth concept values.
    codes: ``(n, n_units)`` learned unit activations on the same samples; ``n_units`` may be larger
      or smaller than ``n_true``.
    method: 'pearson' or 'spearman'.
    fit_fraction: fraction of the samples (taken first, in order) used to fit the matching.

  Returns:
    An ``MCCResult``.
  """
  if method not in METHODS:
    raise ConfigError(f"method={method!r} is unknown: use one of {', '.join(METHODS)}")
  if not 0.0 < fit_fraction < 1.0:
    raise ConfigError(
        f"fit_fraction={fit_fraction} is outside (0, 1): pass e.g. 0.5 to fit the matching on half "
        "the samples and score it on the other half")
  z_true = as_matrix(z_true, "z_true")
  codes = as_matrix(codes, "codes")
  n = z_true.shape[0]
  if codes.shape[0] != n:
    raise DataError(
        f"z_true has {n} samples but codes has {codes.shape[0]}: pass the codes of exactly the "
        "samples in z_true, row by row")
  n_fit = int(round(n * fit_fraction))
  if min(n_fit, n - n_fit) < MIN_SAMPLES_PER_HALF:
    raise DataError(
        f"{n} samples with fit_fraction={fit_fraction} leave {n_fit} to fit and {n - n_fit} to "
        f"score; each half needs at least {MIN_SAMPLES_PER_HALF}: pass more samples")

  corr_fit = np.abs(correlation_matrix(z_true[:n_fit], codes[:n_fit], method))
  corr_score = np.abs(correlation_matrix(z_true[n_fit:], codes[n_fit:], method))
  return _match_and_score(corr_fit, corr_score)


def _match_and_score(corr_fit: np.ndarray, corr_score: np.ndarray) -> MCCResult:
  """Matches concepts (rows) to units (columns) on corr_fit, scores the pairs on corr_score."""
  rows, cols, _ = max_weight_assignment(corr_fit)
  n_true = corr_fit.shape[0]
  matching = np.full((n_true,), -1, np.int64)
  matching[rows] = cols
  per_concept = np.zeros((n_true,), np.float64)
  per_concept[rows] = corr_score[rows, cols]
  return MCCResult(
      mcc=float(per_concept.mean()),
      per_concept=per_concept,
      matching=matching,
      corr_fit=corr_fit,
  )


def streamed_mcc(fit_batches: Iterable, score_batches: Iterable) -> MCCResult:
  """MCC (Pearson) of two streams of ``(z_true, codes)`` batches, neither held whole in memory.

  The matching is fitted on the fit stream's |corr| and scored on the score stream's, averaged
  over true concepts, as ``mcc`` does with its two halves.

  Args:
    fit_batches: iterable of ``(z_true, codes)`` pairs, ``(n_i, n_true)`` and ``(n_i, n_units)``.
    score_batches: the same for disjoint samples.

  Returns:
    An ``MCCResult``.
  """
  corr = []
  for batches, label in ((fit_batches, "fit "), (score_batches, "score ")):
    state = stream_state(batches, label, MIN_SAMPLES_PER_HALF)
    corr.append(np.abs(np.asarray(correlation_finalize(state))))
    del state
  if corr[0].shape != corr[1].shape:
    raise DataError(
        f"the fit stream has {corr[0].shape[0]} concepts and {corr[0].shape[1]} units but the "
        f"score stream has {corr[1].shape[0]} and {corr[1].shape[1]}: pass the same columns in "
        "both")
  return _match_and_score(*corr)
