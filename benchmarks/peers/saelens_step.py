"""Times SAELens's TopK SAE training step (run with the peer venv's python).

The step is SAELens's own `SAETrainer.step` on a `TopKTrainingSAE` with default settings (fp32,
dense decoder, decoder-norm rescaling of the activations, AuxK coefficient 1): the forward pass
`training_forward_pass` with its loss, the dead-latent bookkeeping, backward, global-norm gradient
clipping at 1, Adam and zero_grad, i.e. what its `fit` loop runs per batch. Only the learning rate
is changed, to identi's. Prints one JSON line. torch is imported after argument parsing, so that
`--help` works without it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np


def step_arguments(description: str) -> argparse.ArgumentParser:
  """The arguments of a timed SAELens TopK step on a fixed batch (this script and
  saelens_multi.py)."""
  p = argparse.ArgumentParser(description=description)
  p.add_argument("--d_in", type=int, required=True)
  p.add_argument("--d_sae", type=int, required=True)
  p.add_argument("--k", type=int, required=True)
  p.add_argument("--batch", type=int, required=True)
  p.add_argument("--repeats", type=int, default=5, help="Timed steps (median reported).")
  p.add_argument("--lr", type=float, required=True)
  p.add_argument("--data", required=True, help="float32 (batch, d_in) .npy file.")
  p.add_argument("--threads", type=int, default=1, help="torch intra-op threads.")
  p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                 help="torch device; auto: cuda when torch sees a GPU, else cpu.")
  return p


def torch_device(args: argparse.Namespace, torch) -> str:
  """The torch device of `--device` (auto: cuda when available)."""
  if args.device == "auto":
    return "cuda" if torch.cuda.is_available() else "cpu"
  if args.device == "cuda" and not torch.cuda.is_available():
    raise ValueError("--device=cuda, but this torch sees no GPU; use --device=cpu or auto")
  return args.device


def synchronize(device: str, torch) -> None:
  """Waits for the device's queued work, so that wall-clock stamps measure finished steps."""
  if device == "cuda":
    torch.cuda.synchronize()


def load_batch(args: argparse.Namespace) -> np.ndarray:
  """The fixed batch of `--data`, checked against `--batch` and `--d_in`."""
  x = np.load(args.data)
  if x.shape != (args.batch, args.d_in) or x.dtype != np.float32:
    raise ValueError(f"{args.data}: expected float32 {(args.batch, args.d_in)}, got "
                     f"{x.dtype} {x.shape}")
  return x


def parse_args(argv=None) -> argparse.Namespace:
  return step_arguments(__doc__.splitlines()[0]).parse_args(argv)


def main(argv=None) -> None:
  args = parse_args(argv)
  import torch  # pylint: disable=g-import-not-at-top
  import sae_lens  # pylint: disable=g-import-not-at-top
  from sae_lens import TopKTrainingSAE, TopKTrainingSAEConfig  # pylint: disable=g-import-not-at-top
  from sae_lens.config import SAETrainerConfig  # pylint: disable=g-import-not-at-top
  from sae_lens.training.sae_trainer import SAETrainer  # pylint: disable=g-import-not-at-top

  torch.set_num_threads(args.threads)
  torch.manual_seed(0)
  device = torch_device(args, torch)
  batch = torch.from_numpy(load_batch(args)).to(device)
  sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=args.d_in, d_sae=args.d_sae, k=args.k,
                                              dtype="float32", device=device))
  steps = args.repeats + 2
  trainer = SAETrainer(
      SAETrainerConfig(total_training_samples=steps * args.batch,
                       train_batch_size_samples=args.batch, lr=args.lr, lr_end=args.lr / 10,
                       adam_beta1=0.9, adam_beta2=0.999, device=device, autocast=False),
      sae, data_provider=iter(()))

  def step() -> float:
    t0 = time.perf_counter()
    trainer.step(batch)
    synchronize(device, torch)
    seconds = time.perf_counter() - t0
    trainer.n_training_steps += 1
    return seconds

  warmup_s = step() + step()
  seconds = statistics.median(step() for _ in range(args.repeats))
  print(json.dumps({
      "step_ms": 1e3 * seconds, "tokens_per_s": args.batch / seconds, "warmup_s": warmup_s,
      "saelens_version": sae_lens.__version__, "torch_version": torch.__version__,
      "threads": torch.get_num_threads(), "device": device,
      "aux": {"coefficient": sae.cfg.aux_loss_coefficient,
              "dead_latents": int(trainer.dead_neurons.sum()),
              "dead_feature_window_steps": trainer.cfg.dead_feature_window},
  }))


if __name__ == "__main__":
  main()
