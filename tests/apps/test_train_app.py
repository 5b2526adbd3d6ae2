"""train.py under interruption: SIGKILL, SIGTERM, resume, determinism, NaN.

Runs the app in subprocesses on a small demo dataset, as a user (or a
cluster scheduler) would.
"""

import os
import re
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
import tensorflow as tf

from deeplab.core.training import preemption
from testing_utils import APP_ENV as ENV
from testing_utils import build_demo_tfrecords
TIMEOUT = 240


@pytest.fixture(scope="module")
def demo_tfrecords(tmp_path_factory):
  return build_demo_tfrecords(tmp_path_factory.mktemp("demo")) / "tfrecord"


def _command(dataset_dir, logdir, steps, *extra):
  return [sys.executable, "-m", "deeplab.train", "--dataset=demo",
          "--model_variant=mobilenet_v2", "--output_stride=16",
          "--decoder_output_stride=4", "--depth_multiplier=0.35",
          "--batch_norm_decay=0.9", f"--dataset_dir={dataset_dir}",
          f"--train_logdir={logdir}", "--train_crop_size=64,64",
          "--train_batch_size=4", f"--training_number_of_steps={steps}",
          "--optimizer=momentum", "--base_learning_rate=0.01",
          "--save_interval_steps=4", "--log_steps=1",
          "--image_summary_steps=0", "--deterministic", "--seed=7", *extra]


def _run(command):
  result = subprocess.run(command, capture_output=True, text=True,
                          timeout=TIMEOUT, env=ENV, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return result


def _start(command):
  process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, env=ENV)
  watchdog = threading.Timer(TIMEOUT, process.kill)
  watchdog.start()
  return process, watchdog


def _wait_for_line(process, pattern):
  """Reads the process's log until a line matches; returns the match."""
  for line in process.stderr:
    match = re.search(pattern, line)
    if match:
      return match
  raise AssertionError(f"the run ended without logging {pattern!r}")


def _model_weights(prefix):
  reader = tf.train.load_checkpoint(prefix)
  return {k: reader.get_tensor(k)
          for k in reader.get_variable_to_shape_map()
          if k.startswith("model/")}


def _checkpoint_steps(logdir):
  return sorted(int(n[5:-6]) for n in os.listdir(logdir)
                if n.startswith("ckpt-") and n.endswith(".index"))


@pytest.mark.slow
def test_sigkill_sigterm_resume_matches_an_uninterrupted_run(demo_tfrecords,
                                                             tmp_path):
  target = 24
  reference = tmp_path / "reference"
  _run(_command(demo_tfrecords, reference, target))

  logdir = tmp_path / "interrupted"
  # 1. SIGKILL once a checkpoint past the start exists.
  process, watchdog = _start(_command(demo_tfrecords, logdir, target))
  _wait_for_line(process, r"Saved checkpoint .*ckpt-4")
  process.send_signal(signal.SIGKILL)
  process.wait()
  watchdog.cancel()
  assert process.returncode == -signal.SIGKILL
  killed_at = max(_checkpoint_steps(logdir))
  assert 4 <= killed_at < target

  # 2. Restart; SIGTERM mid-run saves a checkpoint at the current step.
  process, watchdog = _start(_command(demo_tfrecords, logdir, target))
  _wait_for_line(process, rf"Resumed from .*ckpt-{killed_at} at step "
                          rf"{killed_at}")
  _wait_for_line(process, rf"step {killed_at + 1}/{target}")
  process.send_signal(signal.SIGTERM)
  match = _wait_for_line(process, r"Preempted \(SIGTERM\) at step (\d+)")
  process.wait()
  watchdog.cancel()
  assert process.returncode == preemption.PREEMPTED_EXIT_CODE
  stopped_at = int(match.group(1))
  assert killed_at < stopped_at < target
  assert stopped_at in _checkpoint_steps(logdir)

  # 3. Restart to the end: same step count, same weights as the reference.
  result = _run(_command(demo_tfrecords, logdir, target))
  assert f"at step {stopped_at}" in result.stderr
  assert max(_checkpoint_steps(logdir)) == target
  expected = _model_weights(str(reference / f"ckpt-{target}"))
  got = _model_weights(str(logdir / f"ckpt-{target}"))
  assert expected.keys() == got.keys()
  for key in expected:
    np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-6,
                               err_msg=key)
