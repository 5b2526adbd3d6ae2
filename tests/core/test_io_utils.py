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


def test_write_errors_name_the_final_path_and_what_it_is():
  import errno  # pylint: disable=g-import-not-at-top

  class TensorFlowError(Exception):
    message = ("{{function_node __wrapped__SaveV2_device_/job:localhost/"
               "replica:0/task:0/device:CPU:0}} /runs/voc/ckpt-7_temp/"
               "part-00000-of-00001.data-00000-of-00001.tempstate123; No "
               "space left on device [Op:SaveV2]")

  assert io_utils.explain_write_error(TensorFlowError()) == (
      "Cannot write /runs/voc/ckpt-7 (a checkpoint): no space left on the "
      "device.")
  read_only = OSError(errno.EROFS, "Read-only file system",
                      "/models/deeplab/.tmp-4242-v3")
  assert io_utils.explain_write_error(read_only) == (
      "Cannot write /models/deeplab/3 (the SavedModel): the filesystem is "
      "read-only.")
  assert io_utils.explain_write_error(ValueError("other")) is None
  assert io_utils.explain_write_error(OSError(errno.ENOENT, "x")) is None
