"""SAELens's TopK and identi's TopK on identical activations of a real model, in one run.

`python -m benchmarks.real_peer [--layer=block_3] [--workdir=runs/real_peer] [--smoke]`

1. Captures (or reuses) the activations of configs/minilm_wordnet.py (all-MiniLM-L6-v2 at the
   lemma's token of WordNet-labelled sentences) in `--workdir`: every layer of the config, so that
   the workdir also serves the subject's pipeline (`--layer` is added when the config lacks it).
2. Takes one layer's training rows (the subject's 'train' rows: every row but the report rows).
   identi's trainer holds `data.num_eval` of them out for its own evaluation; both SAEs train on
   the rest, on the same batches in the same order (the batches identi's trainer draws, handed to
   the peer), with the subject's width (d_sae = sae_width x (lemmas + categories + tops)), k
   (ceil(k_factor x 3)), batch, steps, learning rate, warm-up and decay to 0:
   - identi's TopK with identi's trainer (`identi.train.train_and_evaluate` in a fresh workdir,
     the run `identi.bin.train` does, checkpoints and final evaluation included), once per
     `--decoders` mode: 'auto' is what the subject trains, 'sparse' forces the k-sparse decoder
     and encoder gradient (exact up to float rounding);
   - SAELens's `TopKTrainingSAE` with SAELens's `SAETrainer` in the peer venv
     (`benchmarks/peers/saelens_train.py`, torch on `--threads` threads). SAELens's loss is the
     squared error summed over features (identi: averaged, in scaled units) with AuxK coefficient
     1 and a dead window of 1,000 steps (identi: 1/32, normalised, 1M tokens), its defaults; its
     input is scaled to E||x|| = sqrt(d_in) ('expected_average_only_in', identi's convention).
     Its warm-up starts at lr / warmup instead of 0 and its decay reaches lr / decay at the last
     step instead of 0 (SAELens's scheduler); batch and learning rate need no conversion.
   Wall time is the training only, measured here for both, one after the other on this machine:
   identi's whole `train_and_evaluate` call (compilation, checkpoints and its final evaluation
   included); SAELens's norm estimate and step loop (the peer reports it; starting torch and
   building the SAE are not counted). The load average before and after is recorded: another job
   on the cores slows torch's threads far more than XLA's.
3. Encodes every row with each trained SAE (SAELens's from its exported weights; a sample of rows
   is checked against SAELens's own `encode`) and scores both on the report rows as the subject's
   table does (`MiniLMWordNet.level_units`): FVU, L0, the fraction of units that never fire on the
   training rows, and MCC against lemmas, categories and top categories (matchings fitted on the
   fit rows), next to the shuffled-code floor (codes with their rows permuted) and the ridge-probe
   ceiling. Nothing is tuned on the report rows.

Prints the table and the project's bar (identi's FVU at most SAELens's at equal L0, at >= 2x its
tokens/s); writes `<workdir>/real_peer.json`, and `paper/figures/real_peer/real_peer.json` (the
table of docs/experiments/minilm_wordnet.md) when not --smoke.
"""

from __future__ import annotations

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
from identi.errors import ConfigError, DataError
from identi.experiments import capture as capture_lib
from identi.experiments.saes import sae_config
from identi.metrics import fvu
from identi.subjects.base import load_subject_for
from identi.subjects.minilm_wordnet import LEVEL_NAMES
from identi.train import build_model, load_config, load_trained, train_and_evaluate

_LAYER = flags.DEFINE_string("layer", "block_3", "The layer whose activations both SAEs read.")
_WORKDIR = flags.DEFINE_string("workdir", os.path.join("runs", "real_peer"), "Work directory.")
_SMOKE = flags.DEFINE_bool("smoke", False, "Toy size (the tests); writes no committed JSON.")
_DECODERS = flags.DEFINE_list("decoders", ["auto", "sparse"],
                              "identi TopK decoder modes to train (auto, dense, sparse).")
_THREADS = flags.DEFINE_integer("threads", 2, "torch threads of the SAELens run.")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "minilm_wordnet.py")
PEER_SCRIPT = os.path.join(ROOT, "benchmarks", "peers", "saelens_train.py")
OUTPUT = os.path.join(ROOT, "paper", "figures", "real_peer", "real_peer.json")
RESULT_FILE = "real_peer.json"
LAYERS = ("embed",) + tuple(f"block_{i}" for i in range(6))
#: Per SAE: the columns of the table and of every row of the JSON.
COLUMNS = (["sae", "fvu", "l0", "dead_fraction"]
           + [f"mcc_{n}{s}" for n in LEVEL_NAMES for s in ("", "_random", "_probe")]
           + ["seconds", "tokens_per_s"])
#: Report rows whose codes are checked against SAELens's own encode.
CHECK_ROWS = 256
#: The project's bar: identi's tokens/s at least this multiple of SAELens's.
SPEEDUP_BAR = 2.0


def topk_codes(x: np.ndarray, weights) -> np.ndarray:
  """SAELens TopK codes of raw rows `x` from the weights `saelens_train.py` exports."""
  pre = (x - weights["b_dec"] * bool(weights["apply_b_dec_to_input"])) @ weights["W_enc"]
  pre += weights["b_enc"]
  k = int(weights["k"])
  idx = np.argpartition(-pre, k - 1, axis=1)[:, :k]
  codes = np.zeros_like(pre)
  np.put_along_axis(codes, idx, np.maximum(np.take_along_axis(pre, idx, axis=1), 0.0), axis=1)
  return codes


def check_codes(ours: np.ndarray, theirs: np.ndarray) -> None:
  """RuntimeError unless codes built from the exported weights are SAELens's own: the same
  support in at least 99% of rows (float rounding may swap a near-tie) and close values there."""
  same = ((ours > 0) == (theirs > 0)).all(axis=1)
  scale = np.abs(theirs).max()
  if same.mean() < 0.99 or not np.allclose(ours[same], theirs[same], atol=1e-4 * scale,
                                           rtol=1e-4):
    raise RuntimeError(
        f"codes from SAELens's exported weights differ from its encode (same support in "
        f"{same.mean():.1%} of rows); benchmarks/peers/saelens_train.py and topk_codes in "
        "benchmarks/real_peer.py must agree on the installed sae-lens's TopK encoder")


def scores(subject, labels, rows, z, x, codes, recon, dead, seed: int) -> dict:
  """FVU, L0 and MCC per level (with the floors) on the report rows, as the subject scores its
  SAEs; the shuffled codes are permuted by a generator seeded with `seed`."""
  report = rows["report"]
  shuffled = codes[np.random.default_rng(seed).permutation(len(codes))]
  levels = subject.level_units(x, codes, shuffled, z, subject.level_columns(labels, rows), labels)
  out = {"fvu": float(fvu(x[report], recon[report])),
         "l0": float((codes[report] > 0).sum(1).mean()), "dead_fraction": float(dead.mean())}
  for name, u in zip(LEVEL_NAMES, levels):
    out[f"mcc_{name}"] = float(u["sae"][1].mcc)
    out[f"mcc_{name}_random"] = float(u["random"][1].mcc)
    out[f"mcc_{name}_probe"] = float(u["probe_mcc"])
  return out


def decoder_modes(tc, d_in: int, decoders) -> dict[str, str]:
  """{resolved mode ('dense' or 'sparse'): requested mode}, each resolved mode once."""
  out = {}
  for mode in decoders:
    c = tc.copy_and_resolve_references()
    c.sae.decoder = mode
    resolved = "sparse" if build_model(c, d_in).sparse_decoder else "dense"
    out.setdefault(resolved, mode)
  return out


def train_identi(tc, mode: str, workdir: str, source) -> tuple[float, object, object]:
  """(seconds, model, variables) of identi's TopK trained with decoder `mode` in a fresh
  `workdir` (a left-over run is removed, so that the time is a whole run)."""
  c = tc.copy_and_resolve_references()
  c.sae.decoder = mode
  shutil.rmtree(workdir, ignore_errors=True)
  start = time.perf_counter()
  train_and_evaluate(c, workdir, source=source)
  seconds = time.perf_counter() - start
  _, model, variables = load_trained(workdir)
  return seconds, model, variables


def train_saelens(python: str, x_train: np.ndarray, order: np.ndarray, x_check: np.ndarray, tc,
                  threads: int) -> tuple[dict, dict]:
  """(the peer's JSON line, the exported weights) of SAELens's TopK trained on `x_train` in the
  batches `order`."""
  t = tc.train
  warmup = min(t.warmup_steps, t.num_steps)
  decay = min(int(round(t.decay_fraction * t.num_steps)), t.num_steps - warmup)
  with tempfile.TemporaryDirectory() as tmp:
    paths = {n: os.path.join(tmp, n) for n in ("train.npy", "order.npy", "check.npy", "out.npz")}
    np.save(paths["train.npy"], np.ascontiguousarray(x_train, np.float32))
    np.save(paths["order.npy"], order.astype(np.int32))
    np.save(paths["check.npy"], np.ascontiguousarray(x_check, np.float32))
    info = saelens_env.run_json([
        python, PEER_SCRIPT, f"--train={paths['train.npy']}", f"--order={paths['order.npy']}",
        f"--encode={paths['check.npy']}", f"--output={paths['out.npz']}",
        f"--d_sae={tc.sae.d_sae}", f"--k={tc.sae.k}", f"--steps={t.num_steps}",
        f"--batch={t.batch_size}", f"--lr={t.learning_rate!r}", f"--warmup={warmup}",
        f"--decay={decay}", f"--seed={t.seed}", f"--threads={threads}"])
    with np.load(paths["out.npz"]) as f:
      weights = {k: f[k] for k in f.files}
  return info, weights


def bar(rows: list[dict]) -> list[dict]:
  """Each identi row against the SAELens row: FVU ratio, speed-up, and whether it meets the
  project's bar (FVU at most SAELens's at equal L0, >= SPEEDUP_BAR x its tokens/s)."""
  peer = next((r for r in rows if r["sae"].startswith("SAELens")), None)
  if peer is None:
    return []
  out = []
  for r in rows:
    if r is peer:
      continue
    speedup = r["tokens_per_s"] / peer["tokens_per_s"]
    out.append({"sae": r["sae"], "fvu_ratio": r["fvu"] / peer["fvu"], "speedup": speedup,
                "l0": r["l0"], "saelens_l0": peer["l0"],
                "meets_bar": bool(r["fvu"] <= peer["fvu"] and r["l0"] <= peer["l0"] + 0.05
                                  and speedup >= SPEEDUP_BAR)})
  return out


def run(layer: str, workdir: str, smoke: bool, peer_python: str | None,
        decoders=("auto", "sparse"), threads: int = 2) -> dict:
  """Both SAEs on `layer`'s training rows, scored on the report rows; SAELens only when
  `peer_python` (the peer venv's python) is given. Writes `<workdir>/real_peer.json`."""
  if layer not in LAYERS:
    raise ConfigError(f"--layer={layer!r} is not a layer of all-MiniLM-L6-v2; use one of "
                     f"{', '.join(LAYERS)}")
  config = load_config(CONFIG + (":smoke" if smoke else ""))
  if layer not in config.capture.layers:
    config.capture.layers = tuple(l for l in LAYERS if l in config.capture.layers or l == layer)
  subject = load_subject_for(config)
  subject.run_capture(workdir)
  layer_dir = os.path.join(capture_lib.capture_dir(workdir), layer)
  if not os.path.isdir(layer_dir):
    raise DataError(f"the capture in {workdir} has no layer {layer!r} ({layer_dir} is missing); "
                    "choose a captured layer or a fresh --workdir")
  labels = subject.labels(workdir)
  rows = subject.row_sets(labels)
  source = data_lib.open_source(layer_dir)
  x = np.asarray(source.get(np.arange(source.num_examples)), np.float32)
  z = subject.latents(labels["lemma"])
  tc = sae_config(config, sum(subject.level_sizes), 3.0)
  t = tc.train
  # The rows identi's trainer trains on (it holds data.num_eval of the source out) and its batches.
  train_source = data_lib.Subset(source, rows["train"])
  fit_source, _ = data_lib.train_eval_split(train_source, tc.data.num_eval, tc.data.split_seed)
  fit_rows = rows["train"][fit_source.indices]
  order = np.stack([data_lib.batch_indices(len(fit_rows), t.batch_size, s, t.seed)
                    for s in range(t.num_steps)])
  settings = {"layer": layer, "d_in": int(x.shape[1]), "d_sae": int(tc.sae.d_sae),
              "k": int(tc.sae.k), "steps": int(t.num_steps), "batch": int(t.batch_size),
              "lr": float(t.learning_rate), "warmup_steps": int(t.warmup_steps),
              "decay_fraction": float(t.decay_fraction), "train_rows": int(len(fit_rows)),
              "report_rows": int(len(rows["report"])), "tokens": int(t.num_steps * t.batch_size),
              "cpus": os.cpu_count(), "load_average_before": round(os.getloadavg()[0], 2)}
  dead_rows = rows["train"]
  results = []
  for resolved, mode in decoder_modes(tc, x.shape[1], decoders).items():
    wd = os.path.join(workdir, f"identi_topk_{layer}_{resolved}")
    seconds, model, variables = train_identi(tc, mode, wd, train_source)
    codes = np.asarray(model.apply(variables, x, method="encode"))
    recon = np.asarray(model.apply(variables, codes, method="decode"))
    dead = ~(codes[dead_rows] > 0).any(0)
    results.append({"sae": f"identi TopK ({resolved} decoder)", "seconds": seconds,
                    "tokens_per_s": settings["tokens"] / seconds,
                    **scores(subject, labels, rows, z, x, codes, recon, dead,
                             config.data.split_seed)})
  if peer_python is not None:
    check = rows["report"][:CHECK_ROWS]
    info, weights = train_saelens(peer_python, x[fit_rows], order, x[check], tc, threads)
    codes = topk_codes(x, weights)
    check_codes(codes[check], weights["codes"])
    recon = codes @ weights["W_dec"] + weights["b_dec"]
    dead = ~(codes[dead_rows] > 0).any(0)
    results.append({"sae": f"SAELens TopK ({info['saelens_version']})", "seconds": info["seconds"],
                    "tokens_per_s": info["tokens_per_s"],
                    **scores(subject, labels, rows, z, x, codes, recon, dead,
                             config.data.split_seed)})
    settings.update(torch_threads=info["threads"], torch_version=info["torch_version"],
                    saelens_norm_scaling_factor=float(weights["norm_scaling_factor"]))
  settings["load_average_after"] = round(os.getloadavg()[0], 2)
  result = {"settings": settings, "rows": results, "bar": bar(results)}
  io.write_json(os.path.join(workdir, RESULT_FILE), result)
  return result


def main(argv):
  del argv
  python = saelens_env.ensure_env(ROOT)
  result = run(_LAYER.value, _WORKDIR.value, _SMOKE.value, python, tuple(_DECODERS.value),
               _THREADS.value)
  if not _SMOKE.value:
    io.write_json(OUTPUT, result)
  verdicts = [f"{b['sae']}: FVU {b['fvu_ratio']:.3f}x SAELens's at L0 {b['l0']:.2f} / "
              f"{b['saelens_l0']:.2f}, {b['speedup']:.2f}x its tokens/s -> "
              f"{'meets' if b['meets_bar'] else 'misses'} the bar (FVU <= SAELens's, >= "
              f"{SPEEDUP_BAR:g}x tokens/s)" for b in result["bar"]]
  written = os.path.join(_WORKDIR.value, RESULT_FILE) + ("" if _SMOKE.value else f", {OUTPUT}")
  cli.print_tables([(result["rows"], COLUMNS)],
                   "\n".join([f"settings: {result['settings']}", *verdicts,
                              f"results: {written}"]))


if __name__ == "__main__":
  cli.run(main)
