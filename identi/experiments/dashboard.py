"""Dashboards of a subject pipeline's SAEs: one `identi.dashboard` site per site SAE.

`run(config, workdir)` reads what the graph stage left in `workdir` (``sae_<site>/``, the
activations ``capture/<site>/`` with their latents, ``capture/labels.npz``, ``graph.json``) and
writes ``<output>/<site>/`` for every site plus ``<output>/index.html`` linking them. The contexts
come from the capture's labels: for ``grammar`` the sampled token sequences (``tokens``, and each
row's ``seq_id`` and ``position``), for ``scenes`` the finished images of the trajectories.
Concepts are named by level (``w<i>``, the word that token ``w<i>`` is, ``phrase <i>``,
``sentence <i>``; ``part <i>``, ``object <i>``, ``scene <i>``), in the order of the shards'
latents (parts first). The graph columns link each unit to its parents and children in the
learned graph, on the dashboards of the neighbouring levels' sites.

The statistics cover every captured row, the SAEs' training rows included; the MCC shown on a
dashboard is therefore not the held-out number of ``graph.json``.
"""

from __future__ import annotations

import html
import json
import os
from typing import Any

import ml_collections

from identi import dashboard as dashboard_lib
from identi import io
from identi.dashboard_page import SITES_PAGE, STYLE
from identi.errors import ConfigError, DataError
from identi.experiments import capture as capture_lib
from identi.experiments.graph import GRAPH_FILE
from identi.subjects.base import config_kind, get_subject

DASHBOARD_DIR = "dashboard"
#: Concept name prefixes per level, by subject kind.
LEVEL_NAMES = {"grammar": ("w", "phrase ", "sentence "), "scenes": ("part ", "object ", "scene ")}
#: The grammar's special tokens (`identi.subjects.grammar`); word i is token 4 + i.
GRAMMAR_SPECIALS = ("<pad>", "<bos>", "<eos>", "<sep>")


def subject_sites(config: ml_collections.ConfigDict) -> tuple[list[str], list[int]]:
  """(site names, the site index of each graph level) of a grammar or scenes pipeline config."""
  kind = config_kind(config)
  if kind == "grammar":
    return list(config.capture.layers), list(config.graph.level_layers)
  if kind == "scenes":
    return ([f"t{k}" for k in range(len(config.capture.timesteps))],
            list(config.graph.level_timesteps))
  raise ConfigError(f"dashboards of subject pipelines know the kinds grammar and scenes, not "
                    f"{kind!r}; build one SAE's dashboard with --workdir=SAE_DIR --data=SHARDS")


def subject_contexts(kind: str, labels: dict[str, Any]) -> dashboard_lib.Contexts:
  """The contexts of a capture's rows (module docstring)."""
  if kind == "grammar":
    tokens = labels["tokens"]
    vocab = list(GRAMMAR_SPECIALS) + [f"w{i}" for i in range(int(tokens.max()) + 1 - 4)]
    return dashboard_lib.text_contexts(tokens, vocab, labels["position"], labels["seq_id"],
                                       capture_lib.LABELS_FILE)
  return dashboard_lib.image_contexts(labels["images"], capture_lib.LABELS_FILE)


def concept_names(kind: str, labels: dict[str, Any]) -> list[str]:
  """One name per latent column: level by level, parts first."""
  names = []
  for l, a in enumerate(capture_lib.levels_of(labels)):
    prefix = LEVEL_NAMES[kind][l] if l < len(LEVEL_NAMES[kind]) else f"L{l + 1}."
    names += [f"{prefix}{i}" for i in range(a.shape[1])]
  return names


def run(config: ml_collections.ConfigDict, workdir: str, output: str | None = None,
        top_k: int = 10) -> dict[str, Any]:
  """Writes the dashboard of every site SAE of a finished graph stage; returns the per-site
  summaries ('sites') and the path of the index page ('index')."""
  kind = config_kind(config)
  get_subject(kind).validate_config(config)
  sites, level_sites = subject_sites(config)
  workdir = os.path.abspath(workdir)
  output = os.path.abspath(output or os.path.join(workdir, DASHBOARD_DIR))
  if (os.path.isdir(output) and os.listdir(output)
      and not os.path.exists(os.path.join(output, dashboard_lib.MARK_FILE))):
    raise ConfigError(f"--output {output} exists and is not a dashboard "
                      f"(no {dashboard_lib.MARK_FILE}); pass a new or empty directory")
  for site in sites:
    if not os.path.isdir(os.path.join(workdir, f"sae_{site}")):
      raise DataError(f"{workdir} has no SAE at sae_{site}; run `python -m "
                      f"identi.bin.concept_graph --config=... --workdir={workdir}` first")
  labels = capture_lib.read_labels(workdir)
  contexts = subject_contexts(kind, labels)
  names = concept_names(kind, labels)
  graph_path = os.path.join(workdir, GRAPH_FILE)
  graph = None
  if os.path.exists(graph_path):
    with open(graph_path, encoding="utf-8") as f:
      graph = json.load(f)
  rows = []
  for index, site in enumerate(sites):
    levels = [l for l, s in enumerate(level_sites) if s == index]
    links = None
    if graph is not None and levels:
      l = levels[0]
      links = {}
      if l > 0:
        parent = sites[level_sites[l - 1]]
        links.update(parent_site=parent, parent_link=f"../{parent}/index.html")
      if l + 1 < len(level_sites):
        child = sites[level_sites[l + 1]]
        links.update(child_site=child, child_link=f"../{child}/index.html")
    summary = dashboard_lib.build_dashboard(
        os.path.join(workdir, f"sae_{site}"), os.path.join(capture_lib.capture_dir(workdir), site),
        os.path.join(output, site), contexts=contexts,
        graph=graph if links is not None else None,
        graph_level=levels[0] + 1 if links is not None else None, concept_names=names,
        graph_links=links, title=f"{kind} pipeline, site {site}", top_k=top_k)
    rows.append({"site": site, "units": summary["units"], "rows": summary["rows"],
                 "mcc": summary["mcc"], "contexts": summary["contexts"],
                 "level": levels[0] + 1 if levels else None})
  title = f"{kind} pipeline: SAE dashboards"
  cells = "".join(_site_row(r) for r in rows)
  io.write_bytes(os.path.join(output, "index.html"),
                 SITES_PAGE.format(title=html.escape(title), style=STYLE, rows=cells).encode())
  io.write_json(os.path.join(output, dashboard_lib.MARK_FILE),
                {"workdir": workdir, "kind": kind, "sites": rows})
  return {"sites": rows, "index": os.path.join(output, "index.html")}


def _site_row(r: dict[str, Any]) -> str:
  """One row of the sites page: the site (linked to its dashboard), units, rows, MCC, contexts."""
  site = html.escape(r["site"])
  level = "" if r["level"] is None else f" (level {r['level']})"
  mcc = "" if r["mcc"] is None else f"{r['mcc']:.3f}"
  return (f'<tr><td class="t"><a href="{site}/index.html">{site}</a>{level}</td>'
          f'<td>{r["units"]}</td><td>{r["rows"]}</td><td>{mcc}</td>'
          f'<td class="t">{r["contexts"] or ""}</td></tr>')
