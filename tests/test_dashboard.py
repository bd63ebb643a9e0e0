"""identi.dashboard: the numbers it writes, the page in headless Chromium, and its bad-input errors.

The browser tests load the written index.html from the file system with `chromium --headless
--dump-dom` and read what the page's script records on <body> (rows rendered, render times, the
open unit); any console message fails them. `make test` installs the Debian package chromium when
it is missing (`make chromium`).
"""
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from identi import data as data_lib
from identi import dashboard, metrics
from identi.errors import ConfigError, DataError
from identi.train import load_trained

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--enable-logging=stderr",
                  "--v=0")
ROWS, SEQS, T = 320, 32, 12

# The module's fixtures are expensive: one worker runs all its tests (make test's --dist loadgroup).
pytestmark = pytest.mark.xdist_group("dashboard")


def chromium_binary() -> str:
  for name in ("chromium", "chromium-browser", "google-chrome"):
    path = shutil.which(name)
    if path:
      return path
  pytest.fail("headless Chromium is missing, and the dashboard tests load pages in it: run "
              "`make chromium` (as root: apt-get update && apt-get install -y chromium)")


def load_page(path: str, tmp_path, fragment: str = "") -> tuple[dict[str, str], str, list[str]]:
  """(attributes of <body>, the DOM, console lines) of a local page after its load event."""
  proc = subprocess.run(
      [chromium_binary(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}",
       "--dump-dom", f"file://{os.path.abspath(path)}{fragment}"],
      capture_output=True, text=True, timeout=120, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  body = re.search(r"<body([^>]*)>", proc.stdout)
  assert body, proc.stdout[:2000]
  attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1)))
  console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
  return attrs, proc.stdout, console


def read_data_js(site) -> dict:
  with open(os.path.join(site, "data.js"), encoding="utf-8") as f:
    text = f.read()
  assert text.startswith("window.DASH = ") and text.endswith(";\n")
  return json.loads(text[len("window.DASH = "):-2])


def read_chunk(site, k: int) -> list:
  with open(os.path.join(site, "units", f"{k}.js"), encoding="utf-8") as f:
    text = f.read()
  prefix = f"DASH_CHUNK({k}, "
  assert text.startswith(prefix) and text.endswith(");\n")
  return json.loads(text[len(prefix):-3])


@pytest.fixture(scope="module")
def text_site(tmp_path_factory, trained_workdir):
  """A dashboard of the smoke TopK SAE over 320 rows with latents and text contexts (32
  sequences of 10 rows each), built in batches of 64 rows; (site, x, z, contexts file, codes)."""
  tmp = tmp_path_factory.mktemp("dashboard")
  rng = np.random.default_rng(0)
  x = np.abs(rng.normal(size=(ROWS, 16))).astype(np.float32)
  z = rng.normal(size=(ROWS, 5)).astype(np.float32)
  data_lib.write_shards(tmp / "data", x, z=z)
  seq_id = np.repeat(np.arange(SEQS), ROWS // SEQS)
  positions = np.tile(np.arange(ROWS // SEQS), SEQS) + 1
  tokens = rng.integers(0, 20, size=(SEQS, T))
  vocab = np.array([f"tok<{i}>" for i in range(20)])
  np.savez(tmp / "contexts.npz", tokens=tokens, vocab=vocab, positions=positions, seq_id=seq_id,
           concepts=np.array([f"concept {i}" for i in range(5)]))
  site = str(tmp / "site")
  dashboard.build_dashboard(trained_workdir, str(tmp / "data"), site,
                            contexts=str(tmp / "contexts.npz"), top_k=4, batch_size=64)
  _, model, variables = load_trained(trained_workdir)
  codes = np.asarray(model.apply(variables, x, method="encode"))
  return site, x, z, str(tmp / "contexts.npz"), codes


def test_table_numbers_match_the_codes(text_site):
  site, _, z, _, codes = text_site
  dash = read_data_js(site)
  assert dash["meta"]["units"] == 64 and dash["meta"]["rows"] == ROWS
  cols = dash["cols"]
  np.testing.assert_allclose(cols["rate"], (codes > 0).mean(0), rtol=1e-3)
  count = np.maximum((codes > 0).sum(0), 1)
  np.testing.assert_allclose(cols["mean"], np.where(codes > 0, codes, 0).sum(0) / count,
                             rtol=1e-3, atol=1e-6)
  # The matching is identi's MCC (Pearson, fitted on the first half, scored on the second).
  expected = metrics.mcc(z, codes)
  assert dash["meta"]["mcc"] == pytest.approx(expected.mcc, rel=1e-4)
  for concept, unit in enumerate(expected.matching):
    assert cols["concept"][unit] == concept
    assert cols["corr"][unit] == pytest.approx(expected.per_concept[concept], abs=2e-3)
  assert dash["concepts"][0] == "concept 0" and dash["vocab"][3] == "tok<3>"


def test_panels_hold_top_rows_histograms_and_token_codes(text_site):
  site, _, _, contexts_path, codes = text_site
  chunk = read_chunk(site, 0)
  assert len(chunk) == 64
  with np.load(contexts_path) as f:
    tokens, seq_id, positions = f["tokens"], f["seq_id"], f["positions"]
  for u, rec in enumerate(chunk):
    active = int((codes[:, u] > 0).sum())
    assert sum(rec["h"]) == active
    assert len(rec["top"]) == min(4, active)
    assert len(rec["nn"]) == dashboard.NEIGHBOURS and u not in [j for j, _ in rec["nn"]]
    if not active:
      continue
    top = rec["top"][0]
    assert codes[top["r"], u] == pytest.approx(codes[:, u].max(), rel=1e-4)
    # The example is the row's sequence, its own token marked, each token shaded by the unit's
    # code at the row reading it (-1 where no row reads it).
    s = seq_id[top["r"]]
    first = positions[seq_id == s].min()
    assert top["t"] == tokens[s, first:first + len(top["t"])].tolist()
    assert top["t"][top["c"]] == tokens[s, positions[top["r"]]]
    rows = {p: r for r, p in zip(np.flatnonzero(seq_id == s), positions[seq_id == s])}
    expect = [round(codes[rows[first + j], u] / codes[top["r"], u] * 100)
              if first + j in rows else -1 for j in range(len(top["t"]))]
    np.testing.assert_allclose(top["a"], expect, atol=1)


def test_index_and_panel_render_in_chromium(text_site, tmp_path):
  site, _, _, _, codes = text_site
  unit = int(np.argmax((codes > 0).sum(0)))
  attrs, dom, console = load_page(os.path.join(site, "index.html"), tmp_path, f"#u={unit}")
  assert console == []
  assert attrs["data-rows"] == "64" and len(re.findall(r"<tr data-u=\"\d+\"", dom)) == 64
  assert attrs["data-unit"] == str(unit)
  panel = dom[dom.index('<aside id="panel"'):dom.index("</aside>")]
  assert f"<h2>Unit {unit}</h2>" in panel and "<svg" in panel
  assert len(re.findall(r'<div class="ex">', panel)) == 4
  assert "tok&lt;" in panel  # Token strings are escaped.


def test_image_contexts_write_png_files(tmp_path, trained_workdir):
  from PIL import Image  # pylint: disable=import-outside-toplevel

  rng = np.random.default_rng(1)
  x = np.abs(rng.normal(size=(64, 16))).astype(np.float32)
  np.save(tmp_path / "x.npy", x)
  images = rng.uniform(-1, 1, size=(64, 6, 5, 1)).astype(np.float32)
  contexts = dashboard.image_contexts(images)
  summary = dashboard.build_dashboard(trained_workdir, str(tmp_path / "x.npy"),
                                      str(tmp_path / "site"), contexts=contexts, top_k=3)
  assert summary["contexts"] == "image" and summary["mcc"] is None
  rec = next(r for r in read_chunk(tmp_path / "site", 0) if r["top"])
  e = rec["top"][0]
  assert e["img"] == f"img/{e['r']}.png"
  png = np.asarray(Image.open(tmp_path / "site" / e["img"]))
  lo, hi = images.min(), images.max()
  np.testing.assert_allclose(png, np.round((images[e["r"], ..., 0] - lo) / (hi - lo) * 255),
                             atol=1)
  assert "concept" not in read_data_js(tmp_path / "site")["cols"]


def test_rebuild_replaces_the_site(tmp_path, trained_workdir):
  x = np.abs(np.random.default_rng(2).normal(size=(40, 16))).astype(np.float32)
  np.save(tmp_path / "x.npy", x)
  site = tmp_path / "site"
  dashboard.build_dashboard(trained_workdir, str(tmp_path / "x.npy"), str(site))
  (site / "stale.txt").write_text("old")
  dashboard.build_dashboard(trained_workdir, str(tmp_path / "x.npy"), str(site))
  assert not (site / "stale.txt").exists() and (site / "index.html").exists()
  assert sorted(os.listdir(tmp_path)) == ["site", "x.npy"]  # No temporary directory is left.


def test_graph_columns_from_a_pipeline_graph(tmp_path, trained_workdir):
  workdir = tmp_path / "sae_block_0"
  shutil.copytree(trained_workdir, workdir)
  graph = {"level_layers": ["embed", "block_0", "block_1"],
           "table": [{"layer": "embed"}, {"layer": "block_0"}, {"layer": "block_1"}],
           "edges": [{"level_pair": [1, 2], "from": 7, "to": 3, "score": 1.0},
                     {"level_pair": [1, 2], "from": 2, "to": 3, "score": 1.0},
                     {"level_pair": [2, 3], "from": 3, "to": 1, "score": 1.0}]}
  (tmp_path / "graph.json").write_text(json.dumps(graph))
  x = np.abs(np.random.default_rng(3).normal(size=(40, 16))).astype(np.float32)
  np.save(tmp_path / "x.npy", x)
  summary = dashboard.build_dashboard(str(workdir), str(tmp_path / "x.npy"), str(tmp_path / "s"),
                                      graph=str(tmp_path / "graph.json"))
  assert summary["graph"] == {"level": 2}
  cols = read_data_js(tmp_path / "s")["cols"]
  assert cols["parents"][3] == [2, 7] and cols["children"][3] == [1]
  assert dashboard.graph_level_of({"level_timesteps": [0.2, 0.6],
                                   "table": [{"timestep": 0.6}, {"timestep": 0.2}]}, "t1") == 1


def test_sixteen_thousand_units_render_a_page_and_open_a_unit(tmp_path):
  d_sae, n_concepts, rows, k = 16384, 512, 4096, 4
  rng = np.random.default_rng(4)
  count = rng.integers(0, rows, d_sae)
  top_rows = rng.integers(0, rows, (d_sae, k))
  corr = rng.uniform(0, 1, (n_concepts, d_sae)).astype(np.float32)
  matching = rng.permutation(d_sae)[:n_concepts]
  stats = dashboard.UnitStats(
      num_rows=rows, count=count, total=count * 2.0, max=rng.uniform(1, 5, d_sae),
      top_values=np.sort(rng.uniform(0.1, 5, (d_sae, k)))[:, ::-1], top_rows=top_rows,
      hist=rng.integers(0, 50, (d_sae, dashboard.HIST_BINS)),
      mcc=metrics.MCCResult(0.5, rng.uniform(0, 1, n_concepts), matching, corr))
  nn = (rng.integers(0, d_sae, (d_sae, dashboard.NEIGHBOURS)),
        rng.uniform(0, 1, (d_sae, dashboard.NEIGHBOURS)))
  neighbours = ([sorted(rng.integers(0, 64, 3).tolist()) for _ in range(d_sae)],
                [sorted(rng.integers(0, 64, 2).tolist()) for _ in range(d_sae)])
  files, _ = dashboard.site_files(stats, nn, {"title": "16k", "data": "x.npy", "graph": None},
                                  neighbours=neighbours)
  dashboard.write_site(str(tmp_path / "site"), files)
  attrs, dom, console = load_page(str(tmp_path / "site" / "index.html"), tmp_path, "#u=16000")
  assert console == []
  assert attrs["data-units"] == str(d_sae) and attrs["data-rows"] == str(dashboard.PAGE_ROWS)
  # The page times itself (navigation start to the laid-out first page: `data-ready-ms`); speed
  # is reported in docs/dashboard.md, not asserted here.
  assert float(attrs["data-ready-ms"]) > 0, attrs
  # Opening a unit turns to its page.
  assert attrs["data-unit"] == "16000" and '<tr data-u="16000" class="sel">' in dom


def test_missing_workdir_is_a_one_line_error(tmp_path):
  np.save(tmp_path / "x.npy", np.zeros((8, 16), np.float32))
  with pytest.raises(ConfigError, match="does not exist; pass the --workdir"):
    dashboard.build_dashboard(str(tmp_path / "nope"), str(tmp_path / "x.npy"), str(tmp_path / "s"))


def test_contexts_of_another_length_are_refused(text_site, tmp_path, trained_workdir):
  _, _, _, contexts_path, _ = text_site
  np.save(tmp_path / "x.npy", np.zeros((100, 16), np.float32))
  with pytest.raises(DataError, match=f"contexts have {ROWS} rows but .* has 100; pass contexts"):
    dashboard.build_dashboard(trained_workdir, str(tmp_path / "x.npy"), str(tmp_path / "s"),
                              contexts=contexts_path)
  assert not (tmp_path / "s").exists()


def test_data_of_another_width_is_refused(tmp_path, trained_workdir):
  np.save(tmp_path / "x.npy", np.zeros((10, 8), np.float32))
  with pytest.raises(DataError, match="has 8 features per row but the SAE was trained on 16"):
    dashboard.build_dashboard(trained_workdir, str(tmp_path / "x.npy"), str(tmp_path / "s"))


@pytest.mark.parametrize("arrays, message", [
    ({"tokens": np.zeros(5, int), "vocab": np.array(["a"]), "positions": np.zeros(5, int)},
     "'tokens' has shape \\(5,\\)"),
    ({"tokens": np.zeros((5, 3), int), "vocab": np.array(["a"]), "positions": np.full(5, 3)},
     "'positions' holds values outside \\[0, 3\\)"),
    ({"tokens": np.full((5, 3), 4), "vocab": np.array(["a"]), "positions": np.zeros(5, int)},
     "'vocab' has 1 entries"),
    ({"tokens": np.zeros((5, 3), int), "positions": np.zeros(5, int)}, "but no vocab"),
    ({"images": np.zeros((5, 4, 4, 2), np.uint8)}, "C = 1, 3 or 4"),
    ({"images": np.zeros((5, 4, 4), bool)}, "pass uint8 or float images"),
])
def test_bad_contexts_files_are_refused(tmp_path, arrays, message):
  np.savez(tmp_path / "c.npz", **arrays)
  with pytest.raises(DataError, match=message):
    dashboard.load_contexts(str(tmp_path / "c.npz"))


def test_output_that_is_not_a_dashboard_is_left_alone(tmp_path):
  (tmp_path / "out").mkdir()
  (tmp_path / "out" / "notes.txt").write_text("mine")
  with pytest.raises(ConfigError, match="exists and is not a dashboard"):
    dashboard.write_site(str(tmp_path / "out"), {"index.html": "x"})
  assert os.listdir(tmp_path / "out") == ["notes.txt"]


def test_graph_without_a_known_level_is_refused(tmp_path, trained_workdir):
  np.save(tmp_path / "x.npy", np.zeros((10, 16), np.float32))
  with pytest.raises(ConfigError, match="pass --graph_level=L"):
    dashboard.build_dashboard(trained_workdir, str(tmp_path / "x.npy"), str(tmp_path / "s"),
                              graph={"edges": []})
  with pytest.raises(DataError, match="links unit 99 at level 1 but the SAE has 64 units"):
    dashboard.build_dashboard(trained_workdir, str(tmp_path / "x.npy"), str(tmp_path / "s"),
                              graph={"edges": [{"level_pair": [1, 2], "from": 99, "to": 0}]},
                              graph_level=1)
