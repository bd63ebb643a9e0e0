"""The subject pipeline on the smoke config: capture, the timestep x level table, the graph."""

import json
import os

import numpy as np
import pytest

from conftest import smoke_config
from identi import data as data_lib
from identi.errors import ConfigError, DataError
from identi.subjects import experiment, scenes as scenes_lib
from identi.subjects.training import load_subject, scenes_config

# One xdist worker runs this module (make test: --dist loadgroup): its fixture is expensive.
pytestmark = pytest.mark.xdist_group("scenes_capture")


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("scenes"))
  config = smoke_config("scenes_concepts")
  return config, workdir, experiment.capture_subject(config, workdir)


def test_step_indices_pick_the_nearest_ddim_step():
  assert experiment.step_indices((1.0, 0.5, 0.2), 10) == [0, 5, 8]
  assert experiment.step_indices((0.79,), 50) == [10]


def test_capture_writes_shards_labelled_by_the_detectors(captured):
  config, workdir, summary = captured
  c = config.capture
  assert summary["samples"] == c.num_samples and summary["steps"] == [2, 5, 8, 9]
  labels = experiment.load_labels(workdir)
  _, _, subject_config = load_subject(experiment.subject_path(config))
  scenes = scenes_lib.make_scenes(scenes_config(subject_config))
  detected = scenes_lib.detect_concepts(scenes, labels["images"])
  for a_saved, a_now in zip(labels["a"], detected["a"]):
    np.testing.assert_array_equal(a_saved, a_now)
  for s in range(len(c.timesteps)):
    source = data_lib.open_source(os.path.join(workdir, experiment.CAPTURE_DIR, f"t{s}"))
    assert source.num_examples == c.num_samples and source.dim == summary["dim"]
    z = source.latents(np.arange(4))
    assert z.shape == (4, sum(scenes.config.level_sizes))
    np.testing.assert_array_equal(z[:, :18] > 0, labels["a"][0][:4])
  # Rerunning reuses the capture (same summary, files untouched).
  mtime = os.path.getmtime(os.path.join(workdir, experiment.CAPTURE_DIR, experiment.LABELS_FILE))
  assert experiment.capture_subject(config, workdir) == summary
  assert os.path.getmtime(os.path.join(workdir, experiment.CAPTURE_DIR,
                                       experiment.LABELS_FILE)) == mtime


def test_capture_is_deterministic(captured, tmp_path):
  config, workdir, _ = captured
  config = config.copy_and_resolve_references()
  config.capture.num_samples = 300
  config.data.num_eval = 100
  experiment.capture_subject(config, str(tmp_path))
  ours = data_lib.open_source(os.path.join(tmp_path, experiment.CAPTURE_DIR, "t1"))
  theirs = data_lib.open_source(os.path.join(workdir, experiment.CAPTURE_DIR, "t1"))
  rows = np.arange(128)  # The first batch has the same key in both runs.
  np.testing.assert_array_equal(ours.get(rows), theirs.get(rows))


def test_graph_table_and_outputs(captured):
  config, workdir, _ = captured
  result = experiment.run_subject_graph(config, workdir)
  assert [r["timestep"] for r in result["table"]] == list(config.capture.timesteps)
  for row in result["table"]:
    for l in (1, 2, 3):
      assert 0.0 <= row[f"level_{l}"] <= 1.0
  assert [p["levels"] for p in result["pairs"]] == [[1, 2], [2, 3]]
  assert result["pairs"][0]["true_edges"] == 18 and result["pairs"][1]["true_edges"] == 6
  with open(os.path.join(workdir, experiment.GRAPH_FILE)) as f:
    saved = json.load(f)
  assert saved["table"] == result["table"]
  assert all(os.path.getsize(p) > 100 for p in result["figures"])


def test_bad_configs_name_the_key(tmp_path):
  for key, value, needle in (("capture__reduce", "position", "capture.reduce"),
                             ("capture__timesteps", (0.5, 1.5), "capture.timesteps"),
                             ("graph__level_timesteps", (0, 1, 5), "graph.level_timesteps"),
                             ("data__num_eval", 10_000, "data.num_eval"),
                             ("steer__t_max", 0.0, "steer.t_max"),
                             ("steer__remove_strength", -1.0, "steer.remove_strength")):
    with pytest.raises(ConfigError, match=needle):
      experiment.capture_subject(smoke_config("scenes_concepts", **{key: value}), str(tmp_path))


def test_missing_capture_and_missing_checkpoint_are_clear(tmp_path):
  with pytest.raises(DataError, match="identi.bin.capture"):
    experiment.load_labels(str(tmp_path))
  config = smoke_config("scenes_concepts", subject__checkpoint=str(tmp_path / "none.bin"))
  with pytest.raises(Exception, match="none.bin"):
    experiment.capture_subject(config, str(tmp_path / "w"))
