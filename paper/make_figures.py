"""Reproduces every figure of the paper from fixed configs and seeds: `make figures`.

Each figure is written as PNG and PDF with its numbers as JSON under paper/figures/<name>/.
`--smoke` runs every figure at toy size (the tests do this). One figure: `--only=NAME`.
"""

from __future__ import annotations

import os

from absl import flags

from identi.bin import cli
from identi.experiments import graph, identify, steer
from identi.train import load_config
from paper import (amortisation_gap, block_transplant, leak_sweep, minimality_sweep, phase_diagram,
                   sample_size, seed_consistency)
from paper.common import OUT, ROOT, SMOKE

_ONLY = flags.DEFINE_string("only", "", "Run only this figure.")


def _config(config_file: str, smoke: bool, **overrides):
  """configs/<config_file> (its smoke variant with `smoke`) with dotted keys as 'sae__d_sae'
  overridden."""
  config = load_config(os.path.join(ROOT, "configs", config_file + (":smoke" if smoke else "")))
  for key, value in overrides.items():
    *parents, leaf = key.split("__")
    node = config
    for parent in parents:
      node = node[parent]
    node[leaf] = value
  return config


def _identify(name: str, config_file: str, out: str, smoke: bool, **overrides) -> list[str]:
  config = _config(config_file, smoke, **overrides)
  workdir = os.path.join(out, name)
  identify.run(config, workdir)
  return [os.path.join(workdir, f"{identify.FIGURE_STEM}.{ext}") for ext in ("png", "pdf")] + [
      os.path.join(workdir, "results.json")]


def hsm_identifiability(out: str, smoke: bool) -> list[str]:
  """Every SAE kind, the identifiable recipe and the baselines on the eps = 0.05 world
  (configs/identify_hsm.py, `make demo`)."""
  return _identify("hsm_identifiability", "identify_hsm.py", out, smoke)


def hsm_identifiability_1x(out: str, smoke: bool) -> list[str]:
  """The k-sparse SAE kinds and the identifiable recipe on the eps = 0.05 world at 1x width: as
  many latents as true concepts (the user who knows the count)."""
  config = load_config(os.path.join(ROOT, "configs", "identify_hsm.py" + (":smoke" if smoke
                                                                            else "")))
  return _identify("hsm_identifiability_1x", "identify_hsm.py", out, smoke,
                   sae__d_sae=config.world.level_sizes[0],
                   methods="topk,batchtopk,matryoshka,identifiable")


def hsm_identifiability_eps03(out: str, smoke: bool) -> list[str]:
  """The SAE kinds and baselines on the weak-selection world (configs/identify_hsm_eps03.py)."""
  return _identify("hsm_identifiability_eps03", "identify_hsm_eps03.py", out, smoke)


def concept_graph(out: str, smoke: bool) -> list[str]:
  """Learned vs true concept graph, steering per level, emergence (configs/concept_graph_hsm.py)."""
  variant = ":smoke" if smoke else ""
  config = load_config(os.path.join(ROOT, "configs", "concept_graph_hsm.py" + variant))
  workdir = os.path.join(out, "concept_graph")
  paths = [graph.run(config, workdir)["figure"], steer.run(config, workdir)["figure"]]
  return paths + [os.path.join(workdir, name) for name in ("graph.json", "steering.json")]


def _graph_and_steer(name: str, out: str, smoke: bool, stems: tuple[str, ...],
                     files: tuple[str, ...], steering: bool = True, config_name: str = "",
                     **overrides) -> list[str]:
  """Runs the graph stage (capturing and training what is missing) and, with `steering`, the
  steering stage of configs/<config_name or name>.py (with `overrides`, as `_config`'s) into
  out/<name>; returns the figures `stems` (PNG and PDF) and the JSON `files` there."""
  config = _config(f"{config_name or name}.py", smoke, **overrides)
  workdir = os.path.join(out, name)
  graph.run(config, workdir)
  if steering:
    steer.run(config, workdir)
  return [os.path.join(workdir, f"{stem}.{ext}") for stem in stems for ext in ("png", "pdf")] + [
      os.path.join(workdir, f) for f in files]


def grammar_concepts(out: str, smoke: bool) -> list[str]:
  """The transformer subject: layer x level MCC, learned vs true grammar graph, steering bars
  (configs/grammar_concepts.py)."""
  return _graph_and_steer("grammar_concepts", out, smoke,
                          ("layer_mcc", "concept_graph", "steering"),
                          ("steering.json", "graph.json"))


def scenes_concepts(out: str, smoke: bool) -> list[str]:
  """The diffusion subject: samples, timestep x level MCC, the concept graph (learned vs true, and
  with each node's top images), steering grids and scores (configs/scenes_concepts.py)."""
  return _graph_and_steer("scenes_concepts", out, smoke,
                          ("samples", "timestep_mcc", "concept_graph", "concept_nodes",
                           "steering_grid", "steering"), ("steering.json", "graph.json"))


def grammar_identifiable(out: str, smoke: bool) -> list[str]:
  """The transformer subject with the identifiable recipe and a sign-aware graph: layer x level
  MCC, learned vs true grammar graph (configs/grammar_identifiable.py)."""
  return _graph_and_steer("grammar_identifiable", out, smoke, ("layer_mcc", "concept_graph"),
                          ("graph.json",), steering=False)


def grammar_ancestors(out: str, smoke: bool) -> list[str]:
  """The transformer subject with the identifiable recipe and shared ancestors at every site:
  layer x level MCC, learned vs true grammar graph (configs/grammar_ancestors.py)."""
  return _graph_and_steer("grammar_ancestors", out, smoke, ("layer_mcc", "concept_graph"),
                          ("graph.json",), steering=False)


def scenes_identifiable(out: str, smoke: bool) -> list[str]:
  """The diffusion subject with the identifiable recipe (with shared ancestors where its stage
  refines) and a sign-aware graph: timestep x level MCC, learned vs true graph
  (configs/scenes_identifiable.py)."""
  return _graph_and_steer("scenes_identifiable", out, smoke,
                          ("timestep_mcc", "concept_graph", "concept_nodes"), ("graph.json",),
                          steering=False)


def scenes_identifiable_seed1(out: str, smoke: bool) -> list[str]:
  """configs/scenes_identifiable.py with the SAEs' training seed 1 (same capture): does the graph
  of the recipe hold across seeds?"""
  return _graph_and_steer("scenes_identifiable_seed1", out, smoke,
                          ("timestep_mcc", "concept_graph"), ("graph.json",), steering=False,
                          config_name="scenes_identifiable", train__seed=1)


def prompted_unlearning(out: str, smoke: bool) -> list[str]:
  """The prompted diffusion subject: timestep x level MCC, the sign-aware concept graph, concept
  removal under prompting (prompt x method images, removal against preservation)
  (configs/prompted_unlearning.py)."""
  return _graph_and_steer("prompted_unlearning", out, smoke,
                          ("samples", "timestep_mcc", "concept_graph", "concept_nodes",
                           "unlearning_grid", "unlearning_tradeoff"),
                          ("unlearning.json", "graph.json"))


def minilm_wordnet(out: str, smoke: bool) -> list[str]:
  """The pretrained all-MiniLM-L6-v2 on WordNet: layer x level MCC with floors, the graph
  lemma -> category -> top against WordNet, ablation of category units
  (configs/minilm_wordnet.py)."""
  variant = ":smoke" if smoke else ""
  config = load_config(os.path.join(ROOT, "configs", "minilm_wordnet.py" + variant))
  workdir = os.path.join(out, "minilm_wordnet")
  graph.run(config, workdir)
  stems = ("layer_mcc", "layer_floors", "concept_graph", "ablation")
  return [os.path.join(workdir, f"{stem}.{ext}") for stem in stems for ext in ("png", "pdf")] + [
      os.path.join(workdir, name) for name in ("summary.json", "graph.json", "steering.json")]


FIGURES = {
    "hsm_identifiability": hsm_identifiability,
    "hsm_identifiability_1x": hsm_identifiability_1x,
    "hsm_identifiability_eps03": hsm_identifiability_eps03,
    "phase_diagram": phase_diagram.run,
    "minimality_sweep": minimality_sweep.run,
    "sample_size": sample_size.run,
    "amortisation_gap": amortisation_gap.run,
    "leak_sweep": leak_sweep.run,
    "seed_consistency": seed_consistency.run,
    "concept_graph": concept_graph,
    "grammar_concepts": grammar_concepts,
    "scenes_concepts": scenes_concepts,
    "grammar_identifiable": grammar_identifiable,
    "grammar_ancestors": grammar_ancestors,
    "scenes_identifiable": scenes_identifiable,
    "scenes_identifiable_seed1": scenes_identifiable_seed1,
    "prompted_unlearning": prompted_unlearning,
    "minilm_wordnet": minilm_wordnet,
    "block_transplant": block_transplant.run,
}


def main(argv):
  del argv
  for name, figure in FIGURES.items():
    if _ONLY.value and name != _ONLY.value:
      continue
    for path in figure(OUT.value, SMOKE.value):
      print(f"{name}: {path}")


if __name__ == "__main__":
  cli.run(main)
