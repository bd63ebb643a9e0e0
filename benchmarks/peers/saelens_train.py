"""Trains SAELens's TopK SAE with SAELens's trainer on an activation file (peer venv's python).

Every step is what SAELens's `SAETrainer.fit` runs per batch: `maybe_reset_sparsity`, then
`SAETrainer.step` on a `TopKTrainingSAE` (the activation scaler, its forward pass and loss with
AuxK, the dead-latent bookkeeping, backward, global-norm clipping at 1, Adam, its learning-rate
schedule), then the step counter. Only what `fit` would need wandb, checkpoints or a data
provider for is left out. Settings are SAELens's defaults except:

- the learning rate and its schedule, set to the caller's: `--warmup` linear warm-up steps, then
  constant, then linear decay to 0 over the last `--decay` steps (SAELens's own scheduler);
- `normalize_activations='expected_average_only_in'` (with `--normalize`, the default): SAELens
  estimates the mean norm of the training rows, as `fit` does before its first step, and scales
  the input so that E||x|| = sqrt(d_in), the convention identi's SAEs train with. The estimate
  reads one epoch of batches, so it is the exact mean over the training rows.

Batches are the rows of `--train` in the order `--order` gives ((steps, batch) row indices), so
that a caller can feed the batches another trainer saw; without it, seeded shuffled epochs.
After training the activation scaling is folded into the weights (as `fit` does at its end) and
the weights are written as SAELens saves an inference SAE (decoder norms folded into the encoder,
`process_state_dict_for_saving_inference`), so that in raw units

  codes = topk_relu((x - b_dec * apply_b_dec_to_input) @ W_enc + b_enc),  x_hat = codes @ W_dec + b_dec

`--output` (.npz) holds W_enc (d_in, d_sae), b_enc, W_dec (d_sae, d_in), b_dec,
apply_b_dec_to_input, k and norm_scaling_factor (already folded; 1 when not normalised), and with
`--encode` SAELens's own codes (`sae.encode`) of those rows, to check an encoder built from the
weights. Prints one JSON line: the wall time of the training (the norm estimate and the step
loop), tokens/s, versions and threads. torch is imported after argument parsing, so that `--help`
works without it.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--train", required=True, help="float32 (n, d_in) .npy training rows.")
  p.add_argument("--output", required=True, help="Output .npz of the trained weights.")
  p.add_argument("--d_sae", type=int, required=True)
  p.add_argument("--k", type=int, required=True)
  p.add_argument("--steps", type=int, required=True)
  p.add_argument("--batch", type=int, required=True)
  p.add_argument("--lr", type=float, required=True)
  p.add_argument("--warmup", type=int, default=0, help="Linear warm-up steps.")
  p.add_argument("--decay", type=int, default=0, help="Final steps of linear decay to 0.")
  p.add_argument("--order", default="",
                 help="int (steps, batch) .npy of row indices into --train, one row per step; "
                      "default: seeded shuffled epochs.")
  p.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=True,
                 help="Scale inputs to E||x|| = sqrt(d_in) (SAELens's "
                      "'expected_average_only_in').")
  p.add_argument("--encode", default="",
                 help="float32 (m, d_in) .npy rows whose SAELens codes go to --output.")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--threads", type=int, default=2, help="torch intra-op threads.")
  return p.parse_args(argv)


def batch_order(args, n: int) -> np.ndarray:
  """(steps, batch) row indices: `--order`, checked, or seeded shuffled epochs."""
  if args.order:
    order = np.load(args.order)
    if order.shape != (args.steps, args.batch) or not np.issubdtype(order.dtype, np.integer):
      raise ValueError(f"--order {args.order}: expected integer {(args.steps, args.batch)}, got "
                       f"{order.dtype} {order.shape}; write one row of indices per step")
    if order.size and not 0 <= order.min() <= order.max() < n:
      raise ValueError(f"--order {args.order} indexes rows outside [0, {n}) of --train")
    return order
  rng = np.random.default_rng(args.seed)
  epochs = math.ceil(args.steps * args.batch / n)
  return np.concatenate([rng.permutation(n) for _ in range(epochs)])[
      :args.steps * args.batch].reshape(args.steps, args.batch)


def load_rows(path: str, flag: str) -> np.ndarray:
  x = np.load(path)
  if x.ndim != 2 or x.dtype != np.float32:
    raise ValueError(f"{flag} {path}: expected a float32 (rows, d_in) array, got {x.dtype} "
                     f"{x.shape}")
  return x


def main(argv=None) -> None:
  args = parse_args(argv)
  x_np = load_rows(args.train, "--train")
  order_np = batch_order(args, len(x_np))
  import torch  # pylint: disable=g-import-not-at-top
  import sae_lens  # pylint: disable=g-import-not-at-top
  from sae_lens import TopKTrainingSAE, TopKTrainingSAEConfig  # pylint: disable=g-import-not-at-top
  from sae_lens.config import SAETrainerConfig  # pylint: disable=g-import-not-at-top
  from sae_lens.training.sae_trainer import SAETrainer  # pylint: disable=g-import-not-at-top

  torch.set_num_threads(args.threads)
  torch.manual_seed(args.seed)
  x = torch.from_numpy(x_np)
  order = torch.from_numpy(order_np.astype(np.int64))
  d_in = x.shape[1]
  sae = TopKTrainingSAE(TopKTrainingSAEConfig(
      d_in=d_in, d_sae=args.d_sae, k=args.k, dtype="float32", device="cpu",
      normalize_activations="expected_average_only_in" if args.normalize else "none"))
  norm_batches = math.ceil(len(x_np) / args.batch)
  trainer = SAETrainer(
      SAETrainerConfig(total_training_samples=args.steps * args.batch,
                       train_batch_size_samples=args.batch, lr=args.lr,
                       lr_end=args.lr / 10,  # The runner's default; the constant schedule
                       # ignores it (its decay ends at 0).
                       lr_warm_up_steps=args.warmup, lr_decay_steps=args.decay,
                       adam_beta1=0.9, adam_beta2=0.999, device="cpu", autocast=False,
                       n_batches_for_norm_estimate=norm_batches),
      sae, data_provider=iter(()))

  t0 = time.perf_counter()
  if args.normalize:  # fit's norm estimate: one epoch of batches in row order.
    trainer.activation_scaler.estimate_scaling_factor(
        d_in=d_in, data_provider=iter(x.split(args.batch)),
        n_batches_for_norm_estimate=norm_batches)
  for step in range(args.steps):
    trainer.maybe_reset_sparsity()
    trainer.step(x[order[step]])
    trainer.n_training_steps += 1
  seconds = time.perf_counter() - t0

  scale = trainer.activation_scaler.scaling_factor
  with torch.no_grad():
    if scale is not None:  # As fit does after its last step.
      sae.fold_activation_norm_scaling_factor(scale)
      trainer.activation_scaler.scaling_factor = None
    sae.eval()
    state = {k: v.detach().clone() for k, v in sae.state_dict().items()}
    sae.process_state_dict_for_saving_inference(state)
    out = {name: state[name].numpy() for name in ("W_enc", "b_enc", "W_dec", "b_dec")}
    if args.encode:
      out["codes"] = sae.encode(torch.from_numpy(load_rows(args.encode, "--encode"))).numpy()
  np.savez(args.output, **out, k=np.int64(args.k),
           apply_b_dec_to_input=np.bool_(sae.cfg.apply_b_dec_to_input),
           norm_scaling_factor=np.float64(1.0 if scale is None else scale))
  print(json.dumps({"seconds": seconds, "tokens_per_s": args.steps * args.batch / seconds,
                    "saelens_version": sae_lens.__version__, "torch_version": torch.__version__,
                    "threads": torch.get_num_threads(),
                    "dead_latents_at_end": int(trainer.dead_neurons.sum()),
                    "dead_feature_window_steps": trainer.cfg.dead_feature_window,
                    "aux_loss_coefficient": sae.cfg.aux_loss_coefficient}))


if __name__ == "__main__":
  main()
