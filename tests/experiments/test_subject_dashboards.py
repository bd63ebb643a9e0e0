"""identi.experiments.dashboard: the dashboards of a subject pipeline's SAEs, with its contexts."""
import json
import os

import numpy as np
import pytest

from identi.experiments import dashboard
from identi.experiments.capture import read_labels


@pytest.mark.xdist_group("grammar")
def test_grammar_pipeline_dashboards(grammar_run, tmp_path):
  out = tmp_path / "dash"
  result = dashboard.run(grammar_run.config, grammar_run.workdir, output=str(out), top_k=3)
  layers = list(grammar_run.config.capture.layers)
  assert [r["site"] for r in result["sites"]] == layers
  assert all(r["contexts"] == "text" and r["mcc"] is not None for r in result["sites"])
  index = (out / "index.html").read_text()
  assert all(f'href="{layer}/index.html"' in index for layer in layers)
  labels = read_labels(grammar_run.workdir)
  # The middle level's dashboard links parents and children to its neighbours' dashboards.
  mid = layers[grammar_run.config.graph.level_layers[1]]
  text = (out / mid / "data.js").read_text()
  dash = json.loads(text[len("window.DASH = "):-2])
  assert dash["meta"]["graph"]["level"] == 2
  assert dash["meta"]["graph"]["parent_link"].endswith("/index.html")
  assert dash["vocab"][:4] == ["<pad>", "<bos>", "<eos>", "<sep>"]
  assert len(dash["concepts"]) == sum(labels[k].shape[1] for k in labels if k[1:].isdigit())
  assert dash["concepts"][0] == "w0" and "phrase 0" in dash["concepts"]
  assert dash["meta"]["rows"] == labels["seq_id"].shape[0]
  assert len(dash["cols"]["parents"]) == dash["meta"]["units"]
  assert os.path.exists(out / "dashboard.json")
  assert np.isfinite(dash["meta"]["mcc"])
