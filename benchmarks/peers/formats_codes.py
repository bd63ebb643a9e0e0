"""The ecosystem's own code on SAE files (run with the peer venv's python: torch, sae-lens,
eai-sparsify).

`--write_native`: SAEs written by the libraries themselves (SAELens's `save_model` for TopK, TopK
with decoder-norm rescaling, JumpReLU, JumpReLU without b_dec subtraction and Standard; sparsify's
`save_to_disk`; a Gemma Scope `params.npz` laid out as the release files are), with random
weights from a fixed seed, each beside `codes.npy`: that library's codes of `inputs.npy`.
Then, for every directory under `identi/` (SAEs that identi exported), the library loads it
(`SAE.load_from_disk`, `SparseCoder.load_from_disk`, or the Gemma Scope rule) and writes its
codes of `inputs.npy` to `peer_codes.npy`. Prints one JSON line: what it wrote.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

D_SAE = 48
K = 4


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--fixtures", required=True, help="Directory with inputs.npy.")
  p.add_argument("--write_native", action="store_true",
                 help="Also write the libraries' own SAE files (else only encode identi's).")
  return p.parse_args(argv)


def randomize(sae, gen, torch, *, threshold: bool = False, decoder_norms: bool = False) -> None:
  """Random weights with every term in play: a nonzero b_dec and b_enc, decoder rows of
  varying norm where asked, and thresholds in the pre-activations' range."""
  with torch.no_grad():
    d_in, d_sae = sae.W_enc.shape
    sae.W_enc.copy_(torch.randn(d_in, d_sae, generator=gen) / d_in ** 0.5)
    sae.b_enc.copy_(0.1 * torch.randn(d_sae, generator=gen))
    w_dec = torch.randn(d_sae, d_in, generator=gen)
    w_dec = w_dec / w_dec.norm(dim=-1, keepdim=True)
    if decoder_norms:
      w_dec = w_dec * (0.5 + torch.rand(d_sae, 1, generator=gen))
    sae.W_dec.copy_(w_dec)
    sae.b_dec.copy_(0.3 * torch.randn(d_in, generator=gen))
    if threshold:
      sae.threshold.copy_(0.2 + 0.6 * torch.rand(d_sae, generator=gen))


def gemmascope_codes(params: dict, x: np.ndarray, torch) -> np.ndarray:
  """Gemma Scope's JumpReLU rule, as its release notebook computes it."""
  t = {k: torch.from_numpy(v) for k, v in params.items()}
  pre = torch.from_numpy(x) @ t["W_enc"] + t["b_enc"]
  return ((pre > t["threshold"]) * torch.relu(pre)).numpy()


def write_native(root: str, x: np.ndarray, torch) -> list[str]:
  # pylint: disable=g-import-not-at-top
  from sae_lens.saes.jumprelu_sae import JumpReLUSAE, JumpReLUSAEConfig
  from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig
  from sae_lens.saes.topk_sae import TopKSAE, TopKSAEConfig
  from sparsify import SparseCoder, SparseCoderConfig

  d_in = x.shape[1]
  gen = torch.Generator().manual_seed(0)
  meta = {"model_name": "fixture-model", "hook_name": "blocks.3.hook_resid_post"}
  saelens = {
      "topk": (TopKSAE, TopKSAEConfig(d_in=d_in, d_sae=D_SAE, k=K), {}),
      "topk_rescale": (TopKSAE, TopKSAEConfig(d_in=d_in, d_sae=D_SAE, k=K,
                                              rescale_acts_by_decoder_norm=True),
                       {"decoder_norms": True}),
      "jumprelu": (JumpReLUSAE, JumpReLUSAEConfig(d_in=d_in, d_sae=D_SAE), {"threshold": True}),
      "jumprelu_no_bdec": (JumpReLUSAE, JumpReLUSAEConfig(d_in=d_in, d_sae=D_SAE,
                                                          apply_b_dec_to_input=False),
                           {"threshold": True}),
      "standard": (StandardSAE, StandardSAEConfig(d_in=d_in, d_sae=D_SAE), {}),
  }
  written = []
  for name, (cls, cfg, opts) in saelens.items():
    for key, value in meta.items():
      cfg.metadata[key] = value
    sae = cls(cfg)
    randomize(sae, gen, torch, **opts)
    out = os.path.join(root, "saelens", name)
    sae.save_model(out)
    with torch.no_grad():
      np.save(os.path.join(out, "codes.npy"), sae.encode(torch.from_numpy(x)).numpy())
    written.append(out)

  coder = SparseCoder(d_in, SparseCoderConfig(num_latents=D_SAE, k=K))
  with torch.no_grad():
    coder.encoder.weight.copy_(torch.randn(D_SAE, d_in, generator=gen) / d_in ** 0.5)
    coder.encoder.bias.copy_(0.1 * torch.randn(D_SAE, generator=gen))
    coder.b_dec.copy_(0.3 * torch.randn(d_in, generator=gen))
  out = os.path.join(root, "sparsify", "layers.3")
  coder.save_to_disk(out)
  np.save(os.path.join(out, "codes.npy"), sparsify_codes(coder, x, torch))
  written.append(out)

  written += write_trained(root, x, torch)

  rng = np.random.default_rng(0)
  params = {"W_enc": (rng.normal(size=(d_in, D_SAE)) / d_in ** 0.5).astype(np.float32),
            "W_dec": rng.normal(size=(D_SAE, d_in)).astype(np.float32),
            "b_enc": (0.1 * rng.normal(size=D_SAE)).astype(np.float32),
            "b_dec": (0.3 * rng.normal(size=d_in)).astype(np.float32),
            "threshold": rng.uniform(0.2, 0.8, size=D_SAE).astype(np.float32)}
  out = os.path.join(root, "gemmascope", "layer_3", "width_48", "average_l0_9")
  os.makedirs(out, exist_ok=True)
  np.savez(os.path.join(out, "params.npz"), **params)
  np.save(os.path.join(out, "codes.npy"), gemmascope_codes(params, x, torch))
  written.append(out)
  return written


def write_trained(root: str, x: np.ndarray, torch) -> list[str]:
  """TopK, BatchTopK and Matryoshka BatchTopK SAEs trained by SAELens's own `SAETrainer` (300
  steps on sparse combinations of a random dictionary), saved with `save_inference_model` (the
  BatchTopK kinds become JumpReLU) and encoded after `SAE.load_from_disk`."""
  # pylint: disable=g-import-not-at-top
  from sae_lens import (SAE, BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig,
                        MatryoshkaBatchTopKTrainingSAE, MatryoshkaBatchTopKTrainingSAEConfig,
                        TopKTrainingSAE, TopKTrainingSAEConfig)
  from sae_lens.config import SAETrainerConfig
  from sae_lens.training.sae_trainer import SAETrainer

  d_in, batch, steps = x.shape[1], 256, 300
  torch.manual_seed(0)
  dictionary = torch.randn(D_SAE, d_in)
  dictionary /= dictionary.norm(dim=-1, keepdim=True)

  def data(step):
    g = torch.Generator().manual_seed(step)
    z = (torch.rand(batch, D_SAE, generator=g) < K / D_SAE) * torch.rand(batch, D_SAE, generator=g)
    return 2.0 * z @ dictionary + 0.3

  kinds = {
      "topk_trained": (TopKTrainingSAE, TopKTrainingSAEConfig(d_in=d_in, d_sae=D_SAE, k=K)),
      "batchtopk_trained": (BatchTopKTrainingSAE,
                            BatchTopKTrainingSAEConfig(d_in=d_in, d_sae=D_SAE, k=K)),
      "matryoshka_trained": (MatryoshkaBatchTopKTrainingSAE, MatryoshkaBatchTopKTrainingSAEConfig(
          d_in=d_in, d_sae=D_SAE, k=K, matryoshka_widths=[12, 24, D_SAE])),
  }
  written = []
  for name, (cls, cfg) in kinds.items():
    sae = cls(cfg)
    trainer = SAETrainer(
        SAETrainerConfig(total_training_samples=steps * batch, train_batch_size_samples=batch,
                         lr=3e-3, lr_end=3e-4, adam_beta1=0.9, adam_beta2=0.999, device="cpu",
                         autocast=False), sae, data_provider=iter(()))
    for step in range(steps):
      trainer.step(data(step))
      trainer.n_training_steps += 1
    out = os.path.join(root, "saelens", name)
    sae.save_inference_model(out)
    loaded = SAE.load_from_disk(out)
    with torch.no_grad():
      np.save(os.path.join(out, "codes.npy"), loaded.encode(torch.from_numpy(x)).numpy())
    written.append(out)
  return written


def sparsify_codes(coder, x: np.ndarray, torch) -> np.ndarray:
  """sparsify's top-k output scattered into dense codes."""
  with torch.no_grad():
    out = coder.encode(torch.from_numpy(x))
    dense = torch.zeros(x.shape[0], coder.num_latents)
    dense.scatter_(1, out.top_indices, out.top_acts)
  return dense.numpy()


def encode_identi_exports(root: str, x: np.ndarray, torch) -> list[str]:
  from sae_lens import SAE  # pylint: disable=g-import-not-at-top
  from sparsify import SparseCoder  # pylint: disable=g-import-not-at-top

  done = []
  base = os.path.join(root, "identi")
  for name in sorted(os.listdir(base)):
    path = os.path.join(base, name)
    fmt = name.split("_", 1)[0]
    if fmt == "saelens":
      sae = SAE.load_from_disk(path)
      with torch.no_grad():
        codes = sae.encode(torch.from_numpy(x)).numpy()
    elif fmt == "sparsify":
      codes = sparsify_codes(SparseCoder.load_from_disk(path), x, torch)
    elif fmt == "gemmascope":
      with np.load(os.path.join(path, "params.npz")) as f:
        codes = gemmascope_codes({k: f[k] for k in f.files}, x, torch)
    else:
      continue
    np.save(os.path.join(path, "peer_codes.npy"), codes)
    done.append(path)
  return done


def main(argv=None) -> None:
  args = parse_args(argv)
  import torch  # pylint: disable=g-import-not-at-top

  torch.set_num_threads(1)
  x = np.load(os.path.join(args.fixtures, "inputs.npy"))
  native = write_native(args.fixtures, x, torch) if args.write_native else []
  exported = encode_identi_exports(args.fixtures, x, torch)
  import importlib.metadata as m  # pylint: disable=g-import-not-at-top
  print(json.dumps({"native": native, "identi_exports": exported,
                    "versions": {p: m.version(p) for p in ("torch", "sae-lens", "eai-sparsify")}}))


if __name__ == "__main__":
  main()
