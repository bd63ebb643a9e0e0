"""Times SAELens's multi-SAE trainer (run with the peer venv's python).

`MultiSAETrainer` is the engine of SAELens's `MultiSAETrainingRunner`: it trains several
`TrainingSAE`s in lockstep on one shared activation stream, one `SAETrainer.step` per SAE per batch
(forward pass with its loss and AuxK, dead-latent bookkeeping, backward, gradient clipping, Adam).
The runner itself only takes activations from a language model's forward pass (cached activations
are not supported in its multi-hook mode), so the trainer is driven here directly with a data
provider that yields the same fixed batch (`--data`) to every SAE at every step, as identi's sweep
benchmark does. `--saes` TopK SAEs differ only in their torch seed. The time of one step of all
SAEs is the interval between consecutive batches requested by `fit`; the median after two warm-up
steps is reported. Prints one JSON line. torch is imported after argument parsing, so that
`--help` works without it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

# The sibling script, whether this one runs by path (the peer venv) or is imported (tests).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from saelens_step import (load_batch, step_arguments, synchronize,  # noqa: E402  pylint: disable=g-import-not-at-top
                          torch_device)


def parse_args(argv=None) -> argparse.Namespace:
  p = step_arguments(__doc__.splitlines()[0])
  p.add_argument("--saes", type=int, required=True)
  return p.parse_args(argv)


def main(argv=None) -> None:
  args = parse_args(argv)
  import torch  # pylint: disable=g-import-not-at-top
  import sae_lens  # pylint: disable=g-import-not-at-top
  from sae_lens import TopKTrainingSAE, TopKTrainingSAEConfig  # pylint: disable=g-import-not-at-top
  from sae_lens.config import SAETrainerConfig  # pylint: disable=g-import-not-at-top
  from sae_lens.training.multi_sae_trainer import MultiSAETrainer  # pylint: disable=g-import-not-at-top

  torch.set_num_threads(args.threads)
  device = torch_device(args, torch)
  batch = torch.from_numpy(load_batch(args)).to(device)
  saes = {}
  for seed in range(args.saes):
    torch.manual_seed(seed)
    saes[f"sae_{seed}"] = TopKTrainingSAE(TopKTrainingSAEConfig(
        d_in=args.d_in, d_sae=args.d_sae, k=args.k, dtype="float32", device=device))
  steps = args.repeats + 3
  stamps: list[float] = []

  def provider():
    while True:
      synchronize(device, torch)  # The previous step of every SAE has finished.
      stamps.append(time.perf_counter())
      yield {"x": batch}

  trainer = MultiSAETrainer(
      SAETrainerConfig(total_training_samples=steps * args.batch,
                       train_batch_size_samples=args.batch, lr=args.lr, lr_end=args.lr / 10,
                       adam_beta1=0.9, adam_beta2=0.999, device=device, autocast=False),
      saes, hook_names={name: "x" for name in saes}, data_provider=provider())
  t0 = time.perf_counter()
  trainer.fit()
  total_s = time.perf_counter() - t0
  intervals = np.diff(stamps).tolist()  # Interval i: every SAE's step i.
  seconds = statistics.median(intervals[2:])
  print(json.dumps({
      "step_s": seconds, "tokens_per_s_per_sae": args.batch / seconds,
      "tokens_per_s_total": args.saes * args.batch / seconds, "steps": steps,
      "fit_s": total_s, "saes": args.saes, "saelens_version": sae_lens.__version__,
      "torch_version": torch.__version__, "threads": torch.get_num_threads(),
      "device": device}))


if __name__ == "__main__":
  main()
