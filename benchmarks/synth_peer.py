"""SynthSAEBench-style comparison in one run: SAELens's synthetic data, SAELens's SAEs and identi's.

`python -m benchmarks.synth_peer [--preset=quick] [--workdir=runs/synth_peer] [--methods=...]
[--model_seed=42]`

1. Data (peer venv, `benchmarks/peers/saelens_synth.py generate`): SAELens's `SyntheticModel`
   with SynthSAEBench-16k's recipe (hierarchy forest with mutually exclusive siblings, low-rank
   correlated firing, Zipfian firing probabilities, orthogonalised dictionary; the peer script's
   docstring lists every setting) at the preset's size, sampled once: fixed training rows, held-out
   evaluation rows with their true feature activations, and the true dictionary. Kept in
   `--workdir` and reused while the preset's settings are unchanged. `--model_seed` picks the
   SyntheticModel (its dictionary, hierarchy and firing probabilities): 42 is the benchmark world;
   other seeds are further worlds of the same recipe, each in its own data directory.
2. SAELens (peer venv, `saelens_synth.py train`): TopK, BatchTopK, Matryoshka BatchTopK and MP-SAE
   with SynthSAEBench's SAE configs, trained by SAELens's own `SAETrainer.fit` on the training
   rows; each encodes the evaluation rows as SAELens's inference model.
3. identi: `topk`, `batchtopk`, `matryoshka` and `mp` (and the identifiable recipe when
   configs/sae_identifiable.py exists), each from its configs/sae_*.py with the same width, k,
   batch, steps, learning rate, warm-up and decay, trained by `identi.train.train_and_evaluate`
   on an npy data source whose train split is exactly the training rows and whose eval split is
   exactly the evaluation rows (checked by sha256 against the rows SAELens trained on), and
   encoded with `identi.train.encode_file`, the function behind `identi.bin.encode`: the
   encoder's codes, or for the rows named "minimal codes" `--mode=minimal` (non-negative OMP
   over the SAE's own deduplicated decoder, warm-started from the encoder). The "true width"
   rows (SAELens's four architectures, identi's BatchTopK and recipe) have as many latents as
   true features, Matryoshka's prefixes at the preset's fractions of the width; identi's
   "refined" row refines that decoder by the method of optimal directions (`refined`).
4. The limit: non-negative OMP (`identi.infer.omp`) with the TRUE dictionary and bias; the
   hierarchy-aware limit, which also knows the TRUE tree (`path_codes`: OMP over root-to-feature
   paths, then non-negative least squares on the picked paths' features); and, as the floor, the
   same OMP with a random unit-norm dictionary.
5. Scores on the evaluation rows: activation MCC held out (`identi.metrics.mcc`: Pearson, matching
   fitted on the first half of the rows and scored on the second), averaged over the matched
   pairs and over all true features; SynthSAEBench's decoder-cosine MCC and per-latent
   precision / recall / F1 (`sae_lens.synthetic.evals`, re-implemented in numpy here and checked
   against SAELens's own functions on SAELens's SAEs); FVU; L0; dead latents (never active on the
   evaluation rows); training wall time. And, for each SAELens SAE, every method's activation MCC
   on the true features that SAE is matched to (`same_features`), so that an SAE narrower than the
   true dictionary is compared with the others on the features it picks.

Adding a method is one line in `METHODS`; an identi method whose config file is missing is skipped
with a note. Writes benchmarks/results/synth_peer.json when the quick preset runs every method
(elsewhere only with `--output`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags
from scipy.optimize import linear_sum_assignment

from benchmarks.peers import saelens_env
from identi import infer, io, metrics
from identi.infer import minimality
from identi.bin import cli
from identi.errors import ConfigError
from identi.train import build_sources, encode_file, load_config, load_trained, train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_SCRIPT = os.path.join(ROOT, "benchmarks", "peers", "saelens_synth.py")
OUTPUT = os.path.join(ROOT, "benchmarks", "results", "synth_peer.json")
#: identi's train/eval split seed; the evaluation rows are placed where this split puts its eval.
SPLIT_SEED = 0
#: SyntheticModelConfig.seed of the benchmark world (the peer script's default).
MODEL_SEED = 42

PRESETS = {
    # Seconds (the tests): 256 features in 32 dimensions.
    "smoke": {"num_features": 256, "d_in": 32, "train_rows": 8192, "eval_rows": 2048,
              "d_sae": 64, "k": 4, "matryoshka_widths": (2, 8, 32), "steps": 60, "batch": 256,
              "lr": 3e-3, "warmup": 10, "decay_fraction": 1 / 3},
    # 11 minutes on 2 CPU cores, the data included: SynthSAEBench-16k's recipe at 2,048
    # features in 128 dimensions, SAEs a quarter as wide as the true dictionary (4,096 of 16,384
    # in the benchmark), k about 3/4 of the true L0 (25 of about 34 there), Matryoshka prefixes
    # at the same fractions of the width (128, 512, 2,048 of 4,096 there).
    "quick": {"num_features": 2048, "d_in": 128, "train_rows": 131072, "eval_rows": 16384,
              "d_sae": 512, "k": 8, "matryoshka_widths": (16, 64, 256), "steps": 2000,
              "batch": 1024, "lr": 3e-3, "warmup": 100, "decay_fraction": 1 / 3},
    # SynthSAEBench-16k's sizes and SAE settings (16,384 features in 768 dimensions, width 4,096,
    # L0 25, batch 1,024, lr 3e-4, final-third decay), on 2^21 fixed rows instead of a stream of
    # 200M fresh samples; 50M samples. Not run on this machine (the training rows alone are
    # 6.4 GB).
    "full": {"num_features": 16384, "d_in": 768, "train_rows": 2 ** 21, "eval_rows": 65536,
             "d_sae": 4096, "k": 25, "matryoshka_widths": (128, 512, 2048), "steps": 48828,
             "batch": 1024, "lr": 3e-4, "warmup": 0, "decay_fraction": 1 / 3},
}

#: SynthSAEBench-16k at L0 25 (width 4,096, 200M samples), as published: (decoder MCC, F1).
REFERENCE = {"Matryoshka BatchTopK": (0.793, 0.879), "BatchTopK": (0.757, 0.732),
             "MP-SAE": (0.693, 0.446)}


#: Dictionary refinement of the "refined" rows: rounds of the method of optimal directions, on at
#: most this many training rows (the first ones), with OMP codes of at most 2k atoms.
REFINE_ROUNDS = 8
REFINE_ROWS = 65536
#: The "pruned" row: `identi.infer.minimality.refined_dictionary` (REFINE_ROUNDS rounds with
#: duplicates replaced, the true width's most used atoms kept) with PRUNED_ROUNDS polish rounds.
PRUNED_ROUNDS = 4
#: The identifiable recipe's stage on the rows the "pruned" row refines on, with its rounds.
STAGE = {"minimality.num_samples": REFINE_ROWS, "minimality.refine_rounds": REFINE_ROUNDS,
         "minimality.polish_rounds": PRUNED_ROUNDS}
#: The same with the stage's refined dictionary only (no minimality tests first).
REFINED_STAGE = {"minimality.dictionary": "refined", **STAGE}
#: The groupings of the shared ancestors besides the stage's default with rows of their own
#: (`identi.infer.ancestors.GROUPINGS`): average linkage, and the modes of both.
GROUPING_ROWS = ("linkage", "union")
#: The union's groups read from the atoms' row profiles (`identi.infer.ancestors.row_profiles`).
PROFILES_STAGE = {**STAGE, "minimality.ancestor_grouping": "union",
                  "minimality.ancestor_input": "profiles"}
#: The same with each row's codes re-fitted on the units it uses and the atoms' own remainders
#: taken from the atoms (`identi.infer.ancestors.support_fit`).
FITTED_STAGE = {**PROFILES_STAGE, "minimality.ancestor_codes": "fitted"}
#: The same with nested atoms' supports and the units' directions fitted to them
#: (`identi.infer.ancestors.nested_supports`, `identi.infer.refine_on_supports`).
NESTED_STAGE = {**PROFILES_STAGE, "minimality.ancestor_codes": "nested"}
#: The same with floors on the units' codes: the directions fitted without each round's codes
#: below a quarter of their unit's typical code, the final codes without those below 0.15 of it
#: (`identi.infer.ancestors.code_floors`).
FLOORED_STAGE = {**NESTED_STAGE, "minimality.fit_floor": 0.25, "minimality.code_floor": 0.15}
#: The same with each atom's ancestors chosen by pursuit above chance rather than by cosine
#: (`identi.infer.ancestors.choose_ancestors`).
PURSUIT_STAGE = {**FLOORED_STAGE, "minimality.ancestor_selection": "pursuit"}
#: The same with each row's atom codes pruned to the atoms the row needs before the map reads them
#: (`identi.infer.minimality.prune_codes`).
PRUNED_CODES_STAGE = {**PURSUIT_STAGE, "minimality.prune_codes": True}
#: The same with each atom's pursuit continued on the atom after its profile's
#: (`identi.infer.ancestors.SELECTIONS`, 'remainder').
REMAINDER_STAGE = {**PRUNED_CODES_STAGE, "minimality.ancestor_selection": "remainder"}
#: The same with duplicate units merged and their directions fitted again
#: (`identi.infer.ancestors.merge_duplicates`).
MERGED_STAGE = {**REMAINDER_STAGE, "minimality.merge_units": True}


@dataclasses.dataclass(frozen=True)
class Method:
  """A row of the table: `side` 'saelens' (`name` an architecture of the peer script), 'identi'
  (`name` a configs/<name>.py, encoded with identi.bin.encode's `mode`) or 'omp' (`name`
  'true', 'random' or 'tree', the dictionary; see `run_omp`)."""
  key: str
  label: str
  side: str
  name: str
  mode: str = "encoder"
  #: "preset": the preset's d_sae; "true": as many latents as true features; "double": twice
  #: that (`latents`).
  width: str = "preset"
  #: identi only: after training, `identi.infer.refine_dictionary` rounds on the training rows;
  #: the codes are then non-negative OMP over the refined decoder (at most 2k atoms).
  refine_rounds: int = 0
  #: identi refined rows only: replace duplicates while refining, then keep the true width's most
  #: used atoms and refine them (`refined`).
  prune: bool = False
  #: identi only: config overrides {dotted key: value}, e.g. REFINED_STAGE; rows with the same
  #: config, width and overrides share one training.
  overrides: tuple = ()


METHODS = (
    Method("saelens_topk", "SAELens TopK", "saelens", "topk"),
    Method("saelens_batchtopk", "SAELens BatchTopK", "saelens", "batchtopk"),
    Method("saelens_matryoshka", "SAELens Matryoshka BatchTopK", "saelens", "matryoshka"),
    Method("saelens_mp", "SAELens MP-SAE", "saelens", "mp"),
    Method("saelens_topk_true_width", "SAELens TopK, true width", "saelens", "topk",
           width="true"),
    Method("saelens_batchtopk_true_width", "SAELens BatchTopK, true width", "saelens",
           "batchtopk", width="true"),
    Method("saelens_matryoshka_true_width", "SAELens Matryoshka BatchTopK, true width", "saelens",
           "matryoshka", width="true"),
    Method("saelens_mp_true_width", "SAELens MP-SAE, true width", "saelens", "mp", width="true"),
    Method("identi_topk", "identi TopK", "identi", "sae_topk"),
    Method("identi_batchtopk", "identi BatchTopK", "identi", "sae_batchtopk"),
    Method("identi_matryoshka", "identi Matryoshka BatchTopK", "identi", "sae_matryoshka"),
    Method("identi_mp", "identi MP-SAE", "identi", "sae_mp"),
    Method("identi_matryoshka_minimal", "identi Matryoshka BatchTopK, minimal codes", "identi",
           "sae_matryoshka", "minimal"),
    Method("identi_identifiable", "identi identifiable", "identi", "sae_identifiable"),
    Method("identi_identifiable_minimal", "identi identifiable, minimal codes", "identi",
           "sae_identifiable", "minimal"),
    Method("identi_batchtopk_true_width", "identi BatchTopK, true width", "identi",
           "sae_batchtopk", width="true"),
    Method("identi_batchtopk_true_width_refined", "identi BatchTopK, true width, refined (MOD)",
           "identi", "sae_batchtopk", width="true", refine_rounds=REFINE_ROUNDS),
    Method("identi_batchtopk_double_width_pruned",
           "identi BatchTopK, 2x true width, refined, pruned to the true width", "identi",
           "sae_batchtopk", width="double", refine_rounds=REFINE_ROUNDS, prune=True),
    Method("identi_identifiable_true_width", "identi identifiable, true width", "identi",
           "sae_identifiable", width="true", overrides=tuple(STAGE.items())),
    Method("identi_identifiable_true_width_minimal",
           "identi identifiable, true width, minimal codes", "identi", "sae_identifiable",
           "minimal", width="true", overrides=tuple(STAGE.items())),
    Method("identi_identifiable_refined", "identi identifiable, refined stage, true width",
           "identi", "sae_identifiable", width="true",
           overrides=tuple(REFINED_STAGE.items())),
    Method("identi_identifiable_refined_minimal",
           "identi identifiable, refined stage, true width, minimal codes", "identi",
           "sae_identifiable", "minimal", width="true", overrides=tuple(REFINED_STAGE.items())),
    *[Method(f"identi_identifiable_{grouping}{suffix}",
             f"identi identifiable, true width, {grouping} ancestors{label}", "identi",
             "sae_identifiable", mode, width="true",
             overrides=tuple({**STAGE, "minimality.ancestor_grouping": grouping}.items()))
      for grouping in GROUPING_ROWS
      for suffix, label, mode in (("", "", "encoder"), ("_minimal", ", minimal codes", "minimal"))],
    *[Method(f"identi_identifiable_union_profiles{suffix}",
             f"identi identifiable, true width, union ancestors of row profiles{label}", "identi",
             "sae_identifiable", mode, width="true", overrides=tuple(PROFILES_STAGE.items()))
      for suffix, label, mode in (("", "", "encoder"), ("_minimal", ", minimal codes", "minimal"))],
    *[Method(f"identi_identifiable_union_profiles_fitted{suffix}",
             "identi identifiable, true width, union ancestors of row profiles, fitted codes"
             f"{label}", "identi", "sae_identifiable", mode, width="true",
             overrides=tuple(FITTED_STAGE.items()))
      for suffix, label, mode in (("", "", "encoder"), ("_minimal", ", minimal codes", "minimal"))],
    *[Method(f"identi_identifiable_union_profiles_nested{suffix}",
             "identi identifiable, true width, union ancestors of row profiles, nested supports"
             f"{label}", "identi", "sae_identifiable", mode, width="true",
             overrides=tuple(NESTED_STAGE.items()))
      for suffix, label, mode in (("", "", "encoder"), ("_minimal", ", minimal codes", "minimal"))],
    *[Method(f"identi_identifiable_union_profiles_floored{suffix}",
             "identi identifiable, true width, union ancestors of row profiles, nested supports, "
             f"floored codes{label}", "identi", "sae_identifiable", mode, width="true",
             overrides=tuple(FLOORED_STAGE.items()))
      for suffix, label, mode in (("", "", "encoder"), ("_minimal", ", minimal codes", "minimal"))],
    *[Method(f"identi_identifiable_union_profiles_pursuit{suffix}",
             "identi identifiable, true width, union ancestors of row profiles chosen by pursuit, "
             f"nested supports, floored codes{label}", "identi", "sae_identifiable", mode,
             width="true", overrides=tuple(PURSUIT_STAGE.items()))
      for suffix, label, mode in (("", "", "encoder"), ("_minimal", ", minimal codes", "minimal"))],
    *[Method(f"identi_identifiable_union_profiles_pruned_codes{suffix}",
             "identi identifiable, true width, union ancestors of row profiles chosen by pursuit, "
             f"nested supports, floored codes, pruned atom codes{label}", "identi",
             "sae_identifiable", mode, width="true", overrides=tuple(PRUNED_CODES_STAGE.items()))
      for suffix, label, mode in (("", "", "encoder"), ("_minimal", ", minimal codes", "minimal"))],
    *[Method(f"identi_identifiable_union_profiles_remainder{suffix}",
             "identi identifiable, true width, union ancestors of row profiles chosen by pursuit "
             f"continued on the atoms, nested supports, floored codes, pruned atom codes{label}",
             "identi", "sae_identifiable", mode, width="true",
             overrides=tuple(REMAINDER_STAGE.items()))
      for suffix, label, mode in (("", "", "encoder"), ("_minimal", ", minimal codes", "minimal"))],
    *[Method(f"identi_identifiable_union_profiles_merged{suffix}",
             "identi identifiable, true width, union ancestors of row profiles chosen by pursuit "
             "continued on the atoms, nested supports, floored codes, pruned atom codes, duplicate "
             f"units merged{label}",
             "identi", "sae_identifiable", mode, width="true",
             overrides=tuple(MERGED_STAGE.items()))
      for suffix, label, mode in (("", "", "encoder"), ("_minimal", ", minimal codes", "minimal"))],
    Method("omp_true", "OMP, true dictionary (limit)", "omp", "true"),
    Method("omp_tree", "OMP over the true tree's paths, then NNLS (hierarchy-aware limit)", "omp",
           "tree"),
    Method("omp_random", "OMP, random dictionary (floor)", "omp", "random"),
)

_PRESET = flags.DEFINE_enum("preset", "quick", list(PRESETS), "Size (see PRESETS).")
_WORKDIR = flags.DEFINE_string("workdir", os.path.join("runs", "synth_peer"), "Work directory.")
_METHODS = flags.DEFINE_list("methods", [], f"Keys of the rows to run (default all): "
                             f"{', '.join(m.key for m in METHODS)}.")
_PEER_THREADS = flags.DEFINE_integer(
    "peer_threads", 1, "torch threads of the SAELens peer (on a shared 2-core machine torch's "
    "step was 3-7x slower on 2 threads than on 1).")
_OUTPUT = flags.DEFINE_string("output", "", "JSON output; default "
                              "benchmarks/results/synth_peer.json for the quick preset with every "
                              "method on the benchmark world, none else.")
_MODEL_SEED = flags.DEFINE_integer(
    "model_seed", MODEL_SEED, "SyntheticModelConfig.seed: 42 is the benchmark world, other seeds "
    "further worlds of the same recipe (data in WORKDIR/data_PRESET_seedN).", lower_bound=0)


def sha256_text(text: str) -> str:
  return hashlib.sha256(text.encode()).hexdigest()


def sha256(x: np.ndarray) -> str:
  """sha256 of float32 rows in C order (`saelens_synth.rows_sha256`)."""
  return hashlib.sha256(np.ascontiguousarray(x, np.float32).tobytes()).hexdigest()


# --- data ----------------------------------------------------------------------------------

def generate(python: str, preset: dict, data_dir: str, threads: int,
             model_seed: int = MODEL_SEED) -> dict:
  """The preset's rows and hierarchy from SAELens's SyntheticModel of seed `model_seed` in
  `data_dir` (reused if already there)."""
  args = {k: preset[k] for k in ("num_features", "d_in", "train_rows", "eval_rows")}
  args["model_seed"] = model_seed
  info_path = os.path.join(data_dir, "info.json")
  if os.path.exists(info_path):
    with open(info_path, encoding="utf-8") as f:
      info = json.load(f)
    if info.get("args") == args:
      if not os.path.exists(os.path.join(data_dir, "parent.npy")):  # Rows of an older run.
        tree = saelens_env.run_json(
            [python, PEER_SCRIPT, "tree", f"--output_dir={data_dir}", f"--threads={threads}"]
            + [f"--{k}={args[k]}" for k in ("num_features", "d_in", "model_seed")])
        if tree["dictionary_sha256"] != sha256(np.load(os.path.join(data_dir, "dictionary.npy"))):
          raise RuntimeError(f"SAELens's model of seed {model_seed} no longer has the dictionary "
                             f"in {data_dir}; delete the directory and rerun")
      return info
  info = saelens_env.run_json([python, PEER_SCRIPT, "generate", f"--output_dir={data_dir}",
                               f"--threads={threads}"] + [f"--{k}={v}" for k, v in args.items()])
  info["args"] = args
  io.write_json(info_path, info)
  return info


def identi_rows(data_dir: str, train: np.ndarray, evaluation: np.ndarray) -> str:
  """An .npy of train + evaluation rows ordered so that identi's train/eval split (seed
  SPLIT_SEED, len(evaluation) held out) gives exactly `train` and exactly `evaluation`."""
  path = os.path.join(data_dir, "identi_rows.npy")
  n, m = len(train) + len(evaluation), len(evaluation)
  perm = np.random.default_rng(SPLIT_SEED).permutation(n)
  with io.atomic_path(path) as tmp:
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                    shape=(n, train.shape[1]))
    out[np.sort(perm[m:])] = train
    out[np.sort(perm[:m])] = evaluation
    out.flush()
    del out
  return path


# --- scores --------------------------------------------------------------------------------

def cosines(decoder: np.ndarray, features: np.ndarray) -> np.ndarray:
  """|cos| of every latent's decoder row with every true feature (`sae_lens.util`'s clamp)."""
  a = decoder / np.maximum(np.linalg.norm(decoder, axis=1, keepdims=True), 1e-8)
  b = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-8)
  return np.abs(a.astype(np.float64) @ b.astype(np.float64).T)


def decoder_mcc(cos: np.ndarray) -> float:
  """SynthSAEBench's MCC (`mean_correlation_coefficient`): the mean |cos| of the one-to-one
  matching of latents to features that maximises it, over min(latents, features) pairs."""
  rows, cols = linear_sum_assignment(1.0 - cos)
  return float(cos[rows, cols].mean())


def classification(codes: np.ndarray, z: np.ndarray, cos: np.ndarray) -> dict:
  """SynthSAEBench's per-latent classification (`compute_classification_metrics`): each latent
  predicts the firing of its decoder's best-matching feature; means over all latents, a latent
  that never fires (or never should) scoring 0."""
  truth = z[:, cos.argmax(axis=1)] > 0
  fires = codes != 0
  tp = (fires & truth).sum(0).astype(np.float64)
  fp = (fires & ~truth).sum(0)
  fn = (~fires & truth).sum(0)
  precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
  recall = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 0.0)
  f1 = np.where(precision + recall > 0,
                2 * precision * recall / np.maximum(precision + recall, 1e-30), 0.0)
  return {"precision": float(precision.mean()), "recall": float(recall.mean()),
          "f1": float(f1.mean())}


def scores(x: np.ndarray, z: np.ndarray, features: np.ndarray, codes: np.ndarray,
           recon: np.ndarray, decoder: np.ndarray) -> tuple[dict, metrics.MCCResult]:
  """Every metric of one method on the evaluation rows (see the module docstring), and its
  activation MCC's per-feature result."""
  act = metrics.mcc(z, codes, fit_fraction=0.5)
  matched = act.matching >= 0
  cos = cosines(decoder, features)
  active = codes != 0
  return {"mcc": float(act.per_concept[matched].mean()), "mcc_all_features": act.mcc,
          "mcc_decoder": decoder_mcc(cos), **classification(codes, z, cos),
          "fvu": float(metrics.fvu(x, recon)), "l0": float(active.sum(1).mean()),
          "dead": int((~active.any(0)).sum()), "latents": int(codes.shape[1])}, act


def same_features(methods, acts: dict) -> list[dict]:
  """Every method's activation MCC over the true features each SAELens SAE is matched to: for
  each SAELens row, its matched MCC beside every row's mean per-feature MCC on those same
  features (an unmatched feature counting 0), so methods of different widths compare on one set
  of features."""
  out = []
  for a in methods:
    if a.side != "saelens":
      continue
    picked = acts[a.key].matching >= 0
    out.append({"features_of": a.key, "features": int(picked.sum()),
                "mcc": {m.key: float(acts[m.key].per_concept[picked].mean()) for m in methods}})
  return out


# --- the three sides -----------------------------------------------------------------------

def train_saelens(python: str, methods, preset: dict, data_dir: str, out_dir: str,
                  threads: int) -> tuple[dict, dict]:
  """SAELens's SAEs of `methods` (all of one width); returns (peer info, {key: (codes, recon,
  decoder)})."""
  p = preset
  width = latents(p, methods[0].width)
  f = lambda name: os.path.join(data_dir, f"{name}.npy")
  info = saelens_env.run_json([
      python, PEER_SCRIPT, "train", f"--train={f('train')}", f"--eval={f('eval')}",
      f"--eval_z={f('eval_z')}", f"--dictionary={f('dictionary')}", f"--output_dir={out_dir}",
      f"--archs={','.join(m.name for m in methods)}", f"--d_sae={width}", f"--k={p['k']}",
      f"--matryoshka_widths={','.join(map(str, matryoshka_widths(p, methods[0].width)))}",
      f"--steps={p['steps']}", f"--batch={p['batch']}", f"--lr={p['lr']!r}",
      f"--warmup={p['warmup']}", f"--decay={decay_steps(p)}", f"--threads={threads}"])
  out = {}
  for m in methods:
    with np.load(os.path.join(out_dir, f"{m.name}.npz")) as a:
      out[m.key] = (a["codes"], a["reconstruction"], a["decoder"])
  return info, out


def latents(preset: dict, width: str) -> int:
  """An SAE's width for a Method's `width`: the preset's d_sae, the number of true features, or
  twice that."""
  return {"true": preset["num_features"], "double": 2 * preset["num_features"]}.get(
      width, preset["d_sae"])


def matryoshka_widths(preset: dict, width: str) -> list[int]:
  """The Matryoshka inner widths of an SAE of `width`: the preset's, at the same fractions of the
  SAE's width (16, 64, 256 of 512 become 64, 256, 1,024 of 2,048)."""
  scale = latents(preset, width) // preset["d_sae"]
  return [w * scale for w in preset["matryoshka_widths"]]


def decay_steps(preset: dict) -> int:
  return math.floor(preset["decay_fraction"] * preset["steps"])


def identi_config(name: str, preset: dict, rows_path: str, width: str = "preset",
                  overrides: tuple = ()):
  """configs/<name>.py with the preset's width (or the true one), k, schedule and the npy rows,
  then `overrides` ((dotted key, value) pairs)."""
  p = preset
  config = load_config(os.path.join(ROOT, "configs", f"{name}.py"))
  config.sae.d_sae = latents(p, width)
  if "k" in config.sae:
    config.sae.k = p["k"]
  if config.sae.get("kind") == "matryoshka":
    config.sae.matryoshka_widths = ",".join(map(str, matryoshka_widths(p, width)))
  t = config.train
  t.num_steps, t.batch_size, t.learning_rate = p["steps"], p["batch"], p["lr"]
  t.warmup_steps, t.decay_fraction = p["warmup"], p["decay_fraction"]
  t.dead_window_tokens = 1000 * p["batch"]  # SAELens's dead_feature_window: 1,000 steps.
  t.log_every_steps = max(1, p["steps"] // 4)
  config.checkpoint.every_steps = p["steps"]
  config.data.source, config.data.path = "npy", rows_path
  config.data.num_eval, config.data.split_seed = p["eval_rows"], SPLIT_SEED
  config.update_from_flattened_dict(dict(overrides))
  return config


def train_identi(methods, preset: dict, data_dir: str, rows_path: str,
                 train_hash: str, eval_hash: str) -> tuple[dict, dict, dict]:
  """identi's SAEs of `methods` (one training per config); returns ({key: (codes, recon,
  decoder)}, {key: seconds}, {'identi': sha256 of the rows identi trained on}). Their workdirs and
  codes go in the world's `data_dir`, so a run of another world or preset keeps them."""
  out, seconds, trained, hashes = {}, {}, {}, {}
  for m in methods:
    run_key = (m.name, m.width, m.overrides)
    if run_key not in trained:
      config = identi_config(m.name, preset, rows_path, m.width, m.overrides)
      if not hashes:
        train_src, eval_src = build_sources(config)
        hashes = {"identi": sha256(train_src.get(np.arange(train_src.num_examples))),
                  "identi_eval": sha256(eval_src.get(np.arange(eval_src.num_examples)))}
        if (hashes["identi"], hashes["identi_eval"]) != (train_hash, eval_hash):
          raise RuntimeError("identi's train/eval split of the npy rows is not the generated "
                             "train/eval rows; identi.data.train_eval_split changed")
      wd = os.path.join(data_dir, f"identi_{m.name}" + ("" if m.width == "preset" else
                                                       f"_{m.width}_width")
                        + (f"_{sha256_text(repr(m.overrides))[:8]}" if m.overrides else ""))
      shutil.rmtree(wd, ignore_errors=True)
      start = time.perf_counter()
      train_and_evaluate(config, wd)
      trained[run_key] = (wd, time.perf_counter() - start)
    wd, seconds[m.key] = trained[run_key]
    if m.refine_rounds:
      start = time.perf_counter()
      train = np.load(os.path.join(data_dir, "train.npy"), mmap_mode="r")
      out[m.key] = refined(load_trained(wd)[2], train,
                           np.load(os.path.join(data_dir, "eval.npy")), preset["k"],
                           m.refine_rounds, preset["num_features"] if m.prune else None)
      seconds[m.key] += time.perf_counter() - start
      continue
    codes_path = os.path.join(data_dir, f"codes_{m.key}.npy")
    encode_file(wd, os.path.join(data_dir, "eval.npy"), codes_path, m.mode)
    codes = np.load(codes_path)
    _, model, variables = load_trained(wd)
    recon = np.asarray(jax.jit(lambda v, c: model.apply(v, c, method="decode"))(variables, codes))
    out[m.key] = (codes, recon, np.asarray(variables["params"]["W_dec"]))
  return out, seconds, hashes


def refined(variables, train: np.ndarray, x: np.ndarray, k: int, rounds: int,
            keep: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """A trained SAE's decoder (`variables` of a TopK-family SAE) refined by the method of optimal
  directions (`identi.infer.refine_dictionary`, OMP codes of at most 2k atoms, the SAE's b_dec
  fixed) on the first REFINE_ROWS rows of `train`; (codes, reconstruction, decoder) of the
  evaluation rows x, the codes by the same OMP over the refined decoder. With `keep`,
  `identi.infer.minimality.refined_dictionary`: the rounds also replace duplicates, then the
  `keep` most used atoms are polished for PRUNED_ROUNDS more rounds."""
  params = variables["params"]
  scale = float(variables["stats"]["input_scale"])
  b_dec = np.asarray(params["b_dec"], np.float32)
  decoder = np.asarray(params["W_dec"], np.float32)
  rows = np.asarray(train[:REFINE_ROWS], np.float32) * scale
  infer_fn = lambda xs, d: infer.omp(xs, d, max_atoms=2 * k)
  if keep:
    settings = minimality.MinimalitySettings(max_atoms=2 * k, tol=1e-4,
                                             polish_rounds=PRUNED_ROUNDS)
    decoder, _ = minimality.refined_dictionary(rows, decoder, keep=keep, b_dec=b_dec,
                                               settings=settings, rounds=rounds)
  else:
    decoder = np.asarray(infer.refine_dictionary(jnp.asarray(rows), jnp.asarray(decoder),
                                                 infer_fn=infer_fn, num_rounds=rounds,
                                                 b_dec=jnp.asarray(b_dec)))
  codes = omp_codes(np.asarray(x, np.float32) * scale, decoder, b_dec, 2 * k)
  return codes, (codes @ decoder + b_dec) / scale, decoder


def omp_codes(x: np.ndarray, dictionary: np.ndarray, bias: np.ndarray, max_atoms: int,
              chunk: int = 2048) -> np.ndarray:
  """`identi.infer.omp` codes of x over `dictionary` (rows), in padded chunks of one shape."""
  chunk = min(chunk, len(x))
  d, b = jnp.asarray(dictionary), jnp.asarray(bias)
  out = []
  for start in range(0, len(x), chunk):
    part = x[start:start + chunk]
    padded = np.concatenate([part, np.repeat(part[:1], chunk - len(part), 0)])
    out.append(np.asarray(infer.omp(jnp.asarray(padded), d, max_atoms=max_atoms, b_dec=b))
               [:len(part)])
  return np.concatenate(out)


def tree_paths(parent: np.ndarray) -> list[np.ndarray]:
  """For each feature, the features of its path: itself and its ancestors (`parent`: each
  feature's parent, -1 for none)."""
  paths = []
  for j in range(len(parent)):
    path = [j]
    while parent[path[-1]] >= 0:
      path.append(int(parent[path[-1]]))
      if len(path) > len(parent):
        raise ValueError("parent.npy has a cycle; regenerate the data directory")
    paths.append(np.asarray(path))
  return paths


def path_codes(x: np.ndarray, features: np.ndarray, bias: np.ndarray, parent: np.ndarray,
               max_atoms: int) -> np.ndarray:
  """The hierarchy-aware limit: codes over the true features that use the true tree.

  Under a hierarchy a child fires only with its parent, so a row's features in a tree form one
  path from a root down. Non-negative OMP (at most `max_atoms`) picks paths, each atom the sum of
  its features' unit directions; the features of the picked paths are then fitted to the row by
  non-negative least squares. It is the reference for a method that may recover the trees;
  `omp_true`, which picks features one by one, the one for a method that knows only the
  dictionary."""
  from scipy.optimize import nnls  # pylint: disable=g-import-not-at-top

  unit = features / np.linalg.norm(features, axis=1, keepdims=True)
  paths = tree_paths(parent)
  path_atoms = np.stack([unit[p].sum(0) for p in paths]).astype(np.float32)
  picked = omp_codes(x, path_atoms, bias, max_atoms) > 0
  residual = np.asarray(x, np.float64) - bias
  codes = np.zeros((len(x), len(features)), np.float32)
  for i in np.flatnonzero(picked.any(1)):
    support = np.unique(np.concatenate([paths[j] for j in np.flatnonzero(picked[i])]))
    codes[i, support], _ = nnls(features[support].T.astype(np.float64), residual[i])
  return codes


def run_omp(methods, x, features, bias, parent, max_atoms: int) -> tuple[dict, dict]:
  """The limit (true dictionary), the hierarchy-aware limit (true dictionary and tree,
  `path_codes`) and the floor (random unit-norm dictionary)."""
  out, seconds = {}, {}
  for m in methods:
    dictionary = features
    if m.name == "random":
      g = np.random.default_rng(0).standard_normal(features.shape).astype(np.float32)
      dictionary = g / np.linalg.norm(g, axis=1, keepdims=True)
    start = time.perf_counter()
    codes = (path_codes(x, features, bias, parent, max_atoms) if m.name == "tree"
             else omp_codes(x, dictionary, bias, max_atoms))
    seconds[m.key] = time.perf_counter() - start
    out[m.key] = (codes, codes @ dictionary + bias, dictionary)
  return out, seconds


# --- the run -------------------------------------------------------------------------------

def selected(keys) -> tuple[list[Method], list[str]]:
  """The METHODS of `keys` (all when empty), and the keys of those skipped because their
  configs/<name>.py does not exist (each with a note on stderr)."""
  known = [m.key for m in METHODS]
  unknown = sorted(set(keys) - set(known))
  if unknown:
    raise ConfigError(f"unknown methods {unknown}; choose from {', '.join(known)}")
  out, skipped = [], []
  for m in METHODS:
    if keys and m.key not in keys:
      continue
    if m.side == "identi" and not os.path.exists(os.path.join(ROOT, "configs", f"{m.name}.py")):
      print(f"note: skipping {m.key}: configs/{m.name}.py does not exist", file=sys.stderr)
      skipped.append(m.key)
      continue
    out.append(m)
  return out, skipped


def data_dir_name(preset_name: str, model_seed: int) -> str:
  """The data directory of a preset's world in the workdir (the benchmark world's has no seed)."""
  return f"data_{preset_name}" + ("" if model_seed == MODEL_SEED else f"_seed{model_seed}")


def run(preset_name: str, workdir: str, keys, peer_threads: int,
        model_seed: int = MODEL_SEED) -> dict:
  """Every selected method on one data set; returns the result (the JSON)."""
  preset = PRESETS[preset_name]
  methods, skipped = selected(keys)
  workdir = os.path.abspath(workdir)
  data_dir = os.path.join(workdir, data_dir_name(preset_name, model_seed))
  os.makedirs(data_dir, exist_ok=True)
  python = saelens_env.ensure_env(ROOT)
  data = generate(python, preset, data_dir, peer_threads, model_seed)
  load = lambda name, **kw: np.load(os.path.join(data_dir, f"{name}.npy"), **kw)
  train, x, z = load("train", mmap_mode="r"), load("eval"), load("eval_z")
  features, bias = load("dictionary"), load("bias")
  if sha256(train) != data["train_sha256"] or sha256(x) != data["eval_sha256"]:
    raise RuntimeError(f"the rows in {data_dir} are not the ones generated; delete it and rerun")
  hashes = {"generated": data["train_sha256"]}
  results, seconds, peer = {}, {}, None

  peer_archs = {}
  for width in ("preset", "true"):  # One peer run per width.
    side = [m for m in methods if m.side == "saelens" and m.width == width]
    if not side:
      continue
    with tempfile.TemporaryDirectory() as tmp:
      peer, results_saelens = train_saelens(python, side, preset, data_dir, tmp, peer_threads)
    results.update(results_saelens)
    peer_archs.update({m.key: peer["archs"][m.name] for m in side})
    seconds.update({m.key: peer["archs"][m.name]["seconds"] for m in side})
    if hashes.setdefault("saelens", peer["train_sha256"]) != peer["train_sha256"]:
      raise RuntimeError("SAELens's two runs trained on different rows")
  side = [m for m in methods if m.side == "identi"]
  if side:
    rows_path = identi_rows(data_dir, train, x)
    results_identi, seconds_identi, h = train_identi(side, preset, data_dir, rows_path,
                                                     data["train_sha256"], data["eval_sha256"])
    results.update(results_identi)
    seconds.update(seconds_identi)
    hashes["identi"] = h["identi"]
  max_atoms = min(preset["d_in"], 2 * math.ceil(data["true_l0"]))
  omp_results, omp_seconds = run_omp([m for m in methods if m.side == "omp"], x, features, bias,
                                     load("parent"), max_atoms)
  results.update(omp_results)

  rows, check, acts = [], {}, {}
  for m in methods:
    codes, recon, decoder = results[m.key]
    row_scores, acts[m.key] = scores(x, z, features, codes, recon, decoder)
    row = {"key": m.key, "method": m.label, "side": m.side, "codes": m.mode, **row_scores,
           "train_s": seconds.get(m.key), "omp_s": omp_seconds.get(m.key)}
    if m.side == "saelens":
      own = peer_archs[m.key]
      check[m.key] = {"mcc_decoder": abs(own["saelens_mcc_decoder"] - row["mcc_decoder"]),
                      "f1": abs(own["saelens_f1"] - row["f1"]),
                      "precision": abs(own["saelens_precision"] - row["precision"]),
                      "recall": abs(own["saelens_recall"] - row["recall"])}
    rows.append(row)
  worst = max((v for c in check.values() for v in c.values()), default=0.0)
  if worst > 1e-4:
    raise RuntimeError(f"numpy SynthSAEBench metrics differ from SAELens's by {worst:.2g}: {check}")
  if len(set(hashes.values())) != 1:
    raise RuntimeError(f"the two sides trained on different rows: {hashes}")
  settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in preset.items()}
  settings.update(decay_steps=decay_steps(preset), tokens=preset["steps"] * preset["batch"],
                  omp_max_atoms=max_atoms, peer_threads=peer_threads, split_seed=SPLIT_SEED,
                  model_seed=model_seed)
  data_out = {k: v for k, v in data.items() if k != "args"}
  return {
      "preset": preset_name, "settings": settings, "data": data_out,
      "identical_rows": {"sha256": data["train_sha256"], "sides": sorted(hashes)},
      "rows": rows, "same_features": same_features(methods, acts),
      "metric_check_max_abs_diff": worst,
      "reference_synthsaebench_16k_l0_25": {k: {"mcc_decoder": v[0], "f1": v[1]}
                                            for k, v in REFERENCE.items()},
      "versions": {"jax": jax.__version__,
                   **({} if peer is None else {"saelens": peer["saelens_version"],
                                               "torch": peer["torch_version"]})},
      "skipped": skipped,
  }


COLUMNS = ["method", "mcc", "mcc_all_features", "mcc_decoder", "f1", "precision", "recall", "fvu",
           "l0", "dead", "train_s", "omp_s"]


def main(argv):
  del argv
  start = time.perf_counter()
  result = run(_PRESET.value, _WORKDIR.value, _METHODS.value, _PEER_THREADS.value,
               _MODEL_SEED.value)
  result["wall_s"] = time.perf_counter() - start
  benchmark_world = _PRESET.value == "quick" and _MODEL_SEED.value == MODEL_SEED
  output = _OUTPUT.value or (OUTPUT if benchmark_world and not _METHODS.value else "")
  if output:
    io.write_json(output, result)
  d, same = result["data"], result["identical_rows"]
  footer = (f"settings: {result['settings']}\ntrue L0 {d['true_l0']:.2f}, "
            f"{d['hierarchy_features']} of {result['settings']['num_features']} features in "
            f"{d['roots']} hierarchy trees; every side trained on rows with sha256 "
            f"{same['sha256'][:16]}... ({', '.join(same['sides'])}); {result['wall_s']:.0f} s")
  if output:
    footer += f"\nresults: {os.path.relpath(output, ROOT) if output == OUTPUT else output}"
  same = same_features_table(result)
  cli.print_tables([(result["rows"], COLUMNS)] + ([same] if same[0] else []), footer)


def same_features_table(result: dict) -> tuple[list[dict], list[str]]:
  """The printed table of `same_features`: a row per SAELens SAE narrower than the true
  dictionary (a wider one is matched to every feature: its row is the all-features column), a
  column per method (by key)."""
  keys = [r["key"] for r in result["rows"]]
  rows = [{"features of": s["features_of"], "features": s["features"], **s["mcc"]}
          for s in result["same_features"]
          if s["features"] < result["settings"]["num_features"]]
  return rows, ["features of", "features"] + keys


if __name__ == "__main__":
  cli.run(main)
