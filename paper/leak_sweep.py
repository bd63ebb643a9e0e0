"""Identifiability against the selection leak: every method's encoder and minimal-code MCC over eps.

  python -m paper.leak_sweep [--smoke] [--out=paper/figures]

The identification experiment of `make demo` (configs/identify_hsm.py: the default HSM world, 128
level-1 concepts in d = 64; every SAE kind at 256 latents, the identifiable recipe and the
baselines) at selection leak eps from 0.05 (the spec's default) to 1 (no selection), with pi
re-fitted at every eps so that the mean number of active level-1 concepts stays that of the
default world (6.5). The smaller eps, the more often a whole's parts fire together (the JSON
records P(all parts | any part), averaged over level-2 wholes), and the more an SAE learns a
co-occurring pair as one composite unit instead of two parts. The limit of any learned
dictionary, non-negative OMP with the world's true dictionary on the same held-out rows, is
recorded beside them.

Each eps is one identify run in out/leak_sweep/runs/eps<eps>; a run whose results.json is there
for the same world is reused, so a killed sweep resumes (each SAE also resumes from its
checkpoints). A smoke run (toy world, for tests) trains three of the methods.
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from identi import generators, infer
from identi.bin import cli
from identi.experiments import identify
from identi.train import load_config, score_codes

from paper.common import OUT, ROOT, SMOKE, write_outputs

NAME = "leak_sweep"
LEAKS = (0.05, 0.2, 1.0)
SMOKE_LEAKS = (0.05, 1.0)
#: The methods of a smoke run (a full run has every method of the identify config).
SMOKE_METHODS = "topk,batchtopk,pca"


def co_occurrence(world: generators.HSMConfig, num_samples: int) -> float:
  """P(every part of a level-2 whole fires | any of them fires), mean over wholes."""
  out = generators.generate_hsm(jax.random.key(1), world, num_samples, view=None)
  a1, graph = np.asarray(out["a"][0]), out["graph"][0]
  ratios = []
  for j in range(graph.shape[1]):
    count = a1[:, graph[:, j]].sum(axis=1)
    ratios.append(np.mean(count == graph[:, j].sum()) / max(np.mean(count > 0), 1e-12))
  return float(np.mean(ratios))


def mean_active(world: generators.HSMConfig, num_samples: int = 16384) -> float:
  out = generators.generate_hsm(jax.random.key(2), world, num_samples, view=None)
  return float(np.mean(np.sum(np.asarray(out["a"][0]), axis=1)))


def pi_for_activity(world: generators.HSMConfig, target: float, steps: int = 12) -> float:
  """The pi in (0, 1) at which `world` has `target` active level-1 concepts (bisection)."""
  lo, hi = 1e-3, 0.95
  for _ in range(steps):
    mid = 0.5 * (lo + hi)
    if mean_active(dataclasses.replace(world, pi=mid)) < target:
      lo = mid
    else:
      hi = mid
  return 0.5 * (lo + hi)


def true_dictionary_limit(config) -> dict:
  """Non-negative OMP with the world's true dictionary (its mixing matrix) on the identify run's
  held-out rows, at most `minimal.max_atoms` atoms: what any learned dictionary can reach."""
  v = config.view
  out = generators.generate_hsm(jax.random.key(v.seed), identify.hsm_config(config),
                                v.num_samples, view="superposition", d=v.d, sigma=v.sigma)
  _, _, x_eval, z_eval = identify.split_eval(np.asarray(out["x"]), np.asarray(out["z"][0]),
                                             config.data.num_eval, config.data.split_seed)
  dictionary = np.asarray(out["mixing"]["A"], np.float32).T  # (concepts, d)
  codes = np.asarray(infer.omp(jnp.asarray(x_eval), jnp.asarray(dictionary),
                               max_atoms=config.minimal.max_atoms or 16,
                               tol=config.minimal.tol))
  scores = score_codes(x_eval, codes @ dictionary, codes, z_eval, config.eval.mcc_method)
  return {"name": "omp_true", "mcc": scores["mcc"], "fvu": scores["fvu"], "l0": scores["l0"]}


def identify_at(config, eps: float, pi: float, workdir: str) -> list[dict]:
  """The identify run's records at (eps, pi): reused from `workdir` when it holds this world."""
  config.world.eps, config.world.pi = eps, pi
  path = os.path.join(workdir, identify.RESULTS_FILE)
  if os.path.isfile(path):
    with open(path) as f:
      saved = json.load(f)
    world = saved.get("data", {}).get("world", {})
    if world.get("eps") == eps and world.get("pi") == pi:
      return saved["records"]
  return identify.run(config, workdir)


def run(out: str, smoke: bool) -> list[str]:
  leaks = SMOKE_LEAKS if smoke else LEAKS
  config = load_config(os.path.join(ROOT, "configs", "identify_hsm.py" + (":smoke" if smoke
                                                                            else "")))
  if smoke:
    config.methods = SMOKE_METHODS
  default = generators.default_world()
  base = dataclasses.replace(identify.hsm_config(config), eps=default.eps, pi=default.pi)
  target = mean_active(base)
  records = []
  for eps in leaks:
    world = dataclasses.replace(base, eps=eps)
    pi = pi_for_activity(world, target, steps=4 if smoke else 12)
    world = dataclasses.replace(world, pi=pi)
    methods = identify_at(config, eps, pi, os.path.join(out, NAME, "runs", f"eps{eps}"))
    records.append({"eps": eps, "pi": pi, "active": mean_active(world),
                    "co_occurrence": co_occurrence(world, 65536), "methods": methods,
                    "limit": true_dictionary_limit(config)})
  fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
  names = [m["name"] for m in records[0]["methods"]]
  for ax, key, title in ((axes[0], "mcc", "encoder"), (axes[1], "mcc_minimal", "minimal code")):
    for name in names:
      values = [next(m for m in r["methods"] if m["name"] == name).get(key) for r in records]
      if any(v is None for v in values):
        continue  # Baselines have no minimal code.
      ax.plot(leaks, values, "o-" if name == identify.IDENTIFIABLE else ".--", label=name,
              lw=2.5 if name == identify.IDENTIFIABLE else 1.2)
    ax.plot(leaks, [r["limit"]["mcc"] for r in records], "k-", lw=1,
            label="OMP, true dictionary (limit)")
    ax.plot(leaks, [r["co_occurrence"] for r in records], ":", color="gray",
            label="P(all parts | any part)")
    ax.axhline(0.95, color="gray", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("selection leak eps")
    ax.set_title(f"MCC of the {title}")
  axes[0].set_ylabel("MCC against the true level-1 concepts")
  handles, labels = axes[0].get_legend_handles_labels()
  fig.legend(handles, labels, loc="center right", fontsize=8)
  fig.subplots_adjust(right=0.8)
  return write_outputs(out, NAME, fig, {"records": records})


def main(argv):
  del argv
  print("\n".join(run(OUT.value, SMOKE.value)))


if __name__ == "__main__":
  cli.run(main)
