"""all-MiniLM-L6-v2 as the transformers library runs it: the reference for identi's Flax port
(run with the peer venv's python: torch, transformers).

Loads the model directory (config.json, model.safetensors, tokenizer.json, ...) with
`AutoTokenizer` and `BertModel` (eval mode, float32, eager attention), tokenizes `SENTENCES`
padded and truncated to `MAX_LEN` tokens, and writes `--output` (.npz, float32):

  sentences       (B,)            the sentences
  input_ids       (B, T) int32    transformers' token ids
  attention_mask  (B, T) int32
  hidden          (L + 1, N, d)   every hidden state (embeddings, then each layer) at the N
                                  unpadded positions, in row-major (sentence, position) order
  embeddings      (B, d)          sentence-transformers' embedding: masked mean, L2-normalized

Prints one JSON line: the output path, the shapes and the library versions.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

#: Varied lengths (padding matters), punctuation, rare words, and one sentence longer than
#: MAX_LEN (truncation keeps [SEP]).
SENTENCES = (
    "Hi!",
    "The cat sat on the mat.",
    "Photosynthesis converts light into chemical energy.",
    "Is this the real life?",
    "A sesquipedalian lexicographer.",
    "Sparse autoencoders find features; do they find concepts?",
    "In 1969, Apollo 11 landed on the Moon, and Neil Armstrong -- the mission commander -- "
    "stepped onto the lunar surface while millions watched on television.",
    "ok",
)
MAX_LEN = 24


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--model_dir", required=True, help="The extracted model directory.")
  p.add_argument("--output", required=True, help="The .npz to write.")
  return p.parse_args(argv)


def main(argv=None) -> None:
  args = parse_args(argv)
  import torch  # pylint: disable=import-outside-toplevel
  import transformers  # pylint: disable=import-outside-toplevel

  torch.manual_seed(0)
  tokenizer = transformers.AutoTokenizer.from_pretrained(args.model_dir)
  model = transformers.BertModel.from_pretrained(args.model_dir, dtype=torch.float32,
                                                 attn_implementation="eager")
  model.eval()
  batch = tokenizer(list(SENTENCES), padding="max_length", truncation=True, max_length=MAX_LEN,
                    return_tensors="pt")
  with torch.no_grad():
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                token_type_ids=torch.zeros_like(batch["input_ids"]), output_hidden_states=True)
  mask = batch["attention_mask"].bool()
  hidden = torch.stack(out.hidden_states)  # (L + 1, B, T, d)
  m = mask.unsqueeze(-1).float()
  pooled = (out.last_hidden_state * m).sum(1) / m.sum(1).clamp(min=1e-9)
  embeddings = torch.nn.functional.normalize(pooled, p=2, dim=1)
  arrays = {
      "sentences": np.array(SENTENCES),
      "input_ids": batch["input_ids"].numpy().astype(np.int32),
      "attention_mask": batch["attention_mask"].numpy().astype(np.int32),
      "hidden": hidden[:, mask].numpy().astype(np.float32),
      "embeddings": embeddings.numpy().astype(np.float32),
  }
  np.savez_compressed(args.output, **arrays)
  print(json.dumps({"output": args.output, "shapes": {k: list(v.shape) for k, v in arrays.items()},
                    "torch": torch.__version__, "transformers": transformers.__version__}))


if __name__ == "__main__":
  main()
