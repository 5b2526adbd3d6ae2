"""Two local workers train with MultiWorkerMirroredStrategy (TF_CONFIG).

SIGTERM to one worker: TF's PreemptionCheckpointHandler makes both save
the same step and exit 143; a restart of both resumes from it.
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from deeplab.core.training import preemption

WORKER = pathlib.Path(__file__).with_name("multi_worker_worker.py")
# Generous bounds (the shared CI machine may be busy): a hang fails the
# test instead of blocking the suite.
TIMEOUT_S = 240


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def _start_workers(tmp_path, model_dir, max_steps, tag):
  workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
  processes = []
  for index in range(2):
    tf_config = {"cluster": {"worker": workers},
                 "task": {"type": "worker", "index": index}}
    env = dict(os.environ, TF_CONFIG=json.dumps(tf_config),
               TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    log = open(tmp_path / f"{tag}{index}.log", "w")  # pylint: disable=consider-using-with
    processes.append(subprocess.Popen(
        [sys.executable, str(WORKER), str(model_dir),
         str(tmp_path / f"{tag}{index}.npz"), str(max_steps)],
        env=env, stdout=log, stderr=subprocess.STDOUT))
    log.close()
  return processes


def _wait_all(processes, tmp_path, tag, deadline):
  try:
    for p in processes:
      p.wait(timeout=max(1.0, deadline - time.time()))
  except subprocess.TimeoutExpired:
    pass
  finally:
    for p in processes:
      if p.poll() is None:
        p.kill()
        p.wait()
  logs = [(tmp_path / f"{tag}{i}.log").read_text() for i in range(2)]
  return [p.returncode for p in processes], logs


def _load(tmp_path, tag):
  return [np.load(tmp_path / f"{tag}{i}.npz") for i in range(2)]


def _assert_identical_weights(chief, other):
  names = [n for n in chief.files
           if n not in ("step", "is_chief", "preempted", "handler_steps")]
  assert len(names) > 100
  for name in names:
    np.testing.assert_array_equal(chief[name], other[name], err_msg=name)


@pytest.mark.slow
def test_sigterm_to_one_worker_saves_one_step_on_both_and_resumes(tmp_path):
  model_dir = tmp_path / "train"
  deadline = time.time() + TIMEOUT_S
  processes = _start_workers(tmp_path, model_dir, 10000, "run")
  try:
    # The chief's first checkpoint (step 2, saved by both workers together)
    # shows that both are training.
    while not (model_dir / "checkpoint").exists():
      assert all(p.poll() is None for p in processes), "a worker died"
      assert time.time() < deadline, "no checkpoint in time"
      time.sleep(0.2)
    # The non-chief: only TF's handler tells the chief to save.
    processes[1].send_signal(signal.SIGTERM)
  finally:
    codes, logs = _wait_all(processes, tmp_path, "run", deadline)
  for code, log in zip(codes, logs):
    assert code == preemption.PREEMPTED_EXIT_CODE, log[-3000:]
    # TF's handler saved and exited (not the runner's own SIGTERM flag).
    assert "PreemptionCheckpointHandler: checkpoint saved. Exiting." in log

  chief, other = _load(tmp_path, "run")
  assert bool(chief["is_chief"]) and not bool(other["is_chief"])
  assert bool(chief["preempted"]) and bool(other["preempted"])
  step = int(chief["step"])
  assert int(other["step"]) == step and 2 <= step < 10000
  _assert_identical_weights(chief, other)
  # The chief's folder has that step, with the handler's count equal to it;
  # the non-chief's temporary folder is gone.
  checkpoint = model_dir / f"ckpt-{step}"
  assert tf.train.latest_checkpoint(str(model_dir)) == str(checkpoint)
  assert int(tf.train.load_variable(
      str(checkpoint), "checkpointed_runs/.ATTRIBUTES/VARIABLE_VALUE")) == step
  assert int(tf.train.load_variable(
      str(checkpoint),
      "optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE")) == step
  assert not any(f.startswith("workertemp") for f in os.listdir(model_dir))

  # Restart both: each (the non-chief too) resumes from the chief's step and
  # trains on, counting handler steps from it.
  deadline = time.time() + TIMEOUT_S
  processes = _start_workers(tmp_path, model_dir, step + 2, "resume")
  codes, logs = _wait_all(processes, tmp_path, "resume", deadline)
  for code, log in zip(codes, logs):
    assert code == 0, log[-3000:]
    assert (f"Resumed from {checkpoint} at step {step} "
            "(PreemptionCheckpointHandler)") in log
  chief, other = _load(tmp_path, "resume")
  for result in (chief, other):
    assert int(result["step"]) == int(result["handler_steps"]) == step + 2
    assert not bool(result["preempted"])
  _assert_identical_weights(chief, other)
  assert tf.train.latest_checkpoint(str(model_dir)) == str(
      model_dir / f"ckpt-{step + 2}")
  for folder in (model_dir, tmp_path):  # TF's own non-chief folder: none.
    assert not any(f.startswith("workertemp") for f in os.listdir(folder))
