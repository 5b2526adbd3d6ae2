"""Atomic writes: a file is either absent, the old one, or complete."""

import json
import os

import pytest

from deeplab.core import io_utils


def test_atomic_write_json_creates_folders_and_leaves_no_temporary(tmp_path):
  path = tmp_path / "a" / "b" / "metrics.json"
  io_utils.atomic_write_json(str(path), {"miou": 0.5})
  assert json.loads(path.read_text()) == {"miou": 0.5}
  assert os.listdir(path.parent) == ["metrics.json"]


def test_an_interrupted_write_keeps_the_previous_file(tmp_path, monkeypatch):
  path = tmp_path / "report.json"
  io_utils.atomic_write_json(str(path), {"version": 1})

  class Interrupted(Exception):
    pass

  real_fdopen = os.fdopen

  def fdopen_interrupted_half_way(handle, mode):
    f = real_fdopen(handle, mode)
    f.write(b'{"vers')  # Half the data reaches the temporary file.
    f.close()
    raise Interrupted()

  monkeypatch.setattr(os, "fdopen", fdopen_interrupted_half_way)
  with pytest.raises(Interrupted):
    io_utils.atomic_write_json(str(path), {"version": 2})
  monkeypatch.undo()
  assert json.loads(path.read_text()) == {"version": 1}
  assert os.listdir(tmp_path) == ["report.json"]  # No temporary left.
