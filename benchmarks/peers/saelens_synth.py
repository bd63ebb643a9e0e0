"""SAELens's synthetic data and SAELens's SAEs on it, for `benchmarks/synth_peer.py` (peer venv).

`generate` builds a SAELens `SyntheticModel` with SynthSAEBench-16k's recipe at the given size
(Zipfian firing probabilities, exponent 0.5, from 0.4 down to 5e-4; a hierarchy forest of
branching factor 4 and depth 3, one root per 128 features, every sibling group mutually exclusive,
compensated probabilities, children scaled by their parent; low-rank correlated firing, rank 25,
scale 0.1; orthogonalised dictionary, 100 steps at lr 3e-4; magnitudes with means linear from 5 to
4 and folded-normal standard deviations; bias norm 0.5; model seed 42) and samples from it with
`SyntheticModel.sample_with_features`: the evaluation rows first, then the training rows. It
writes train.npy and eval.npy (activations), eval_z.npy (the evaluation rows' true feature
activations), dictionary.npy (the true feature vectors, n_features x d_in), bias.npy and
parent.npy (each feature's parent feature in the hierarchy, -1 for none). `tree` builds the same
model and writes only parent.npy.

`train` trains SAELens SAEs with SAELens's own trainer (`SAETrainer.fit`: its forward passes and
losses, AuxK, dead-latent bookkeeping, clipping, Adam, its learning-rate schedule) on the rows of
`--train` in a seeded random order, reshuffled each epoch, with SynthSAEBench's SAE configs
(BatchTopK with SAELens's defaults; Matryoshka BatchTopK with the Matryoshka AuxK loss; MP-SAE
with no residual threshold and no stop on a repeated support; TopK with SAELens's defaults). Each
trained SAE is saved as SAELens's inference model (`save_inference_model`, which turns the
BatchTopK threshold into a JumpReLU threshold), loaded back with `SAE.load_from_disk`, and encodes
`--eval`; its codes, reconstructions and decoder go to `--output_dir/ARCH.npz`. With `--eval_z`
and `--dictionary` it also scores each SAE with SAELens's own `mean_correlation_coefficient` and
`compute_classification_metrics`, so that the benchmark can check its numpy versions against them.

Every command prints one JSON line (`generate` and `train` with the sha256 of the training rows,
`tree` with that of the dictionary). torch is imported after argument parsing, so that `--help`
works without it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time

import numpy as np

ARCHS = ("topk", "batchtopk", "matryoshka", "mp")
#: SynthSAEBench-16k's features per hierarchy root (128 roots for 16,384 features).
FEATURES_PER_ROOT = 128


def rows_sha256(x: np.ndarray) -> str:
  """sha256 of float32 rows in C order (the identity of a training set on both sides)."""
  return hashlib.sha256(np.ascontiguousarray(x, np.float32).tobytes()).hexdigest()


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  sub = p.add_subparsers(dest="command", required=True)
  g = sub.add_parser("generate", help="Sample train and evaluation rows from a SyntheticModel.")
  g.add_argument("--output_dir", required=True)
  g.add_argument("--num_features", type=int, required=True)
  g.add_argument("--d_in", type=int, required=True)
  g.add_argument("--train_rows", type=int, required=True)
  g.add_argument("--eval_rows", type=int, required=True)
  g.add_argument("--model_seed", type=int, default=42, help="SyntheticModelConfig.seed.")
  g.add_argument("--seed", type=int, default=0, help="torch seed of the sampling.")
  g.add_argument("--chunk", type=int, default=8192, help="Rows sampled per call.")
  g.add_argument("--threads", type=int, default=2, help="torch intra-op threads.")
  h = sub.add_parser("tree", help="Write only the model's hierarchy (parent.npy).")
  h.add_argument("--output_dir", required=True)
  h.add_argument("--num_features", type=int, required=True)
  h.add_argument("--d_in", type=int, required=True)
  h.add_argument("--model_seed", type=int, default=42, help="SyntheticModelConfig.seed.")
  h.add_argument("--threads", type=int, default=2, help="torch intra-op threads.")
  t = sub.add_parser("train", help="Train SAELens SAEs with SAETrainer.fit on --train.")
  t.add_argument("--train", required=True, help="float32 (n, d_in) .npy training rows.")
  t.add_argument("--eval", required=True, help="float32 (m, d_in) .npy rows to encode.")
  t.add_argument("--output_dir", required=True, help="Gets ARCH.npz per architecture.")
  t.add_argument("--archs", default=",".join(ARCHS), help=f"Comma-separated, of {ARCHS}.")
  t.add_argument("--d_sae", type=int, required=True)
  t.add_argument("--k", type=int, required=True, help="k (BatchTopK: mean k; MP: iterations).")
  t.add_argument("--matryoshka_widths", default="", help="Inner widths, e.g. '16,64,256'.")
  t.add_argument("--steps", type=int, required=True)
  t.add_argument("--batch", type=int, required=True)
  t.add_argument("--lr", type=float, required=True)
  t.add_argument("--warmup", type=int, default=0)
  t.add_argument("--decay", type=int, default=0)
  t.add_argument("--seed", type=int, default=0)
  t.add_argument("--threads", type=int, default=2, help="torch intra-op threads.")
  t.add_argument("--eval_z", default="", help="Optional (m, n_features) true activations.")
  t.add_argument("--dictionary", default="", help="Optional (n_features, d_in) true features.")
  return p.parse_args(argv)


def build_model(args):
  """SAELens's `SyntheticModel` of the recipe above at `args`' size and model seed; (model,
  config, roots, build seconds)."""
  import torch  # pylint: disable=g-import-not-at-top
  from sae_lens.synthetic import (  # pylint: disable=g-import-not-at-top
      FoldedNormalMagnitudeConfig, HierarchyConfig, LinearMagnitudeConfig,
      LowRankCorrelationConfig, OrthogonalizationConfig, SyntheticModel, SyntheticModelConfig,
      ZipfianFiringProbabilityConfig)

  torch.set_num_threads(args.threads)
  roots = max(1, args.num_features // FEATURES_PER_ROOT)
  config = SyntheticModelConfig(
      num_features=args.num_features, hidden_dim=args.d_in,
      firing_probability=ZipfianFiringProbabilityConfig(max_prob=0.4, min_prob=5e-4,
                                                        exponent=0.5),
      hierarchy=HierarchyConfig(total_root_nodes=roots, branching_factor=4, max_depth=3,
                                mutually_exclusive_portion=1.0, mutually_exclusive_min_depth=0,
                                compensate_probabilities=True, scale_children_by_parent=True),
      mean_firing_magnitudes=LinearMagnitudeConfig(start=5.0, end=4.0),
      std_firing_magnitudes=FoldedNormalMagnitudeConfig(mean=0.5, std=0.5),
      correlation=LowRankCorrelationConfig(correlation_scale=0.1, rank=25),
      orthogonalization=OrthogonalizationConfig(num_steps=100, lr=3e-4),
      bias=0.5, seed=args.model_seed)
  t0 = time.perf_counter()
  model = SyntheticModel(config, device="cpu")
  return model, config, roots, time.perf_counter() - t0


def tree_parents(hierarchy, num_features: int) -> np.ndarray:
  """(num_features,) int64: each feature's nearest ancestor that is a feature in SAELens's
  `Hierarchy` (nodes without a feature index are passed through), -1 for roots and for features
  outside every tree."""
  parent = np.full(num_features, -1, np.int64)
  stack = [(node, -1) for node in ([] if hierarchy is None else hierarchy.roots)]
  while stack:
    node, above = stack.pop()
    if node.feature_index is not None:
      parent[node.feature_index] = above
      above = node.feature_index
    stack.extend((child, above) for child in node.children)
  return parent


def save_tree(model, args) -> None:
  np.save(os.path.join(args.output_dir, "parent.npy"),
          tree_parents(model.hierarchy, args.num_features))


def tree(args) -> dict:
  """Only the model's hierarchy, as parent.npy, for rows generated before it was written."""
  model, _, _, build_s = build_model(args)
  os.makedirs(args.output_dir, exist_ok=True)
  save_tree(model, args)
  return {"dictionary_sha256": rows_sha256(model.feature_dict.feature_vectors.detach().numpy()),
          "build_s": build_s}


def generate(args) -> dict:
  import torch  # pylint: disable=g-import-not-at-top

  model, config, roots, build_s = build_model(args)
  torch.manual_seed(args.seed)
  t0 = time.perf_counter()
  xs, zs = [], []
  for start in range(0, args.eval_rows, args.chunk):
    x, z = model.sample_with_features(min(args.chunk, args.eval_rows - start))
    xs.append(x.numpy())
    zs.append(z.to_dense().numpy() if z.is_sparse else z.numpy())
  x_eval, z_eval = np.concatenate(xs), np.concatenate(zs)
  x_train = np.empty((args.train_rows, args.d_in), np.float32)
  for start in range(0, args.train_rows, args.chunk):
    n = min(args.chunk, args.train_rows - start)
    x_train[start:start + n] = model.sample(n).numpy()
  sample_s = time.perf_counter() - t0
  os.makedirs(args.output_dir, exist_ok=True)
  arrays = {"train": x_train, "eval": x_eval, "eval_z": z_eval,
            "dictionary": model.feature_dict.feature_vectors.detach().numpy(),
            "bias": model.feature_dict.bias.detach().numpy()}
  for name, a in arrays.items():
    np.save(os.path.join(args.output_dir, f"{name}.npy"), np.ascontiguousarray(a, np.float32))
  save_tree(model, args)
  in_trees = 0 if model.hierarchy is None else len(model.hierarchy.feature_indices_used)
  fired = (z_eval > 0)
  import sae_lens  # pylint: disable=g-import-not-at-top
  return {"true_l0": float(fired.sum(1).mean()), "roots": roots, "hierarchy_features": in_trees,
          "features_never_fired_in_eval": int((~fired.any(0)).sum()),
          "build_s": build_s, "sample_s": sample_s, "train_sha256": rows_sha256(x_train),
          "eval_sha256": rows_sha256(x_eval), "synthetic_model_config": config.to_dict(),
          "saelens_version": sae_lens.__version__, "torch_version": torch.__version__}


def sae_config(arch: str, args, d_in: int):
  """SynthSAEBench's SAE config of `arch` (its experiments' `get_*_config`) at this size."""
  import sae_lens  # pylint: disable=g-import-not-at-top

  common = {"d_in": d_in, "d_sae": args.d_sae, "dtype": "float32", "device": "cpu"}
  if arch == "topk":
    return sae_lens.TopKTrainingSAEConfig(k=args.k, **common)
  if arch == "batchtopk":
    return sae_lens.BatchTopKTrainingSAEConfig(k=args.k, **common)
  if arch == "matryoshka":
    widths = [int(w) for w in args.matryoshka_widths.split(",") if w.strip()]
    return sae_lens.MatryoshkaBatchTopKTrainingSAEConfig(
        k=args.k, matryoshka_widths=[w for w in widths if w < args.d_sae] + [args.d_sae],
        use_matryoshka_aux_loss=True, **common)
  if arch == "mp":
    return sae_lens.MatchingPursuitTrainingSAEConfig(
        residual_threshold=0, max_iterations=args.k, decoder_init_norm=1.0,
        stop_on_duplicate_support=False, **common)
  raise ValueError(f"unknown architecture {arch!r}; use one of {ARCHS}")


def batches(x, batch: int, seed: int):
  """Rows of x in a seeded random order, reshuffled each epoch, `batch` at a time."""
  import torch  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(seed)
  order = np.empty(0, np.int64)
  while True:
    if len(order) < batch:
      order = np.concatenate([order, rng.permutation(len(x))])
    idx, order = order[:batch], order[batch:]
    yield x[torch.from_numpy(idx)]


def train(args) -> dict:
  import torch  # pylint: disable=g-import-not-at-top
  import sae_lens  # pylint: disable=g-import-not-at-top
  from sae_lens import SAE  # pylint: disable=g-import-not-at-top
  from sae_lens.config import LoggingConfig, SAETrainerConfig  # pylint: disable=g-import-not-at-top
  from sae_lens.registry import get_sae_training_class  # pylint: disable=g-import-not-at-top
  from sae_lens.synthetic import (  # pylint: disable=g-import-not-at-top
      compute_classification_metrics, mean_correlation_coefficient)
  from sae_lens.training.sae_trainer import SAETrainer  # pylint: disable=g-import-not-at-top

  torch.set_num_threads(args.threads)
  train_np = np.load(args.train)
  x = torch.from_numpy(np.ascontiguousarray(train_np, np.float32))
  x_eval = torch.from_numpy(np.load(args.eval).astype(np.float32))
  z_eval = torch.from_numpy(np.load(args.eval_z)) if args.eval_z else None
  gt = torch.from_numpy(np.load(args.dictionary)) if args.dictionary else None
  os.makedirs(args.output_dir, exist_ok=True)
  out = {"train_sha256": rows_sha256(train_np), "saelens_version": sae_lens.__version__,
         "torch_version": torch.__version__, "threads": torch.get_num_threads(), "archs": {}}
  for arch in [a for a in args.archs.split(",") if a]:
    torch.manual_seed(args.seed)
    cfg = sae_config(arch, args, x.shape[1])
    sae = get_sae_training_class(cfg.architecture())[0](cfg)
    trainer = SAETrainer(
        SAETrainerConfig(total_training_samples=args.steps * args.batch,
                         train_batch_size_samples=args.batch, lr=args.lr, lr_end=0.0,
                         lr_warm_up_steps=args.warmup, lr_decay_steps=args.decay,
                         adam_beta1=0.9, adam_beta2=0.999, device="cpu", autocast=False,
                         logger=LoggingConfig(log_to_wandb=False)),
        sae, data_provider=batches(x, args.batch, args.seed))
    t0 = time.perf_counter()
    sae = trainer.fit()
    seconds = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
      sae.save_inference_model(tmp)
      inference = SAE.load_from_disk(tmp, device="cpu")
      inference.eval()
      codes = inference.encode(x_eval)
      recon = inference.decode(codes)
      decoder = inference.W_dec.detach().clone()
    row = {"seconds": seconds, "tokens_per_s": args.steps * args.batch / seconds,
           "architecture": cfg.architecture(),
           "inference_architecture": inference.cfg.architecture()}
    if z_eval is not None and gt is not None:
      cm = compute_classification_metrics(codes, z_eval, decoder, gt)
      row.update(saelens_mcc_decoder=mean_correlation_coefficient(decoder, gt),
                 saelens_f1=cm.f1_score, saelens_precision=cm.precision,
                 saelens_recall=cm.recall)
    np.savez(os.path.join(args.output_dir, f"{arch}.npz"), codes=codes.numpy(),
             reconstruction=recon.numpy(), decoder=decoder.numpy())
    out["archs"][arch] = row
  return out


def main(argv=None) -> None:
  args = parse_args(argv)
  result = {"generate": generate, "tree": tree, "train": train}[args.command](args)
  print(json.dumps(result))


if __name__ == "__main__":
  main()
