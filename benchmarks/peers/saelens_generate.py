"""Times SAELens generating synthetic SAE training activations on CPU (run with the peer venv).

The world is SAELens's `SyntheticModel` with the SynthSAEBench-16k settings (Zipfian firing
probabilities, exponent 0.5, from 0.4 down to 5e-4; hierarchy forest of branching factor 4 and depth
3 with mutually exclusive children, compensated probabilities and children scaled by their parent;
per-feature magnitudes with means linear from 5 to 4 and folded-normal standard deviations; bias
norm 0.5) except that the roots scale with the size (128 per 16,384 features) and that it has no
orthogonalisation (a one-off cost when the model is built) and no low-rank correlation (identi's
HSM has none). The timed call is `SyntheticModel.sample(batch)`: `ActivationGenerator.sample`
(Bernoulli draw of every feature, magnitudes at the firing positions, the hierarchy modifier:
children of inactive parents switched off, one winner per mutually exclusive group, children
rescaled by parent, ReLU) and then `FeatureDictionary` (dense `acts @ vectors + bias`). The
generator alone is timed too. Prints one JSON line. torch is imported after argument parsing, so
that `--help` works without it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--num_features", type=int, required=True)
  p.add_argument("--d_in", type=int, required=True, help="Hidden dimension of the projection.")
  p.add_argument("--batch", type=int, required=True)
  p.add_argument("--repeats", type=int, default=5, help="Timed calls (median reported).")
  p.add_argument("--threads", type=int, default=1, help="torch intra-op threads.")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--hierarchy", choices=["on", "off"], default="on",
                 help="off: independent firing probabilities only.")
  return p.parse_args(argv)


def _median_seconds(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def main(argv=None) -> None:
  args = parse_args(argv)
  import torch  # pylint: disable=g-import-not-at-top
  import sae_lens  # pylint: disable=g-import-not-at-top
  from sae_lens.synthetic import (  # pylint: disable=g-import-not-at-top
      FoldedNormalMagnitudeConfig, HierarchyConfig, LinearMagnitudeConfig, SyntheticModel,
      SyntheticModelConfig, ZipfianFiringProbabilityConfig)

  torch.set_num_threads(args.threads)
  torch.manual_seed(args.seed)
  roots = max(1, 128 * args.num_features // 16384)
  hierarchy = HierarchyConfig(
      total_root_nodes=roots, branching_factor=4, max_depth=3, mutually_exclusive_portion=1.0,
      mutually_exclusive_min_depth=0, compensate_probabilities=True,
      scale_children_by_parent=True) if args.hierarchy == "on" else None
  t0 = time.perf_counter()
  model = SyntheticModel(SyntheticModelConfig(
      num_features=args.num_features, hidden_dim=args.d_in,
      firing_probability=ZipfianFiringProbabilityConfig(max_prob=0.4, min_prob=5e-4,
                                                        exponent=0.5),
      hierarchy=hierarchy,
      mean_firing_magnitudes=LinearMagnitudeConfig(start=5.0, end=4.0),
      std_firing_magnitudes=FoldedNormalMagnitudeConfig(mean=0.5, std=0.5),
      bias=0.5, seed=args.seed), device="cpu")
  build_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  x, acts = model.sample_with_features(args.batch)
  first_s = time.perf_counter() - t0
  if x.shape != (args.batch, args.d_in):
    raise ValueError(f"SyntheticModel.sample gave {tuple(x.shape)}, expected "
                     f"{(args.batch, args.d_in)}")
  l0 = float((acts > 0).sum(dim=1).float().mean())
  model.sample(args.batch)
  seconds = _median_seconds(lambda: model.sample(args.batch), args.repeats)
  generator_s = _median_seconds(lambda: model.activation_generator.sample(args.batch),
                                args.repeats)
  in_trees = 0 if model.hierarchy is None else len(model.hierarchy.feature_indices_used)
  print(json.dumps({
      "samples_per_s": args.batch / seconds, "batch_ms": 1e3 * seconds,
      "generator_ms": 1e3 * generator_s, "first_call_s": first_s, "build_s": build_s,
      "l0": l0, "hierarchy_features": in_trees, "roots": 0 if hierarchy is None else roots,
      "saelens_version": sae_lens.__version__, "torch_version": torch.__version__,
      "threads": torch.get_num_threads(),
      "timed": "SyntheticModel.sample = ActivationGenerator.sample (Bernoulli, magnitudes"
               + (", hierarchy modifier, ReLU" if hierarchy is not None else "")
               + ") + FeatureDictionary (acts @ vectors + bias)",
  }))


if __name__ == "__main__":
  main()
