"""A TensorFlow profile of a window of training steps (official
`--profile_logdir`, which wrapped training in `tfprof.ProfileContext`).

The trace opens in TensorBoard's Profile tab: op times on host and device,
the input pipeline's share, and the step timeline.
"""

from typing import Tuple

from absl import logging
import tensorflow as tf


class StepProfiler:
  """Profiles steps `first..last` (counted from 1) of one training run.

  The first step of a run traces and compiles the graph, so a window that
  starts later shows the steady state.
  """

  def __init__(self, logdir: str, steps: Tuple[int, int]):
    self.logdir = logdir
    self.first, self.last = steps
    self._run_steps = 0
    self._active = False

  def __enter__(self) -> "StepProfiler":
    return self

  def __exit__(self, *exc_info):
    self.stop()  # A run shorter than the window, or an error, still writes.

  def before_step(self):
    """Call before each step: starts the profiler at the window's start."""
    self._run_steps += 1
    if self.logdir and self._run_steps == self.first:
      tf.io.gfile.makedirs(self.logdir)
      tf.profiler.experimental.start(self.logdir)
      self._active = True

  def after_step(self):
    """Call after each step: stops the profiler at the window's end."""
    if self._active and self._run_steps == self.last:
      self.stop()

  def stop(self):
    """Stops and writes the profile, if one is being taken."""
    if not self._active:
      return
    tf.profiler.experimental.stop()
    self._active = False
    logging.info("Profile of training steps %d-%d of this run written to %s "
                 "(TensorBoard, Profile tab).", self.first,
                 min(self.last, self._run_steps), self.logdir)
