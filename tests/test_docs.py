"""The documentation cannot go stale: its result tables are checked against the committed JSON.

Every committed ``paper/figures/<name>/*.json`` feeds one or more tables in ``docs/``. A table is
marked in its page by the line ``<!-- table: ID -->`` just above it; ``TABLES`` below says, for
each ID, which page holds it, which JSON it comes from and how the JSON's values are formatted.
The test rebuilds every table from the JSON and compares it with the page cell by cell, so a
re-run experiment whose JSON changed, or a number edited by hand, fails with the page, the table,
the row and the column named. After re-running an experiment, ``python tests/test_docs.py`` prints
every table as the JSON now gives it, ready to paste.

Also checked: README.md stays short, no page names internal process, and every relative link in
README.md and docs/ points to an existing file.
"""
from __future__ import annotations

import dataclasses
import functools
import glob
import json
import math
import os
import re
from typing import Callable

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIGURES = os.path.join("paper", "figures")
MINILM_ERRORS = os.path.join("tests", "fixtures", "minilm", "errors.json")

Rows = list[list[str]]


def load(path: str) -> dict:
  """The committed JSON at `path` (relative to the repository root)."""
  with open(os.path.join(ROOT, path)) as f:
    return json.load(f)


def f3(value: float) -> str:
  """Three decimals: correlations, scores, fractions."""
  return f"{value:.3f}"


def pct(value: float, digits: int = 1) -> str:
  """A fraction as a percentage."""
  return f"{100 * value:.{digits}f}%"


def count(value: float) -> str:
  """An integer with thousands separators."""
  return f"{int(value):,}"


def number(value: float) -> str:
  """A grid coordinate or setting as Python's shortest form (0.05, 1, 0.3)."""
  return f"{value:g}"


# --- identify_hsm ---------------------------------------------------------------------------

def method_names(width: int) -> dict[str, str]:
  """The table names of identify's methods for SAEs of `width` latents."""
  return {
      "relu": "ReLU + L1", "topk": "TopK (k = 8)", "batchtopk": "BatchTopK (k = 8)",
      "jumprelu": "JumpReLU", "matryoshka": "Matryoshka BatchTopK (k = 8)",
      "mp": "MP-SAE (8 steps)", "identifiable": "identifiable (BatchTopK + minimality)",
      "pca": "PCA (64 components)", "linear_ae": f"dense linear AE ({width})",
      "ica": "FastICA (64)",
  }


def identify_methods(d: dict, width: int = 256) -> tuple[list[str], Rows]:
  header = ["method", "MCC (encoder)", "MCC (minimal code)", "FVU", "L0", "dead"]
  names = method_names(width)
  rows = []
  for r in d["records"]:
    minimal = f3(r["mcc_minimal"]) if "mcc_minimal" in r else "-"
    rows.append([names[r["name"]], f3(r["mcc"]), minimal, f3(r["fvu"]), f"{r['l0']:.1f}",
                 pct(r["dead_fraction"])])
  return header, rows


def identify_minimal(d: dict, width: int = 256) -> tuple[list[str], Rows]:
  header = ["SAE", f"atoms kept (of {width})", "L0 of the minimal code", "FVU of the minimal code"]
  names = method_names(width)
  rows = [[names[r["name"]], str(r["atoms_minimal"]), f"{r['l0_minimal']:.1f}",
           f3(r["fvu_minimal"])] for r in d["records"] if "atoms_minimal" in r]
  return header, rows


def identify_world(d: dict) -> tuple[list[str], Rows]:
  world, view = d["data"]["world"], d["data"]["view"]
  rows = [
      ["concepts per level", " / ".join(str(n) for n in world["level_sizes"])],
      ["parents per whole", str(world["min_parents"]) if world["min_parents"] == world["max_parents"]
       else f"{world['min_parents']}-{world['max_parents']}"],
      ["shared parent slots (overlap)", number(world["overlap"])],
      ["firing probability pi", number(world["pi"])],
      ["selection leak eps", number(world["eps"])],
      ["intensities", world["magnitude"]],
      ["mean active level-1 concepts", f"{d['data']['mean_active_level1']:.2f}"],
      ["observation dimension d", str(view["d"])],
      ["samples", count(view["num_samples"])],
  ]
  return ["setting", "value"], rows


# --- leak_sweep -----------------------------------------------------------------------------

def leak_sweep_worlds(d: dict) -> tuple[list[str], Rows]:
  header = ["eps", "pi", "active level-1", "parts co-occur"]
  rows = [[number(r["eps"]), f3(r["pi"]), f"{r['active']:.2f}", pct(r["co_occurrence"], 0)]
          for r in d["records"]]
  return header, rows


def leak_sweep(d: dict) -> tuple[list[str], Rows]:
  """One row per method; per eps its encoder / minimal-code MCC."""
  header = ["method"] + [f"eps = {number(r['eps'])}" for r in d["records"]]
  names = method_names(256)
  rows = []
  for i, method in enumerate(d["records"][0]["methods"]):
    cells = []
    for r in d["records"]:
      m = r["methods"][i]
      assert m["name"] == method["name"], "every eps lists the methods in one order"
      cells.append(f3(m["mcc"]) + (f" / {f3(m['mcc_minimal'])}" if "mcc_minimal" in m else ""))
    rows.append([names[method["name"]]] + cells)
  rows.append(["OMP, true dictionary (limit)"] + [f3(r["limit"]["mcc"]) for r in d["records"]])
  return header, rows


# --- seed_consistency -----------------------------------------------------------------------

def seed_consistency(d: dict) -> tuple[list[str], Rows]:
  header = ["runs", "MCC (encoder)", "MCC (minimal code)", "PW-MCC (activation)",
            "PW-MCC (decoder)"]
  rows = [[f"init seed {r['init_seed']}", f3(r["mcc"]), f3(r["mcc_minimal"]), "-", "-"]
          for r in d["records"]]
  rows += [[f"seeds {p['seeds'][0]} and {p['seeds'][1]}", "-", "-", f3(p["activation"]),
            f3(p["decoder"])] for p in d["pairs"]]
  s = d["summary"]
  rows.append(["mean", f3(s["mcc_mean"]), f3(s["mcc_minimal_mean"]), f3(s["pw_mcc_activation"]),
               f3(s["pw_mcc_decoder"])])
  return header, rows


# --- phase_diagram --------------------------------------------------------------------------

def phase_grid(key: str) -> Callable[[dict], tuple[list[str], Rows]]:
  def build(d: dict) -> tuple[list[str], Rows]:
    header = ["pi \\ n/d"] + [number(r) for r in d["ratio"]]
    rows = [[number(pi)] + [f3(v) for v in row] for pi, row in zip(d["pi"], d[key])]
    return header, rows
  return build


# --- subjects: shared tables ----------------------------------------------------------------

def level_table(key: str, label: Callable[[object], str]) -> Callable[[dict],
                                                                      tuple[list[str], Rows]]:
  def build(d: dict) -> tuple[list[str], Rows]:
    header = [key, "units", "level 1", "level 2", "level 3"]
    rows = [[label(r[key]), str(r["units"]), f3(r["level_1"]), f3(r["level_2"]), f3(r["level_3"])]
            for r in d["table"]]
    return header, rows
  return build


def graph_pairs(where: str, label: Callable[[object], str]) -> Callable[[dict],
                                                                        tuple[list[str], Rows]]:
  """Edges per level pair; precision is '-' when no learned edge joins two matched units."""
  def build(d: dict) -> tuple[list[str], Rows]:
    header = ["levels", where, "precision", "recall", "F1", "AUROC", "SHD", "learned edges",
              "off the matching", "true edges"]
    rows = []
    for p in d["pairs"]:
      matched = p["learned_edges"] - p["edges_off_matching"]
      rows.append([f"{p['levels'][0]} -> {p['levels'][1]}",
                   " -> ".join(label(x) for x in p[where]),
                   f3(p["precision"]) if matched else "-", f3(p["recall"]), f3(p["f1"]),
                   f3(p["auroc"]), str(p["shd"]), str(p["learned_edges"]),
                   str(p["edges_off_matching"]), str(p["true_edges"])])
    return header, rows
  return build


# --- grammar_concepts -----------------------------------------------------------------------

def grammar_capture(d: dict) -> tuple[list[str], Rows]:
  c = d["capture"]
  rows = [
      ["sampled sequences", count(c["sequences"])],
      ["grammatical", pct(c["grammatical"])],
      ["words / phrases / sentence types per sequence",
       " / ".join(f"{v:.2f}" for v in c["active_per_level"])],
      ["rows (positions from BOS to EOS)", count(c["rows"])],
      ["width", str(c["dim"])],
      ["held-out sequences / rows", f"{count(d['test_sequences'])} / {count(d['test_rows'])}"],
  ]
  return ["capture", "value"], rows


def grammar_steering(d: dict) -> tuple[list[str], Rows]:
  header = ["mode", "samples", "units per edit", "success", "coherence", "preservation"]
  rows = [[r["mode"], str(r["samples"]), f"{r['units_per_edit']:.1f}", f3(r["success"]),
           f3(r["coherence"]), f3(r["preservation"])] for r in d["rows"]]
  rows.append(["unedited", count(d["pool"]), "-", "-", f3(d["unedited_grammatical"]), "-"])
  return header, rows


# --- scenes_concepts ------------------------------------------------------------------------

def scenes_capture(d: dict) -> tuple[list[str], Rows]:
  c = d["capture"]
  rows = [
      ["DDIM trajectories", count(c["samples"])],
      ["coherent final images", pct(c["coherence"])],
      ["parts / objects / scenes per image", " / ".join(f"{v:.2f}" for v in c["active_per_level"])],
      ["block read", d["block"]],
      ["width", count(c["dim"])],
      ["timesteps (DDIM step of 50)",
       ", ".join(f"{number(t)} ({s})" for t, s in zip(c["timesteps"], c["steps"]))],
      ["codes", d["codes"]],
  ]
  return ["capture", "value"], rows


EDITS = {"inject_part": "inject part", "remove_object": "remove object",
         "inject_object": "inject object"}


def scenes_steering(d: dict) -> tuple[list[str], Rows]:
  header = ["edit", "mode", "samples", "success", "preservation", "coherence"]
  rows = [[EDITS[r["edit"]], r["mode"], str(r["samples"]), f3(r["success"]),
           f3(r["preservation"]), f3(r["coherence"])] for r in d["rows"]]
  rows.append(["none (unedited)", "-", "-", "-", "-", f3(d["unedited_coherence"])])
  return header, rows


def scenes_steering_settings(d: dict) -> tuple[list[str], Rows]:
  rows = [
      ["steered steps", f"t <= {number(d['t_max'])}"],
      ["SAE timesteps of levels 1 / 2 / 3", " / ".join(number(t) for t in d["level_timesteps"])],
      ["flat baseline SAE", f"t = {number(d['flat_timestep'])}"],
      ["inject strength (x median active code)", number(d["inject_strength"])],
      ["remove strength (x median active code)", f"-{number(d['remove_strength'])}"],
  ]
  return ["setting", "value"], rows


# --- prompted_unlearning -------------------------------------------------------------------

def prompted_subject(d: dict) -> tuple[list[str], Rows]:
  header = ["samples", "prompted objects present (gate >= 90%)", "every prompted concept present",
            "exactly the prompted objects", "coherent (gate >= 90%)"]
  rows = []
  for name, adh, coh in (
      (f"stochastic DDIM (eta = 1), guidance {number(d['guidance'])}", d["adherence"],
       d["coherence_generated"]),
      (f"deterministic DDIM (eta = 0), guidance {number(d['guidance'])}", d["adherence_eta0"],
       d["coherence_generated_eta0"]),
      ("training images, with their own prompts", d["adherence_train"], d["coherence_train"])):
    rows.append([name, pct(adh["objects"]), pct(adh["all"]), pct(adh["exact_objects"]),
                 pct(coh)])
  return header, rows


CONDITION_NAMES = {"named": "named", "implied": "implied"}
METHOD_NAMES = {"none": "no edit", "negative_prompt": "negative prompt",
                "flat": "flat ablation", "hierarchical": "hierarchical removal"}


def prompted_removal(d: dict) -> tuple[list[str], Rows]:
  header = ["target", "in the prompt", "method", "samples", "removal", "preservation",
            "unchanged", "coherence"]
  rows = [[r["level"], CONDITION_NAMES[r["condition"]], METHOD_NAMES[r["method"]],
           count(r["samples"]), f3(r["removal"]), f3(r["preservation"]), f3(r["unchanged"]),
           f3(r["coherence"])] for r in d["rows"]]
  return header, rows


def prompted_removal_settings(d: dict) -> tuple[list[str], Rows]:
  rows = [
      ["guidance", number(d["guidance"])],
      ["prompts per target and condition", count(d["samples_per_target"])],
      ["steered steps", f"t <= {number(d['t_max'])}"],
      ["flat ablation SAE", f"t = {number(d['flat_timestep'])}"],
      ["remove strength (x median active code)", number(d["remove_strength"])],
      ["hierarchical edit region (share of the target units' peak energy; 0 = whole map)",
       number(d["region"])],
  ]
  return ["setting", "value"], rows


def prompted_negated(d: dict) -> tuple[list[str], Rows]:
  names = ("parts", "objects", "scene types")
  return ["level", "units negated by the sign-aware graph"], [
      [names[l], ", ".join(map(str, units)) or "none"] for l, units in enumerate(d["negated"])]


# --- block_transplant -----------------------------------------------------------------------

def block_transplant(d: dict) -> tuple[list[str], Rows]:
  windows = []
  for r in d["rows"]:
    w = (r["t_lo"], r["t_hi"])
    if w not in windows:
      windows.append(w)

  def window(lo: float, hi: float) -> str:
    if lo == 0 and hi == 1:
      return "every step"
    return f"t <= {number(hi)}" if lo == 0 else f"{number(lo)} < t <= {number(hi)}"

  header = ["block"] + [window(*w) for w in windows]
  blocks = []
  for r in d["rows"]:
    if r["block"] not in blocks:
      blocks.append(r["block"])
  rows = []
  for b in blocks:
    by_window = {(r["t_lo"], r["t_hi"]): r["appears"] for r in d["rows"] if r["block"] == b}
    rows.append([f"`{b}`"] + [pct(by_window[w]) for w in windows])
  return header, rows


# --- formats (the SAE ecosystem) -----------------------------------------------------------

def sci(value: float) -> str:
  """A small difference in scientific notation (9.5e-07)."""
  return f"{value:.1e}"


def formats_export(d: dict) -> tuple[list[str], Rows]:
  header = ["identi SAE", "written as", "library codes vs identi's (max abs diff)",
            "imported without identi_sae.safetensors", "identi -> format -> identi"]
  rows = [[r["sae"].removeprefix("identi "), r["format"], sci(r["max_abs_diff"]),
           sci(r["max_abs_diff_weights_only"]),
           "bit-identical" if r["round_trip_bit_identical"] else "differs"]
          for r in d["rows"] if r["direction"] == "export"]
  return header, rows


def formats_import(d: dict) -> tuple[list[str], Rows]:
  header = ["SAE written by its library", "format", "identi codes vs library codes (max abs diff)",
            "active codes"]
  rows = [[f"`{r['sae']}`", r["format"], sci(r["max_abs_diff_weights_only"]),
           pct(r["active_fraction"])] for r in d["rows"] if r["direction"] == "import"]
  return header, rows


# --- sharded_memory (benchmarks) ------------------------------------------------------------

def sharded_memory(d: dict) -> tuple[list[str], Rows]:
  mib = lambda b: f"{b / 2 ** 20:,.1f}"
  header = ["d_sae", "mesh (data, model)", "state + batch per device (MiB)",
            "temporaries per device (MiB)", "dictionary + Adam in all (MiB)"]
  rows = [[count(r["d_sae"]), f"({r['data']}, {r['model']})", mib(r["argument_bytes"]),
           mib(r["temp_bytes"]), mib(r["state_bytes"])] for r in d["rows"]]
  return header, rows


# --- minilm_port (benchmarks) ---------------------------------------------------------------

def minilm_port(d: dict) -> tuple[list[str], Rows]:
  layers = sorted(d["layers"], key=lambda p: -1 if p == "embed" else int(p.split("_")[1]))
  rows = [[f"`{p}`", sci(d["layers"][p])] for p in layers]
  return ["hidden state", "max abs error"], rows + [["sentence embedding", sci(d["embeddings"])]]


def multi_sae_steps(d: dict) -> tuple[list[str], Rows]:
  header = ["d_in", "d_sae", "k", "batch", "SAEs", "sequential (ms)", "vmapped (ms)",
            "loop (ms)", "SAELens multi-SAE trainer (ms)", "vmapped vs sequential",
            "loop vs sequential", "vmapped vs SAELens", "loop vs SAELens"]
  ms = lambda v: f"{1e3 * v:,.1f}"  # noqa: E731
  rows = [[count(r["d_in"]), count(r["d_sae"]), str(r["k"]), count(r["batch"]), str(r["saes"]),
           ms(r["sequential_step_s"]), ms(r["vmapped_step_s"]), ms(r["loop_step_s"]),
           ms(r["saelens_step_s"]), f"{r['speedup']:.2f}x", f"{r['speedup_loop']:.2f}x",
           f"{r['speedup_vs_saelens']:.2f}x", f"{r['speedup_loop_vs_saelens']:.2f}x"]
          for r in d["rows"]]
  return header, rows


def multi_sae_runs(d: dict) -> tuple[list[str], Rows]:
  header = ["d_in", "d_sae", "SAEs", "steps", "one run after another (s)",
            "one sweep, vmapped (s)", "one sweep, looped (s)", "vmapped speed-up",
            "looped speed-up", "sweep.batching auto"]
  rows = [[count(r["d_in"]), count(r["d_sae"]), str(r["saes"]), count(r["steps"]),
           f"{r['sequential_runs_s']:.1f}", f"{r['sweep_vmap_s']:.1f}", f"{r['sweep_loop_s']:.1f}",
           f"{r['speedup_vmap']:.2f}x", f"{r['speedup_loop']:.2f}x", r["sweep_batching"]]
          for r in d["runs"]]
  return header, rows


# --- minilm_wordnet ------------------------------------------------------------------------

def minilm_world(d: dict) -> tuple[list[str], Rows]:
  c, w = d["capture"], d["world"]
  rows = [
      ["lemmas (fit / report half)", f"{w['lemmas']} ({w['fit_lemmas']} / "
                                     f"{w['lemmas'] - w['fit_lemmas']})"],
      ["categories / top categories", f"{w['categories']} / {w['tops']}"],
      ["sentences (rows) / from WordNet", f"{count(c['rows'])} / {count(c['wordnet_rows'])}"],
      ["layers read", ", ".join(f"`{l}`" for l in c["layers"])],
      ["layer of lemma / category / top (chosen on fit rows)",
       " / ".join(f"`{l}`" for l in d["level_layers"])],
  ]
  return ["world", "value"], rows


def minilm_mcc(d: dict) -> tuple[list[str], Rows]:
  header = ["layer"] + [f"{level} {kind}" for level in ("lemma", "category", "top")
                        for kind in ("SAE", "shuffled", "probe")]
  layers = ["embed"] + [f"block_{i}" for i in range(6)]
  rows = [[f"`{l}`"] + [f3(d["mcc"][l][level][kind]) for level in ("lemma", "category", "top")
                        for kind in ("sae", "random", "probe")] for l in layers if l in d["mcc"]]
  return header, rows


def minilm_graph(d: dict) -> tuple[list[str], Rows]:
  names = {"sae": "SAE units", "random": "shuffled codes (floor)",
           "probe": "linear probe (ceiling)"}
  rows = [[names[k], number(g["threshold"]), f3(g["fit_f1"]), f3(g["precision"]),
           f3(g["recall"]), f3(g["f1"]), f3(g["auroc"])]
          for k, g in ((k, d["graph"][k]) for k in ("sae", "random", "probe"))]
  return ["units", "edge threshold", "F1 on fit lemmas", "precision", "recall", "F1",
          "AUROC"], rows


def minilm_patching(d: dict) -> tuple[list[str], Rows]:
  rows = [[r["level"], str(r["concepts"]), f"{r['delta_unit']:+.4f}", f"{r['delta_random']:+.4f}",
           pct(r["unit_stronger"], 0)] for r in d["rows"]]
  return ["ablated unit of", "concepts", "change of similarity: its unit",
          "a random unit", "concepts where its unit moves more"], rows


def real_peer(d: dict) -> tuple[list[str], Rows]:
  levels = ("lemma", "category", "top")
  rows = [[r["sae"], f3(r["fvu"]), f"{r['l0']:.1f}", pct(r["dead_fraction"])]
          + [f3(r[f"mcc_{l}"]) for l in levels]
          + [" / ".join(f3(r[f"mcc_{l}_random"]) for l in levels),
             f"{r['seconds']:.1f}", count(r["tokens_per_s"])] for r in d["rows"]]
  probe = d["rows"][0]
  rows.append(["linear probe (ceiling)", "-", "-", "-"]
              + [f3(probe[f"mcc_{l}_probe"]) for l in levels] + ["-", "-", "-"])
  return ["SAE", "FVU", "L0", "dead", "MCC lemma", "MCC category", "MCC top",
          "shuffled floor", "seconds", "tokens/s"], rows


# --- synth_peer (benchmarks) ----------------------------------------------------------------

def synth_peer_data(d: dict) -> tuple[list[str], Rows]:
  s, data = d["settings"], d["data"]
  rows = [
      ["true features / hidden dimension", f"{count(s['num_features'])} / {s['d_in']}"],
      ["features in hierarchy trees (trees)",
       f"{count(data['hierarchy_features'])} ({data['roots']})"],
      ["true L0 (evaluation rows)", f"{data['true_l0']:.2f}"],
      ["training / evaluation rows", f"{count(s['train_rows'])} / {count(s['eval_rows'])}"],
      ["SAE width / k", f"{count(s['d_sae'])} / {s['k']}"],
      ["Matryoshka inner widths", ", ".join(count(w) for w in s["matryoshka_widths"])],
      ["steps x batch (samples)",
       f"{count(s['steps'])} x {count(s['batch'])} ({count(s['tokens'])})"],
      ["learning rate; warm-up; linear decay to 0",
       f"{number(s['lr'])}; {s['warmup']} steps; last {count(s['decay_steps'])} steps"],
      ["OMP atoms per row, at most", str(s["omp_max_atoms"])],
  ]
  return ["setting", "value"], rows


def synth_peer(d: dict) -> tuple[list[str], Rows]:
  seconds = lambda v: "-" if v is None else f"{v:.0f}"
  header = ["method", "MCC (matched)", "MCC (all features)", "decoder MCC", "F1", "precision",
            "recall", "FVU", "L0", "dead / latents", "training (s)"]
  rows = [[r["method"], f3(r["mcc"]), f3(r["mcc_all_features"]), f3(r["mcc_decoder"]),
           f3(r["f1"]), f3(r["precision"]), f3(r["recall"]), f3(r["fvu"]), f"{r['l0']:.1f}",
           f"{count(r['dead'])} / {count(r['latents'])}", seconds(r["train_s"])]
          for r in d["rows"]]
  return header, rows


def synth_peer_same_features(d: dict) -> tuple[list[str], Rows]:
  """Each narrower SAELens SAE's matched MCC beside the best SAELens SAE at the true width (where
  the run has one) and every other side's MCC on the same true features."""
  label = {r["key"]: r["method"] for r in d["rows"]}
  wide = [r for r in d["rows"] if r["side"] == "saelens"
          and r["latents"] >= d["settings"]["num_features"]]
  others = ([max(wide, key=lambda r: r["mcc_all_features"])["key"]] if wide else []) + [
      r["key"] for r in d["rows"] if r["side"] != "saelens"]
  rows = [[label[s["features_of"]], count(s["features"]), f3(s["mcc"][s["features_of"]])]
          + [f3(s["mcc"][k]) for k in others]
          for s in d["same_features"] if s["features"] < d["settings"]["num_features"]]
  return ["features of", "features", "that SAE"] + [label[k] for k in others], rows


def find_functions(d: dict) -> tuple[list[str], Rows]:
  def nmse(r, key):
    return "-" if key not in r else (f"{r[key]:.2g}" if math.isfinite(r[key]) else "inf")

  rows = [[r["category"], r["agent"], str(r["count"]), pct(r["success"], 0),
           nmse(r, "median_nmse"), nmse(r, "median_nmse_inside"), nmse(r, "median_nmse_outside"),
           "-" if "accuracy" not in r else f3(r["accuracy"]), f"{r['queries']:.0f}"]
          for r in sorted(d["rows"], key=lambda r: (r["category"], r["agent"] != "scientist"))]
  return ["category", "agent", "functions", "described", "median NMSE", "NMSE inside interval",
          "NMSE outside interval", "accuracy", "queries"], rows


def find_units(d: dict) -> tuple[list[str], Rows]:
  rows = [[r["subject"], r["mcc"], r["agent"], str(r["units"]), f3(r["concept_accuracy"]),
           f3(r["f1"]), f"{r['queries']:.0f}"]
          for r in sorted(d["units"], key=lambda r: (r["subject"], r["mcc"],
                                                     r["agent"] != "scientist"))]
  return ["subject", "units (MCC)", "agent", "units", "concept named", "F1", "queries"], rows


# --- the registry of checked tables ---------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Table:
  id: str
  page: str
  json: str
  build: Callable[[dict], tuple[list[str], Rows]]


def fig(name: str, file: str) -> str:
  return os.path.join(FIGURES, name, file)


def page(name: str) -> str:
  return os.path.join("docs", "experiments", f"{name}.md")


def scenes_graph_tables(run: str, stem: str) -> tuple["Table", "Table"]:
  """The timestep x level and graph tables of a scenes run's graph.json (markers stem_timesteps,
  stem_graph on the scenes page)."""
  at = lambda t: f"t = {number(t)}"
  return (Table(f"{stem}_timesteps", page("scenes_concepts"), fig(run, "graph.json"),
                level_table("timestep", at)),
          Table(f"{stem}_graph", page("scenes_concepts"), fig(run, "graph.json"),
                graph_pairs("timesteps", at)))


TABLES = [
    Table("identify_world", page("identify_hsm"), fig("hsm_identifiability", "results.json"),
          identify_world),
    Table("identify_methods", page("identify_hsm"), fig("hsm_identifiability", "results.json"),
          identify_methods),
    Table("identify_minimal", page("identify_hsm"), fig("hsm_identifiability", "results.json"),
          identify_minimal),
    Table("identify_methods_1x", page("identify_hsm"),
          fig("hsm_identifiability_1x", "results.json"),
          functools.partial(identify_methods, width=128)),
    Table("identify_world_eps03", page("identify_hsm"),
          fig("hsm_identifiability_eps03", "results.json"),
          identify_world),
    Table("identify_methods_eps03", page("identify_hsm"),
          fig("hsm_identifiability_eps03", "results.json"),
          functools.partial(identify_methods, width=512)),
    Table("identify_minimal_eps03", page("identify_hsm"),
          fig("hsm_identifiability_eps03", "results.json"),
          functools.partial(identify_minimal, width=512)),
    Table("leak_sweep_worlds", page("leak_sweep"), fig("leak_sweep", "leak_sweep.json"),
          leak_sweep_worlds),
    Table("leak_sweep", page("leak_sweep"), fig("leak_sweep", "leak_sweep.json"), leak_sweep),
    Table("seed_consistency", page("identify_hsm"),
          fig("seed_consistency", "seed_consistency.json"), seed_consistency),
    # The same runs on a second CPU (the page's section "On another CPU").
    Table("identify_methods_second_cpu", page("identify_hsm"),
          fig("hsm_identifiability", "results_second_cpu.json"), identify_methods),
    Table("identify_methods_1x_second_cpu", page("identify_hsm"),
          fig("hsm_identifiability_1x", "results_second_cpu.json"),
          functools.partial(identify_methods, width=128)),
    Table("seed_consistency_second_cpu", page("identify_hsm"),
          fig("seed_consistency", "seed_consistency_second_cpu.json"), seed_consistency),
    Table("phase_encoder", page("phase_diagram"), fig("phase_diagram", "phase_diagram.json"),
          phase_grid("mcc")),
    Table("phase_minimal", page("phase_diagram"), fig("phase_diagram", "phase_diagram.json"),
          phase_grid("mcc_minimal")),
    Table("grammar_capture", page("grammar_concepts"), fig("grammar_concepts", "graph.json"),
          grammar_capture),
    Table("grammar_layers", page("grammar_concepts"), fig("grammar_concepts", "graph.json"),
          level_table("layer", lambda x: f"`{x}`")),
    Table("grammar_graph", page("grammar_concepts"), fig("grammar_concepts", "graph.json"),
          graph_pairs("layers", lambda x: f"`{x}`")),
    Table("grammar_steering", page("grammar_concepts"), fig("grammar_concepts", "steering.json"),
          grammar_steering),
    Table("grammar_identifiable_layers", page("grammar_concepts"),
          fig("grammar_identifiable", "graph.json"), level_table("layer", lambda x: f"`{x}`")),
    Table("grammar_identifiable_graph", page("grammar_concepts"),
          fig("grammar_identifiable", "graph.json"),
          graph_pairs("layers", lambda x: f"`{x}`")),
    Table("grammar_ancestors_layers", page("grammar_concepts"),
          fig("grammar_ancestors", "graph.json"), level_table("layer", lambda x: f"`{x}`")),
    Table("grammar_ancestors_graph", page("grammar_concepts"),
          fig("grammar_ancestors", "graph.json"),
          graph_pairs("layers", lambda x: f"`{x}`")),
    Table("scenes_capture", page("scenes_concepts"), fig("scenes_concepts", "graph.json"),
          scenes_capture),
    *(table
      for run, stem in (("scenes_concepts", "scenes"),
                        ("scenes_identifiable", "scenes_identifiable"),
                        ("scenes_identifiable_seed1", "scenes_identifiable_seed1"))
      for table in scenes_graph_tables(run, stem)),
    Table("scenes_steering_settings", page("scenes_concepts"),
          fig("scenes_concepts", "steering.json"), scenes_steering_settings),
    Table("scenes_steering", page("scenes_concepts"), fig("scenes_concepts", "steering.json"),
          scenes_steering),
    Table("prompted_subject", page("prompted_unlearning"),
          fig("prompted_unlearning", "subject.json"), prompted_subject),
    Table("prompted_capture", page("prompted_unlearning"),
          fig("prompted_unlearning", "graph.json"), scenes_capture),
    Table("prompted_timesteps", page("prompted_unlearning"),
          fig("prompted_unlearning", "graph.json"),
          level_table("timestep", lambda t: f"t = {number(t)}")),
    Table("prompted_graph", page("prompted_unlearning"), fig("prompted_unlearning", "graph.json"),
          graph_pairs("timesteps", lambda t: f"t = {number(t)}")),
    Table("prompted_negated", page("prompted_unlearning"),
          fig("prompted_unlearning", "graph.json"), prompted_negated),
    Table("prompted_removal_settings", page("prompted_unlearning"),
          fig("prompted_unlearning", "unlearning.json"), prompted_removal_settings),
    Table("prompted_removal", page("prompted_unlearning"),
          fig("prompted_unlearning", "unlearning.json"), prompted_removal),
    Table("minilm_world", page("minilm_wordnet"), fig("minilm_wordnet", "summary.json"),
          minilm_world),
    Table("minilm_mcc", page("minilm_wordnet"), fig("minilm_wordnet", "summary.json"),
          minilm_mcc),
    Table("minilm_graph", page("minilm_wordnet"), fig("minilm_wordnet", "graph.json"),
          minilm_graph),
    Table("minilm_patching", page("minilm_wordnet"), fig("minilm_wordnet", "steering.json"),
          minilm_patching),
    Table("real_peer", page("minilm_wordnet"), fig("real_peer", "real_peer.json"), real_peer),
    Table("synth_peer_data", page("synth_peer"),
          os.path.join("benchmarks", "results", "synth_peer.json"), synth_peer_data),
    Table("synth_peer", page("synth_peer"),
          os.path.join("benchmarks", "results", "synth_peer.json"), synth_peer),
    Table("synth_peer_identifiable", page("synth_peer"),
          os.path.join("benchmarks", "results", "synth_peer_identifiable.json"), synth_peer),
    Table("synth_peer_refined", page("synth_peer"),
          os.path.join("benchmarks", "results", "synth_peer_refined.json"), synth_peer),
    Table("synth_peer_pruned", page("synth_peer"),
          os.path.join("benchmarks", "results", "synth_peer_pruned.json"), synth_peer),
    *[Table(table_id, page("synth_peer"), os.path.join("benchmarks", "results", f"{name}.json"),
            build)
      for name, same in (("synth_peer_recipe", "synth_peer_same_features"),
                         ("synth_peer_seed2", "synth_peer_seed2_same_features"),
                         ("synth_peer_linkage", "synth_peer_linkage_same_features"),
                         ("synth_peer_seed2_linkage", "synth_peer_seed2_linkage_same_features"),
                         ("synth_peer_union", "synth_peer_union_same_features"),
                         ("synth_peer_seed2_union", "synth_peer_seed2_union_same_features"),
                         ("synth_peer_tree", "synth_peer_tree_same_features"),
                         ("synth_peer_seed2_tree", "synth_peer_seed2_tree_same_features"),
                         ("synth_peer_profiles", "synth_peer_profiles_same_features"),
                         ("synth_peer_seed2_profiles", "synth_peer_seed2_profiles_same_features"),
                         ("synth_peer_fitted", "synth_peer_fitted_same_features"),
                         ("synth_peer_seed2_fitted", "synth_peer_seed2_fitted_same_features"),
                         ("synth_peer_nested", "synth_peer_nested_same_features"),
                         ("synth_peer_seed2_nested", "synth_peer_seed2_nested_same_features"),
                         ("synth_peer_floored", "synth_peer_floored_same_features"),
                         ("synth_peer_seed2_floored", "synth_peer_seed2_floored_same_features"),
                         ("synth_peer_pursuit", "synth_peer_pursuit_same_features"),
                         ("synth_peer_seed2_pursuit", "synth_peer_seed2_pursuit_same_features"),
                         ("synth_peer_pruned_codes", "synth_peer_pruned_codes_same_features"),
                         ("synth_peer_seed2_pruned_codes",
                          "synth_peer_seed2_pruned_codes_same_features"),
                         ("synth_peer_remainder", "synth_peer_remainder_same_features"),
                         ("synth_peer_seed2_remainder", "synth_peer_seed2_remainder_same_features"),
                         ("synth_peer_merged", "synth_peer_merged_same_features"),
                         ("synth_peer_seed2_merged", "synth_peer_seed2_merged_same_features"))
      for table_id, build in ((name, synth_peer), (same, synth_peer_same_features))],
    Table("find_functions", page("find"), fig("find", "results.json"), find_functions),
    Table("find_units", page("find"), fig("find", "results.json"), find_units),
    Table("block_transplant", page("block_transplant"),
          fig("block_transplant", "block_transplant.json"), block_transplant),
    Table("sharded_memory", os.path.join("docs", "performance.md"),
          os.path.join("benchmarks", "results", "sharded_memory.json"), sharded_memory),
    Table("sharded_memory_batchtopk", os.path.join("docs", "performance.md"),
          os.path.join("benchmarks", "results", "sharded_memory_batchtopk.json"), sharded_memory),
    Table("minilm_port", os.path.join("docs", "models.md"), MINILM_ERRORS, minilm_port),
    Table("multi_sae_steps", os.path.join("docs", "performance.md"),
          os.path.join("benchmarks", "results", "multi_sae.json"), multi_sae_steps),
    Table("multi_sae_runs", os.path.join("docs", "performance.md"),
          os.path.join("benchmarks", "results", "multi_sae.json"), multi_sae_runs),
    Table("multi_sae_gpu_steps", os.path.join("docs", "performance.md"),
          os.path.join("benchmarks", "results", "multi_sae_gpu.json"), multi_sae_steps),
    Table("multi_sae_gpu_runs", os.path.join("docs", "performance.md"),
          os.path.join("benchmarks", "results", "multi_sae_gpu.json"), multi_sae_runs),
    Table("formats_export", os.path.join("docs", "formats.md"),
          os.path.join("tests", "fixtures", "ecosystem", "results.json"), formats_export),
    Table("formats_import", os.path.join("docs", "formats.md"),
          os.path.join("tests", "fixtures", "ecosystem", "results.json"), formats_import),
]


def markdown(header: list[str], rows: Rows) -> str:
  """A table as the pages write it."""
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(row) + " |" for row in rows]
  return "\n".join(lines)


def cells(line: str) -> list[str]:
  """The cells of one Markdown table line, stripped."""
  return [c.strip() for c in line.strip().strip("|").split("|")]


def page_table(path: str, table_id: str) -> tuple[list[str], Rows]:
  """The table under ``<!-- table: table_id -->`` in `path`: its header and rows of cells."""
  with open(os.path.join(ROOT, path)) as f:
    lines = f.read().splitlines()
  marker = f"<!-- table: {table_id} -->"
  starts = [i for i, line in enumerate(lines) if line.strip() == marker]
  assert len(starts) == 1, f"{path}: expected one '{marker}' line, found {len(starts)}"
  body = []
  for line in lines[starts[0] + 1:]:
    if not line.strip().startswith("|"):
      if body:
        break
      continue
    body.append(line)
  assert len(body) >= 2, f"{path}: no Markdown table under '{marker}'"
  return cells(body[0]), [cells(line) for line in body[2:]]


@pytest.mark.parametrize("table", TABLES, ids=[t.id for t in TABLES])
def test_table_matches_committed_json(table):
  want_header, want_rows = table.build(load(table.json))
  header, rows = page_table(table.page, table.id)
  where = f"{table.page}, table '{table.id}'"
  assert header == want_header, f"{where}: header {header} != {want_header} (from {table.json})"
  assert len(rows) == len(want_rows), (
      f"{where}: {len(rows)} rows on the page, {len(want_rows)} in {table.json}")
  for i, (row, want) in enumerate(zip(rows, want_rows)):
    assert len(row) == len(want), f"{where}, row {i + 1} ({want[0]}): {len(row)} cells"
    for column, got, expected in zip(want_header, row, want):
      assert got == expected, (
          f"{where}, row {i + 1} ({want[0]}), column '{column}': the page shows {got!r}, "
          f"{table.json} gives {expected!r}")


def test_every_committed_json_is_checked():
  committed = {os.path.relpath(p, ROOT)
               for p in glob.glob(os.path.join(ROOT, FIGURES, "*", "*.json"))}
  committed.add(os.path.join("tests", "fixtures", "ecosystem", "results.json"))
  committed.add(MINILM_ERRORS)
  committed.update(os.path.relpath(p, ROOT) for p in glob.glob(
      os.path.join(ROOT, "benchmarks", "results", "*.json")))
  checked = {t.json for t in TABLES}
  assert committed == checked, (
      f"committed JSON without a checked table: {sorted(committed - checked)}; "
      f"checked JSON that is not committed: {sorted(checked - committed)}")


DEMO_COLUMNS = ["name", "mcc", "mcc_minimal", "fvu", "l0", "dead_fraction"]


def demo_cell(value) -> str:
  """A value as the demo's table prints it (`identi.bin.cli.format_table`: 4 significant digits)."""
  if isinstance(value, float):
    return f"{value:.4g}"
  return "-" if value is None else str(value)


def test_readme_demo_output_matches_committed_json():
  """README.md shows what `make demo` prints; all columns but `seconds` are checked."""
  path = fig("hsm_identifiability", "results.json")
  records = load(path)["records"]
  with open(os.path.join(ROOT, "README.md")) as f:
    lines = f.read().splitlines()
  start = lines.index("<!-- demo-output -->")
  assert lines[start + 1].startswith("```"), "README.md: no code block under <!-- demo-output -->"
  block = lines[start + 2:lines.index("```", start + 2)]
  assert block[0].split()[:len(DEMO_COLUMNS)] == DEMO_COLUMNS, f"README.md demo header: {block[0]}"
  rows = [line.split() for line in block[2:2 + len(records)]]
  for record, row in zip(records, rows):
    for column, got in zip(DEMO_COLUMNS, row):
      want = demo_cell(record.get(column))
      assert got == want, (f"README.md demo output, row {record['name']}, column '{column}': the "
                           f"page shows {got!r}, {path} gives {want!r}")
  assert len(rows) == len(records) and all(rows), "README.md demo output: wrong number of rows"


def markdown_files() -> list[str]:
  return ["README.md"] + sorted(
      os.path.relpath(p, ROOT)
      for p in glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True))


def test_readme_is_short():
  with open(os.path.join(ROOT, "README.md")) as f:
    n = len(f.read().splitlines())
  assert n <= 160, f"README.md has {n} lines; keep it at most 160 and move detail to docs/"


# Internal process words (built from pieces so that this file does not match itself).
INTERNAL = re.compile("|".join(["issue" + r" [0-9]", "shared" + "/design", "this" + " session"]),
                      re.IGNORECASE)


def repo_text_files() -> list[str]:
  """Every .py and .md file of the repository (outside .git, the virtual environments and the
  test caches), relative to the root."""
  skip = {".git", ".venv", ".pytest_cache", "node_modules", "runs"}
  out = []
  for dirpath, dirnames, filenames in os.walk(ROOT):
    dirnames[:] = [d for d in dirnames if d not in skip and not d.startswith(".venv")]
    out += [os.path.relpath(os.path.join(dirpath, f), ROOT) for f in filenames
            if f.endswith((".py", ".md"))]
  return sorted(out)


def test_no_internal_process_words():
  hits = []
  for path in repo_text_files():
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
      hits += [f"{path}:{i + 1}: {line.strip()}" for i, line in enumerate(f)
               if INTERNAL.search(line)]
  assert not hits, "internal process named in the repository:\n" + "\n".join(hits)


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("path", markdown_files())
def test_relative_links_exist(path):
  with open(os.path.join(ROOT, path)) as f:
    text = f.read()
  missing = []
  for target in LINK.findall(text):
    if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
      continue
    file = target.split("#", 1)[0]
    resolved = os.path.normpath(os.path.join(ROOT, os.path.dirname(path), file))
    if not os.path.exists(resolved):
      missing.append(target)
  assert not missing, f"{path}: links to missing files: {missing}"


if __name__ == "__main__":
  for t in TABLES:
    print(f"{t.page}\n<!-- table: {t.id} -->\n{markdown(*t.build(load(t.json)))}\n")
