"""The step profiler writes a TensorBoard profile of its window only."""

import os

import tensorflow as tf

from deeplab.core.training import profiling


def _profiles(logdir):
  root = os.path.join(logdir, "plugins", "profile")
  return os.listdir(root) if os.path.isdir(root) else []


def test_profiles_the_window_and_nothing_else(tmp_path):
  step = tf.function(lambda x: tf.reduce_sum(tf.matmul(x, x)))
  x = tf.ones((8, 8))
  with profiling.StepProfiler(str(tmp_path / "p"), (2, 3)) as profiler:
    for run_step in range(1, 6):
      profiler.before_step()
      assert profiler._active == (run_step in (2, 3))
      step(x)
      profiler.after_step()
  assert len(_profiles(tmp_path / "p")) == 1  # One trace: steps 2-3.


def test_a_run_shorter_than_the_window_still_writes(tmp_path):
  with profiling.StepProfiler(str(tmp_path / "p"), (1, 10)) as profiler:
    profiler.before_step()
    tf.reduce_sum(tf.ones((4, 4)))
    profiler.after_step()
  assert len(_profiles(tmp_path / "p")) == 1


def test_no_logdir_profiles_nothing(tmp_path):
  with profiling.StepProfiler("", (1, 2)) as profiler:
    profiler.before_step()
    assert not profiler._active
