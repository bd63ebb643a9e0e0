"""identi.io: atomic outputs are whole, keep no temporary files, and get the permissions a file
written in place would get."""

import json
import os
import stat

import numpy as np
import pytest

from identi import io


def _mode(path):
  return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_atomic_outputs_get_the_umask_mode_not_the_temporary_files(tmp_path, umask):
  old = os.umask(umask)
  try:
    assert io.new_file_mode() == 0o666 & ~umask
    io.write_json(str(tmp_path / "a.json"), {"x": 1})
    io.write_bytes(str(tmp_path / "b.bin"), b"abc")
    io.write_jsonl(str(tmp_path / "c.jsonl"), [{"step": 1}])
    with open(tmp_path / "plain", "w") as f:
      f.write("")
  finally:
    os.umask(old)
  for name in ("a.json", "b.bin", "c.jsonl"):
    assert _mode(tmp_path / name) == _mode(tmp_path / "plain") == 0o666 & ~umask, name
  assert sorted(os.listdir(tmp_path)) == ["a.json", "b.bin", "c.jsonl", "plain"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
  path = str(tmp_path / "a.json")
  io.write_json(path, {"x": 1})
  with pytest.raises(TypeError):
    io.write_bytes(path, "text, not bytes")  # Fails inside the temporary file's write.
  with open(path, encoding="utf-8") as f:
    assert json.load(f) == {"x": 1}
  assert os.listdir(tmp_path) == ["a.json"]


def test_jsonl_reader_skips_a_torn_last_line(tmp_path):
  path = str(tmp_path / "m.jsonl")
  io.append_jsonl(path, {"step": 1})
  with open(path, "a") as f:
    f.write('{"step": 2, "lo')
  assert io.read_jsonl(path) == [{"step": 1}]


def test_atomic_path_replaces_on_success_and_leaves_nothing_on_error(tmp_path):
  path = tmp_path / "codes.npy"
  with io.atomic_path(str(path)) as tmp:
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(2, 3))
    out[:] = 1.0
    out.flush()
    del out
    assert not path.exists()
  np.testing.assert_array_equal(np.load(path), np.ones((2, 3), np.float32))
  assert _mode(path) == io.new_file_mode()
  with pytest.raises(RuntimeError):
    with io.atomic_path(str(tmp_path / "other.npy")) as tmp:
      np.save(tmp, np.zeros(2))
      raise RuntimeError("killed mid-write")
  assert os.listdir(tmp_path) == ["codes.npy"]
