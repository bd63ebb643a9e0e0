"""Trains SAELens's TopK SAE with SAELens's trainer on an activation file (peer venv's python).

Each step is SAELens's own `SAETrainer.step` on a `TopKTrainingSAE` (its forward pass and loss
with AuxK, dead-latent bookkeeping, backward, clipping, Adam, its learning-rate schedule), i.e.
what its `fit` loop runs per batch; batches are the rows of `--train` in a seeded random order,
reshuffled each epoch. The schedule is set to identi's: `--warmup` linear warm-up steps and
linear decay to 0 over the last `--decay` steps. After training, the SAE encodes `--train` (to
count latents that never fire) and `--eval`; codes and reconstructions of `--eval` go to
`--output` (.npz). Prints one JSON line with the training wall time (the step loop only) and
tokens/s. torch is imported after argument parsing, so that `--help` works without it.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--train", required=True, help="float32 (n, d_in) .npy training rows.")
  p.add_argument("--eval", required=True, help="float32 (m, d_in) .npy rows to encode.")
  p.add_argument("--output", required=True, help="Output .npz (codes, reconstruction).")
  p.add_argument("--d_sae", type=int, required=True)
  p.add_argument("--k", type=int, required=True)
  p.add_argument("--steps", type=int, required=True)
  p.add_argument("--batch", type=int, required=True)
  p.add_argument("--lr", type=float, required=True)
  p.add_argument("--warmup", type=int, default=0)
  p.add_argument("--decay", type=int, default=0)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--threads", type=int, default=2, help="torch intra-op threads.")
  return p.parse_args(argv)


def main(argv=None) -> None:
  args = parse_args(argv)
  import torch  # pylint: disable=g-import-not-at-top
  import sae_lens  # pylint: disable=g-import-not-at-top
  from sae_lens import TopKTrainingSAE, TopKTrainingSAEConfig  # pylint: disable=g-import-not-at-top
  from sae_lens.config import SAETrainerConfig  # pylint: disable=g-import-not-at-top
  from sae_lens.training.sae_trainer import SAETrainer  # pylint: disable=g-import-not-at-top

  torch.set_num_threads(args.threads)
  torch.manual_seed(args.seed)
  x = torch.from_numpy(np.load(args.train).astype(np.float32))
  x_eval = torch.from_numpy(np.load(args.eval).astype(np.float32))
  sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=x.shape[1], d_sae=args.d_sae, k=args.k,
                                              dtype="float32", device="cpu"))
  trainer = SAETrainer(
      SAETrainerConfig(total_training_samples=args.steps * args.batch,
                       train_batch_size_samples=args.batch, lr=args.lr, lr_end=0.0,
                       lr_warm_up_steps=args.warmup, lr_decay_steps=args.decay,
                       adam_beta1=0.9, adam_beta2=0.999, device="cpu", autocast=False),
      sae, data_provider=iter(()))
  rng = np.random.default_rng(args.seed)
  order = np.empty(0, np.int64)
  t0 = time.perf_counter()
  for _ in range(args.steps):
    if len(order) < args.batch:
      order = np.concatenate([order, rng.permutation(len(x))])
    idx, order = order[:args.batch], order[args.batch:]
    trainer.step(x[torch.from_numpy(idx)])
    trainer.n_training_steps += 1
  seconds = time.perf_counter() - t0
  with torch.no_grad():
    sae.eval()
    fired = (sae.encode(x) > 0).any(dim=0)
    codes = sae.encode(x_eval)
    recon = sae.decode(codes)
  np.savez(args.output, codes=codes.numpy(), reconstruction=recon.numpy(),
           dead=(~fired).numpy())
  print(json.dumps({"seconds": seconds, "tokens_per_s": args.steps * args.batch / seconds,
                    "saelens_version": sae_lens.__version__, "torch_version": torch.__version__,
                    "threads": torch.get_num_threads()}))


if __name__ == "__main__":
  main()
