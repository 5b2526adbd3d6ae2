"""Two local workers train with MultiWorkerMirroredStrategy (TF_CONFIG)."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

WORKER = pathlib.Path(__file__).with_name("multi_worker_worker.py")


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


@pytest.mark.slow
def test_two_workers_end_with_identical_weights(tmp_path):
  workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
  model_dir = tmp_path / "train"
  processes = []
  for index in range(2):
    tf_config = {"cluster": {"worker": workers},
                 "task": {"type": "worker", "index": index}}
    env = dict(os.environ, TF_CONFIG=json.dumps(tf_config),
               TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    processes.append(subprocess.Popen(
        [sys.executable, str(WORKER), str(model_dir),
         str(tmp_path / f"worker{index}.npz")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True))
  try:
    errors = [p.communicate(timeout=240)[1] for p in processes]
  finally:
    for p in processes:
      if p.poll() is None:
        p.kill()
  for p, err in zip(processes, errors):
    assert p.returncode == 0, err[-3000:]

  chief = np.load(tmp_path / "worker0.npz")
  other = np.load(tmp_path / "worker1.npz")
  assert int(chief["step"]) == int(other["step"]) == 3
  assert bool(chief["is_chief"]) and not bool(other["is_chief"])
  names = [n for n in chief.files if n not in ("step", "is_chief")]
  assert len(names) > 100
  for name in names:
    np.testing.assert_array_equal(chief[name], other[name], err_msg=name)
  # Only the chief's checkpoints remain; the other worker's are removed.
  files = os.listdir(model_dir)
  assert "ckpt-3.index" in files and "ckpt-2.index" in files
  assert not any(f.startswith("workertemp") for f in files)
