"""Preemption: turn SIGTERM into "save a checkpoint, then stop".

Cluster schedulers (Kubernetes, Slurm, preemptible VMs) send SIGTERM and
give the job a grace period before SIGKILL. `SigtermWatcher` records the
signal instead of dying; the training loop checks `requested` after each
step, saves a checkpoint at the current step and stops. A run restarted on
the same `train_logdir` then resumes from exactly that step.

Under `MultiWorkerMirroredStrategy` the workers must agree on the step at
which to save (a signal may reach one worker only): the runner uses TF's
`tf.distribute.experimental.PreemptionCheckpointHandler` there instead.
"""

import signal
import threading
from typing import Optional

from absl import logging

# The exit status of a process stopped by SIGTERM (128 + 15): schedulers
# read it as "preempted", and restart the job.
PREEMPTED_EXIT_CODE = 128 + signal.SIGTERM


class TrainingPreempted(Exception):
  """Raised by the runner after it saved a checkpoint on SIGTERM.

  Attributes:
    step: The step the checkpoint was saved at.
    checkpoint_path: The checkpoint written.
  """

  def __init__(self, step: int, checkpoint_path: Optional[str]):
    super().__init__(
        f"Preempted (SIGTERM) at step {step}; saved {checkpoint_path}. Rerun "
        "with the same --train_logdir to resume.")
    self.step = step
    self.checkpoint_path = checkpoint_path


class SigtermWatcher:
  """Context manager that records SIGTERM while training runs.

  Outside the main thread (where Python cannot install signal handlers) it
  does nothing, and SIGTERM keeps its default effect.
  """

  def __init__(self):
    self.requested = False
    self._previous = None

  def _handle(self, signum, frame):
    del frame
    logging.warning("Received signal %d: saving a checkpoint after this "
                    "step, then stopping.", signum)
    self.requested = True

  def __enter__(self) -> "SigtermWatcher":
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None
    return False
