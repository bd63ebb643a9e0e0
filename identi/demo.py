"""The flagship demo: train an SAE on data with known concepts and measure identifiability.

`run_demo(config, workdir)` trains with `train_and_evaluate`, encodes the held-out split, matches
learned units to the true concepts (MCC, Pearson, Hungarian matching fitted on one half and scored
on the other) and writes `workdir/demo.json` and the figure `workdir/identifiability.{png,pdf}`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from identi import io
from identi.errors import ConfigError
from identi.figures import identifiability_figure
from identi.metrics import mcc
from identi.train import build_sources, encode_batches, load_trained, train_and_evaluate

RESULT_FILE = "demo.json"
FIGURE_STEM = "identifiability"


def run_demo(config, workdir: str) -> dict[str, Any]:
  """Trains, evaluates and draws the identifiability of the configured SAE; returns its row."""
  if config.data.source != "superposition":
    raise ConfigError("the demo needs data with known concepts: set data.source='superposition'")
  final = train_and_evaluate(config, workdir)
  _, model, variables = load_trained(workdir)
  _, eval_src = build_sources(config)
  codes, latents = [], []
  for _, c, _, z in encode_batches(model, variables, eval_src, config.eval.batch_size):
    codes.append(c)
    latents.append(z)
  result = mcc(np.concatenate(latents), np.concatenate(codes), method=config.eval.mcc_method)
  s = config.data.superposition
  row = {
      "sae": config.sae.kind, "features": s.num_features, "d": s.d, "d_sae": config.sae.d_sae,
      "fvu": final["fvu"], "l0": final["l0"], "dead_fraction": final["dead_fraction"],
      "mcc": float(result.mcc), "min_concept_corr": float(np.min(result.per_concept)),
  }
  io.write_json(os.path.join(workdir, RESULT_FILE),
                dict(row, per_concept=result.per_concept.tolist()))
  row["figure"] = identifiability_figure(
      result.per_concept, result.corr_fit, result.matching, os.path.join(workdir, FIGURE_STEM),
      title=(f"{config.sae.kind} SAE, {s.num_features} features in d={s.d}, "
             f"~{s.active_per_sample:g} active"))[0]
  return row
