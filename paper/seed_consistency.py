"""Cross-seed consistency (PW-MCC) of the identifiable recipe on the strong-selection world.

  python -m paper.seed_consistency [--smoke] [--out=paper/figures]

`make demo`'s world (configs/identify_hsm.py: leak eps = 0.05, 128 level-1 concepts in d = 64,
256 latents) and its `identifiable` method (BatchTopK plus the minimality stage), trained with
init seeds 0, 1 and 2 on the same data in the same order, as one sweep
(`sweep.init_seeds`), each SAE then through its own stage. Reported per seed: encoder
and minimal-code MCC against the true concepts. Per pair of seeds (PW-MCC, the mean over the three
pairs):

- activation PW-MCC: identi's MCC between the two runs' encoder codes on the held-out samples (one
  run's units as the "truth" of the other's; the matching fitted on one half, scored on the other);
- decoder PW-MCC: the mean |cosine| of the two dictionaries' used atoms under the best one-to-one
  matching (Hungarian), over the smaller dictionary's atoms.

Units that never fire on the held-out samples and atoms the stage dropped (zero rows) are left out.
"""

from __future__ import annotations

import itertools
import os

import matplotlib.pyplot as plt
import numpy as np
from scipy import optimize

from identi import metrics
from identi.bin import cli
from identi.experiments import identify as identify_lib
from identi.train import load_config, load_trained
from identi.train.config import validate_config
from identi.train.sweep import member_config, member_dir, train_sweep

from paper.common import OUT, ROOT, SMOKE, write_outputs

NAME = "seed_consistency"
SEEDS = (0, 1, 2)
METHOD = identify_lib.IDENTIFIABLE


def decoder_pw_mcc(w_a: np.ndarray, w_b: np.ndarray) -> float:
  """Mean |cosine| of the best one-to-one matching of the used (non-zero) rows of two decoders."""
  rows = []
  for w in (w_a, w_b):
    w = np.asarray(w, np.float64)
    norms = np.linalg.norm(w, axis=1)
    rows.append(w[norms > 0] / norms[norms > 0, None])
  cos = np.abs(rows[0] @ rows[1].T)
  r, c = optimize.linear_sum_assignment(-cos)
  return float(cos[r, c].mean())


def run(out: str, smoke: bool) -> list[str]:
  config = load_config(os.path.join(ROOT, "configs", "identify_hsm.py" + (":smoke" * smoke)))
  x, z, description = identify_lib.load_data(config)
  source, _, x_eval, z_eval = identify_lib.split_eval(x, z, config.data.num_eval,
                                                      config.data.split_seed)
  runs = os.path.join(out, NAME, "runs")
  # The three SAEs train together (one step for all, one data stream), each then gets its
  # own minimality stage and workdir; scoring reopens each workdir as a finished run.
  tc = identify_lib.training_config(config, METHOD)
  tc.sweep.init_seeds = ",".join(map(str, SEEDS))
  validate_config(tc)
  train_sweep(tc, runs, source=source)
  records, codes, decoders = [], [], []
  for seed in SEEDS:
    workdir = member_dir(runs, seed)
    record = identify_lib.identify_sae(member_config(tc, seed), source, x_eval, z_eval, workdir,
                                       config.minimal.method, name=f"{METHOD} seed {seed}",
                                       **identify_lib.minimal_kwargs(config))
    records.append(dict(record, init_seed=seed))
    _, model, variables = load_trained(workdir)
    c = np.asarray(model.apply(variables, x_eval, method="encode"))
    codes.append(c[:, (c > 0).any(axis=0)])
    decoders.append(np.asarray(variables["params"]["W_dec"]))
  pairs = []
  for a, b in itertools.combinations(range(len(SEEDS)), 2):
    pairs.append({"seeds": [SEEDS[a], SEEDS[b]],
                  "activation": float(metrics.mcc(codes[a], codes[b],
                                                  method=config.eval.mcc_method).mcc),
                  "decoder": decoder_pw_mcc(decoders[a], decoders[b])})
  summary = {"pw_mcc_activation": float(np.mean([p["activation"] for p in pairs])),
             "pw_mcc_decoder": float(np.mean([p["decoder"] for p in pairs])),
             "mcc_mean": float(np.mean([r["mcc"] for r in records])),
             "mcc_minimal_mean": float(np.mean([r["mcc_minimal"] for r in records]))}
  fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
  pos = np.arange(len(SEEDS))
  left.bar(pos - 0.2, [r["mcc"] for r in records], 0.4, label="encoder")
  left.bar(pos + 0.2, [r["mcc_minimal"] for r in records], 0.4, label="minimal code")
  left.set_xticks(pos, [f"seed {s}" for s in SEEDS])
  left.set_ylabel("MCC against the true concepts")
  left.set_ylim(0, 1)
  left.legend(loc="lower right")
  pos = np.arange(len(pairs))
  right.bar(pos - 0.2, [p["activation"] for p in pairs], 0.4, label="activation")
  right.bar(pos + 0.2, [p["decoder"] for p in pairs], 0.4, label="decoder")
  right.axhline(0.95, color="gray", lw=1)
  right.set_xticks(pos, [f"{p['seeds'][0]} vs {p['seeds'][1]}" for p in pairs])
  right.set_ylabel("PW-MCC between seeds")
  right.set_ylim(0, 1)
  right.legend(loc="lower right")
  fig.tight_layout()
  return write_outputs(out, NAME, fig, {"data": description, "records": records, "pairs": pairs,
                                        "summary": summary})


def main(argv):
  del argv
  print("\n".join(run(OUT.value, SMOKE.value)))


if __name__ == "__main__":
  cli.run(main)
