"""The SynthSAEBench-style benchmark: its peer script's command line (no torch here), and, where
the SAELens peer venv is installed, its smoke preset end to end (SAELens's data, one SAE from each
side and the OMP limit and floor)."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import ROOT, run_module

PEER_VENV = os.path.join(ROOT, "benchmarks", "peers", ".venv")
#: `benchmarks.peers.saelens_env.ensure_env` reuses the venv while its stamp file exists.
PEER_READY = os.path.exists(os.path.join(PEER_VENV, ".saelens-installed"))


def test_peer_script_help_needs_no_torch():
  for command, args in (("generate", ("--output_dir", "--num_features", "--d_in", "--train_rows",
                                      "--eval_rows", "--model_seed", "--seed", "--threads")),
                        ("train", ("--train", "--eval", "--output_dir", "--archs", "--d_sae",
                                   "--k", "--matryoshka_widths", "--steps", "--batch", "--lr",
                                   "--warmup", "--decay", "--threads", "--eval_z",
                                   "--dictionary")),
                        ("tree", ("--output_dir", "--num_features", "--d_in", "--model_seed",
                                  "--threads"))):
    proc = subprocess.run([sys.executable, "benchmarks/peers/saelens_synth.py", command, "--help"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    for arg in args:
      assert arg in proc.stdout, (command, arg)


def test_benchmark_imports_no_torch():
  code = ("import sys\nfrom benchmarks import synth_peer\n"
          "print([m.key for m in synth_peer.METHODS], 'torch' in sys.modules)\n")
  proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                        timeout=120, check=True)
  assert proc.stdout.strip().endswith("False")
  assert "identi_matryoshka" in proc.stdout and "omp_true" in proc.stdout


#: Run in a subprocess like REFINEMENT_CHECK below (absl flags).
CONFIGS_CHECK = """
from benchmarks import synth_peer
from identi.train.config import validate_config
for m in synth_peer.METHODS:
  if m.side == "identi":
    validate_config(synth_peer.identi_config(m.name, synth_peer.PRESETS["quick"], "rows",
                                             m.width, m.overrides))
print(sum(m.side == "identi" for m in synth_peer.METHODS))
"""


def test_every_identi_row_has_a_valid_config():
  """A row's overrides name real keys in a possible combination, before anything trains."""
  proc = subprocess.run([sys.executable, "-c", CONFIGS_CHECK], cwd=ROOT, capture_output=True,
                        text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert int(proc.stdout.split()[-1]) >= 30


#: Run in a subprocess like REFINEMENT_CHECK below (absl flags).
SAME_FEATURES_CHECK = """
import json
import numpy as np
from benchmarks import synth_peer
from identi import metrics

rng = np.random.default_rng(0)
z = rng.random((4000, 6)) * (rng.random((4000, 6)) < 0.3)
narrow = z[:, :2] + 0.3 * rng.standard_normal((4000, 2))  # Features 0 and 1, noisily.
wide = np.concatenate([z[:, 2:], z[:, :2] + 0.01 * rng.standard_normal((4000, 2))], 1)
methods = [synth_peer.Method("narrow", "narrow", "saelens", "topk"),
           synth_peer.Method("wide", "wide", "identi", "sae_topk", width="true")]
acts = {"narrow": metrics.mcc(z, narrow, fit_fraction=0.5),
        "wide": metrics.mcc(z, wide, fit_fraction=0.5)}
preset = synth_peer.PRESETS["quick"]
print(json.dumps({"same": synth_peer.same_features(methods, acts),
                  "per_concept": {k: a.per_concept.tolist() for k, a in acts.items()},
                  "widths": {w: synth_peer.matryoshka_widths(preset, w)
                             for w in ("preset", "true", "double")}}))
"""


def test_same_features_and_matryoshka_widths():
  """The same-features comparison scores every method on the features a SAELens SAE is matched
  to; Matryoshka prefixes keep their fractions of the width."""
  proc = subprocess.run([sys.executable, "-c", SAME_FEATURES_CHECK], cwd=ROOT,
                        capture_output=True, text=True, timeout=120, check=True)
  r = json.loads(proc.stdout.strip().splitlines()[-1])
  assert r["widths"] == {"preset": [16, 64, 256], "true": [64, 256, 1024],
                         "double": [128, 512, 2048]}
  (same,) = r["same"]  # One SAELens row.
  assert same["features_of"] == "narrow" and same["features"] == 2
  narrow, wide = (np.array(r["per_concept"][k]) for k in ("narrow", "wide"))
  assert np.all(narrow[2:] == 0) and np.all(narrow[:2] > 0.3)
  assert same["mcc"]["narrow"] == pytest.approx(narrow[:2].mean())
  # The wide method is scored on features 0 and 1 only, the narrow one's, where it is nearly
  # exact.
  assert same["mcc"]["wide"] == pytest.approx(wide[:2].mean()) and wide[:2].min() > 0.99
  assert same["mcc"]["wide"] > same["mcc"]["narrow"] + 0.1


def test_unknown_method_is_a_one_line_error(tmp_path):
  proc = run_module("benchmarks.synth_peer", "--preset=smoke", "--methods=omp_true,lasso",
                    f"--workdir={tmp_path}", check=False)
  assert proc.returncode == 2 and "unknown methods ['lasso']" in proc.stderr
  assert "Traceback" not in proc.stderr
  proc = run_module("benchmarks.synth_peer", "--preset=smoke", "--model_seed=-1",
                    f"--workdir={tmp_path}", check=False)
  assert proc.returncode != 0 and "--model_seed=-1: -1 is not a non-negative integer" in proc.stderr
  assert "Traceback" not in proc.stderr


@pytest.mark.skipif(not PEER_READY, reason="the SAELens peer venv (benchmarks/peers/.venv) is not "
                    "installed; any benchmark that uses it installs it")
def test_smoke_end_to_end(tmp_path):
  out = tmp_path / "synth_peer.json"
  proc = run_module("benchmarks.synth_peer", "--preset=smoke",
                    "--methods=saelens_topk,identi_topk,omp_true,omp_tree,omp_random",
                    f"--workdir={tmp_path}", f"--output={out}", timeout=240)
  assert "OMP, true dictionary (limit)" in proc.stdout
  with open(out) as f:
    result = json.load(f)
  rows = {r["key"]: r for r in result["rows"]}
  assert list(rows) == ["saelens_topk", "identi_topk", "omp_true", "omp_tree", "omp_random"]

  # Identical rows on both sides: the benchmark compared the hashes; check them again here, on the
  # files, through identi's own train/eval split of the rows identi trained on.
  from identi import data as data_lib  # pylint: disable=g-import-not-at-top

  data_dir = tmp_path / "data_smoke"
  train, evaluation = np.load(data_dir / "train.npy"), np.load(data_dir / "eval.npy")
  digest = lambda a: hashlib.sha256(np.ascontiguousarray(a, np.float32).tobytes()).hexdigest()
  assert result["identical_rows"] == {"sha256": digest(train),
                                      "sides": ["generated", "identi", "saelens"]}
  split_train, split_eval = data_lib.train_eval_split(
      data_lib.open_source(str(data_dir / "identi_rows.npy")), len(evaluation), 0)
  assert digest(split_train.get(np.arange(split_train.num_examples))) == digest(train)
  assert digest(split_eval.get(np.arange(split_eval.num_examples))) == digest(evaluation)

  s = result["settings"]
  assert (s["num_features"], s["d_in"], s["d_sae"], s["k"]) == (256, 32, 64, 4)
  assert s["model_seed"] == 42
  assert result["data"]["hierarchy_features"] == 170 and result["data"]["roots"] == 2
  assert result["metric_check_max_abs_diff"] <= 1e-4
  for r in rows.values():
    for key in ("mcc", "mcc_all_features", "mcc_decoder", "f1", "precision", "recall"):
      assert 0.0 <= r[key] <= 1.0 + 1e-6, (r["key"], key, r[key])  # float32 cosines
    assert r["fvu"] >= 0 and 0 <= r["dead"] <= r["latents"]
  for key in ("saelens_topk", "identi_topk"):
    assert rows[key]["l0"] == pytest.approx(4.0) and rows[key]["latents"] == 64
    assert rows[key]["train_s"] > 0 and rows[key]["omp_s"] is None
  # The limit: OMP with the true dictionary finds the true features far better than with a random
  # one, and reconstructs far better; its decoder is the truth.
  limit, floor = rows["omp_true"], rows["omp_random"]
  assert limit["mcc_decoder"] == pytest.approx(1.0)
  assert limit["mcc"] > floor["mcc"] + 0.3 and limit["f1"] > floor["f1"] + 0.3
  assert limit["fvu"] < 0.5 * floor["fvu"]
  assert limit["mcc"] > max(rows["saelens_topk"]["mcc_all_features"],
                            rows["identi_topk"]["mcc_all_features"])
  # Knowing the tree as well, the hierarchy-aware limit ranks above OMP with the dictionary alone;
  # the hierarchy it used is SAELens's: every firing child's parent fires on the same row.
  assert rows["omp_tree"]["mcc"] > limit["mcc"] + 0.1
  parent, z = np.load(data_dir / "parent.npy"), np.load(data_dir / "eval_z.npy")
  assert (parent >= 0).sum() == 170 - 2  # Every tree feature but the two roots.
  child = np.flatnonzero(parent >= 0)
  assert np.all(z[:, parent[child]][z[:, child] > 0] > 0)
  # Every row scored on the features SAELens's SAE is matched to: its own entry is its matched
  # MCC, and the limit is also scored on exactly those features.
  (same,) = result["same_features"]
  assert same["features_of"] == "saelens_topk" and same["features"] <= 64
  assert set(same["mcc"]) == set(rows)
  assert same["mcc"]["saelens_topk"] == pytest.approx(rows["saelens_topk"]["mcc"])
  assert same["mcc"]["omp_true"] > same["mcc"]["saelens_topk"]

  # Another model seed is another world of the same recipe, in its own data directory; the
  # benchmark world's rows are left as they were.
  out7 = tmp_path / "seed7.json"
  run_module("benchmarks.synth_peer", "--preset=smoke", "--methods=omp_true", "--model_seed=7",
             f"--workdir={tmp_path}", f"--output={out7}", timeout=120)
  with open(out7) as f:
    other = json.load(f)
  assert other["settings"]["model_seed"] == 7
  assert not np.allclose(np.load(tmp_path / "data_smoke_seed7" / "dictionary.npy"),
                         np.load(data_dir / "dictionary.npy"))
  assert other["identical_rows"]["sha256"] != result["identical_rows"]["sha256"]
  assert digest(np.load(data_dir / "train.npy")) == result["identical_rows"]["sha256"]

  # Rows generated before parent.npy was written get it from the same model, checked against the
  # stored dictionary.
  os.remove(data_dir / "parent.npy")
  run_module("benchmarks.synth_peer", "--preset=smoke", "--methods=omp_tree",
             f"--workdir={tmp_path}", f"--output={tmp_path / 'again.json'}", timeout=120)
  assert np.array_equal(np.load(data_dir / "parent.npy"), parent)


#: Run in a subprocess like REFINEMENT_CHECK below (absl flags): a toy forest of 3 roots, each
#: with 3 children of 3 children, in 16 dimensions; each row fires one path down 1 or 2 trees.
PATH_CODES_CHECK = """
import json
import numpy as np
from benchmarks import synth_peer
from identi import metrics

rng = np.random.default_rng(0)
parent = [-1, -1, -1]
for level in range(2):
  start = len(parent) - 3 ** (level + 1)
  for p in range(start, len(parent)):
    parent += [p] * 3
parent = np.asarray(parent)
n_features, d, n = len(parent), 16, 3000
features = rng.standard_normal((n_features, d)).astype(np.float32)
features /= np.linalg.norm(features, axis=1, keepdims=True)
z = np.zeros((n, n_features), np.float32)
children = {p: np.flatnonzero(parent == p) for p in range(n_features)}
for i in range(n):
  for root in rng.choice(3, rng.integers(1, 3), replace=False):
    node = root
    while True:
      z[i, node] = rng.uniform(1.0, 1.5)
      if not children[node].size:
        break
      node = rng.choice(children[node])
x = z @ features
bias = np.zeros(d, np.float32)
flat = synth_peer.omp_codes(x, features, bias, 8)
tree = synth_peer.path_codes(x, features, bias, parent, 8)
try:
  synth_peer.tree_paths(np.array([1, 0]))
  cycle = ""
except ValueError as e:
  cycle = str(e)
print(json.dumps({"flat": metrics.mcc(z, flat).mcc, "tree": metrics.mcc(z, tree).mcc,
                  "paths": [p.tolist() for p in synth_peer.tree_paths(parent)[-2:]],
                  "roots": [p.tolist() for p in synth_peer.tree_paths(parent)[:3]],
                  "cycle": cycle}))
"""


def test_path_codes_use_the_tree():
  """The hierarchy-aware limit picks whole root-to-feature paths: where OMP with the true
  dictionary alone confuses the 39 features in 16 dimensions, it recovers them."""
  proc = subprocess.run([sys.executable, "-c", PATH_CODES_CHECK], cwd=ROOT,
                        capture_output=True, text=True, timeout=120, check=True)
  r = json.loads(proc.stdout.strip().splitlines()[-1])
  assert r["paths"] == [[37, 11, 2], [38, 11, 2]] and r["roots"] == [[0], [1], [2]]
  assert "cycle" in r["cycle"]
  assert r["tree"] > 0.99 and r["tree"] > r["flat"] + 0.1


#: Run in a subprocess: the benchmark module defines absl flags that other benchmark modules,
#: imported by other tests in the same worker, define too.
REFINEMENT_CHECK = """
import json
import numpy as np
from benchmarks import synth_peer
from identi import metrics

rng = np.random.default_rng(0)
n_features, d, n = 48, 24, 6000
truth = rng.standard_normal((n_features, d)).astype(np.float32)
truth /= np.linalg.norm(truth, axis=1, keepdims=True)
z = (rng.random((n, n_features)) < 3 / n_features) * rng.uniform(1, 2, (n, n_features))
x = (z @ truth).astype(np.float32)
noisy = truth + 0.35 * rng.standard_normal(truth.shape).astype(np.float32)
noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
variables = {"params": {"W_dec": noisy, "b_dec": np.zeros(d, np.float32)},
             "stats": {"input_scale": np.float32(1.0)}}
x_train, x_eval, z_eval = x[:4000], x[4000:], z[4000:]
unit = lambda dec: dec / np.linalg.norm(dec, axis=1, keepdims=True)
cos = lambda dec: float(np.mean(np.sum(unit(dec) * truth, 1)))
codes, recon, decoder = synth_peer.refined(variables, x_train, x_eval, k=3, rounds=4)
before = synth_peer.omp_codes(x_eval, noisy, np.zeros(d, np.float32), 6)
# Twice as wide: a second noisy copy of every atom; refined with duplicates replaced, then pruned.
noisy2 = truth + 0.35 * rng.standard_normal(truth.shape).astype(np.float32)
wide = np.concatenate([noisy, unit(noisy2)])
best = lambda dec: float(np.mean((unit(dec) @ truth.T).max(0)))
variables["params"]["W_dec"] = wide
codes2, recon2, decoder2 = synth_peer.refined(variables, x_train, x_eval, k=3, rounds=4, keep=48)
print(json.dumps({"shapes": [list(codes.shape), list(recon.shape)],
                  "cos_before": cos(noisy), "cos_after": cos(decoder),
                  "mcc_before": metrics.mcc(z_eval, before).mcc,
                  "mcc_after": metrics.mcc(z_eval, codes).mcc,
                  "pruned_shapes": [list(codes2.shape), list(decoder2.shape)],
                  "pruned_best_before": best(wide), "pruned_best_after": best(decoder2),
                  "pruned_mcc": metrics.mcc(z_eval, codes2).mcc}))
"""


def test_refinement_moves_a_perturbed_decoder_toward_the_true_dictionary():
  """The "refined" rows' step, on data whose dictionary is known: an SAE decoder that is the true
  dictionary plus noise comes out closer to it, and its OMP codes recover the features better."""
  proc = subprocess.run([sys.executable, "-c", REFINEMENT_CHECK], cwd=ROOT, capture_output=True,
                        text=True, timeout=300, check=True)
  r = json.loads(proc.stdout.strip().splitlines()[-1])
  assert r["shapes"] == [[2000, 48], [2000, 24]]
  assert r["cos_after"] > r["cos_before"] + 0.05
  assert r["mcc_after"] > r["mcc_before"] + 0.05
  # The pruned path keeps the true width and ends closer to the truth than the wide start.
  assert r["pruned_shapes"] == [[2000, 48], [48, 24]]
  assert r["pruned_best_after"] > r["pruned_best_before"] + 0.05
  assert r["pruned_mcc"] > r["mcc_before"] + 0.05
