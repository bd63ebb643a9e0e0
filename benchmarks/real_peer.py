"""SAELens's TopK and identi's TopK on identical activations of a real model, in one run.

`python -m benchmarks.real_peer [--layer=block_3] [--workdir=runs/real_peer] [--repeats=3] [--smoke]`

1. Captures (or reuses) the activations of configs/minilm_wordnet.py (all-MiniLM-L6-v2 at the
   lemma's token of WordNet-labelled sentences) in `--workdir`.
2. Takes one layer's training rows (the subject's 'train' rows: every row but the report rows)
   and trains, with the same width (d_sae = lemmas + categories + tops), k, batch, number of
   steps, learning rate, warm-up and decay: identi's TopK with identi's trainer
   (`identi.train.train_and_evaluate`, the run `identi.bin.train` does, checkpoints included), and
   SAELens's `TopKTrainingSAE` with SAELens's `SAETrainer.step` in the peer venv
   (`benchmarks/peers/saelens_train.py`). Wall time is the training only, both on this machine in
   this run (identi's includes its start-up, compilation, checkpoint writes and evaluation); each
   side trains `--repeats` times, alternating, and the table reports the median time.
3. Scores both on the report rows exactly as the subject's table does: FVU, L0, latents that never
   fire on the training rows, and MCC against lemmas, categories and top categories (matchings
   fitted on fit rows), next to the shuffled-code floor and the ridge-probe ceiling.

Writes `paper/figures/real_peer/real_peer.json` (not with --smoke), the table of
docs/experiments/minilm_wordnet.md.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time

import numpy as np
from absl import flags

from benchmarks.peers import saelens_env
from identi import data as data_lib
from identi import io
from identi.bin import cli
from identi.experiments import capture as capture_lib
from identi.experiments.saes import sae_config
from identi.metrics import fvu
from identi.subjects.base import load_subject_for
from identi.subjects.minilm_wordnet import LEVEL_NAMES
from identi.train import load_config, load_trained, train_and_evaluate

_LAYER = flags.DEFINE_string("layer", "block_3", "The layer whose activations both SAEs read.")
_WORKDIR = flags.DEFINE_string("workdir", os.path.join("runs", "real_peer"), "Work directory.")
_REPEATS = flags.DEFINE_integer(
    "repeats", 3, "Training runs per side, alternating; the table reports the median time.")
_SMOKE = flags.DEFINE_bool("smoke", False, "Toy size (the tests); writes no committed JSON.")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_SCRIPT = os.path.join(ROOT, "benchmarks", "peers", "saelens_train.py")
OUTPUT = os.path.join(ROOT, "paper", "figures", "real_peer", "real_peer.json")


def scores(subject, labels, rows, z, x, codes, recon, dead, rng) -> dict:
  """FVU, L0, dead fraction and MCC per level (with the floors) of codes of every row."""
  report = rows["report"]
  shuffled = codes[rng.permutation(len(codes))]
  levels = subject.level_units(x, codes, shuffled, z, subject.level_columns(labels, rows), labels)
  out = {"fvu": float(fvu(x[report], recon[report])), "l0": float((codes[report] > 0).sum(1).mean()),
         "dead_fraction": float(dead.mean())}
  for name, u in zip(LEVEL_NAMES, levels):
    out[f"mcc_{name}"] = float(u["sae"][1].mcc)
    out[f"mcc_{name}_random"] = float(u["random"][1].mcc)
    out[f"mcc_{name}_probe"] = u["probe_mcc"]
  return out


def run(layer: str, workdir: str, smoke: bool, repeats: int) -> dict:
  """Both SAEs on `layer`'s training rows, scored on the report rows."""
  config = load_config(os.path.join(ROOT, "configs", "minilm_wordnet.py" + (":smoke" * smoke)))
  if layer not in config.capture.layers:
    layer = config.capture.layers[-1]
  subject = load_subject_for(config)
  subject.run_capture(workdir)
  labels = subject.labels(workdir)
  rows = subject.row_sets(labels)
  source = data_lib.open_source(os.path.join(capture_lib.capture_dir(workdir), layer))
  x = source.get(np.arange(source.num_examples))
  z = subject.latents(labels["lemma"])
  tc = sae_config(config, sum(subject.level_sizes), 3.0)
  # identi's sparse TopK path (k of d_sae rows gathered, forward and backward); 'auto' picks it
  # only from 4,096 latents, but at k = 12 of 680 it is already the faster one on CPU.
  tc.sae.decoder = "sparse"
  t = tc.train
  settings = {"layer": layer, "d_in": int(x.shape[1]), "d_sae": int(tc.sae.d_sae),
              "identi_decoder": tc.sae.decoder,
              "k": int(tc.sae.k), "steps": int(t.num_steps), "batch": int(t.batch_size),
              "lr": float(t.learning_rate), "train_rows": int(len(rows["train"])),
              "report_rows": int(len(rows["report"])),
              "tokens": int(t.num_steps * t.batch_size)}
  results = []
  python = saelens_env.ensure_env(ROOT)
  wd = os.path.join(workdir, f"identi_topk_{layer}")
  identi_seconds, peer_seconds = [], []
  with tempfile.TemporaryDirectory() as tmp:
    train, every, out = (os.path.join(tmp, n) for n in ("train.npy", "all.npy", "out.npz"))
    np.save(train, x[rows["train"]])
    np.save(every, x)
    for _ in range(repeats):  # Alternating, so that both sides see the same machine.
      # identi: its trainer on the training rows (fresh workdir, so the time is a full run).
      if os.path.exists(wd):
        shutil.rmtree(wd)
      start = time.perf_counter()
      train_and_evaluate(tc, wd, source=data_lib.Subset(source, rows["train"]))
      identi_seconds.append(time.perf_counter() - start)
      # SAELens: its trainer in the peer venv, on the same rows with the same schedule.
      info = saelens_env.run_json([
          python, PEER_SCRIPT, f"--train={train}", f"--eval={every}", f"--output={out}",
          f"--d_sae={settings['d_sae']}", f"--k={settings['k']}", f"--steps={t.num_steps}",
          f"--batch={t.batch_size}", f"--lr={t.learning_rate!r}", f"--warmup={t.warmup_steps}",
          f"--decay={math.floor(t.decay_fraction * t.num_steps)}", "--threads=2"])
      peer_seconds.append(info["seconds"])
    with np.load(out) as f:
      peer_codes, peer_recon, peer_dead = f["codes"], f["reconstruction"], f["dead"]
  seconds = float(np.median(identi_seconds))
  _, model, variables = load_trained(wd)
  codes = np.asarray(model.apply(variables, x, method="encode"))
  recon = np.asarray(model.apply(variables, codes, method="decode"))
  dead = ~(codes[rows["train"]] > 0).any(0)
  rng = np.random.default_rng(0)
  results.append({"sae": "identi TopK", "seconds": seconds,
                  "tokens_per_s": settings["tokens"] / seconds, "seconds_runs": identi_seconds,
                  **scores(subject, labels, rows, z, x, codes, recon, dead, rng)})
  rng = np.random.default_rng(0)
  seconds = float(np.median(peer_seconds))
  results.append({"sae": f"SAELens TopK ({info['saelens_version']})", "seconds": seconds,
                  "tokens_per_s": settings["tokens"] / seconds, "seconds_runs": peer_seconds,
                  **scores(subject, labels, rows, z, x, peer_codes, peer_recon, peer_dead, rng)})
  return {"settings": settings, "rows": results, "torch_threads": info["threads"]}


def main(argv):
  del argv
  result = run(_LAYER.value, _WORKDIR.value, _SMOKE.value, _REPEATS.value)
  if not _SMOKE.value:
    io.write_json(OUTPUT, result)
  columns = ["sae", "fvu", "l0", "dead_fraction"] + [
      f"mcc_{n}{s}" for n in LEVEL_NAMES for s in ("", "_random", "_probe")] + [
          "seconds", "tokens_per_s"]
  cli.print_tables([(result["rows"], columns)],
                   f"settings: {result['settings']}" + ("" if _SMOKE.value else
                                                        f"\nresults: {OUTPUT}"))


if __name__ == "__main__":
  cli.run(main)
