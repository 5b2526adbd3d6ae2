"""Preemption: turn SIGTERM (and Ctrl-C) into "save a checkpoint, then stop".

SIGINT (Ctrl-C) is handled like SIGTERM: the step in flight finishes, a
checkpoint is saved and the app exits with 130 (128 + SIGINT) instead of
143; a second Ctrl-C interrupts at once (KeyboardInterrupt).

Cluster schedulers (Kubernetes, Slurm, preemptible VMs) send SIGTERM and
give the job a grace period before SIGKILL. A run restarted on the same
`train_logdir` resumes from exactly the step the checkpoint was saved at.
Every replica and worker must save the same step (a signal may reach one
worker only), and the runner uses one of two mechanisms for that:

- Single-worker strategies (default, OneDevice, Mirrored, MWMS without a
  cluster): `SigtermWatcher` records the signal, the train step all-reduces
  a stop flag so all replicas stop after the same step, and the runner saves
  and raises `TrainingPreempted`.
- MultiWorkerMirroredStrategy with a cluster of more than one worker
  (TF_CONFIG): `ClusterPreemptionHandler`, which wraps TF's
  `tf.distribute.experimental.PreemptionCheckpointHandler`. The worker that
  gets SIGTERM publishes "save after step N+1" through the coordination
  service's key-value store; every worker saves there (through the runner's
  own save, so the chief writes into `train_logdir` and the others into a
  temporary folder they delete) and raises `TrainingPreempted`.

In both cases SIGTERM is caught only while `Runner.train` runs; during
evaluation (`train_and_evaluate`) or export it keeps its default effect,
which loses nothing since `train` saved before returning. TF's handler
detects Google Cloud VMs: on a GPU VM it watches maintenance events rather
than SIGTERM, and on a CPU or TPU VM it does nothing, so the runner falls
back to its own mechanism there.
"""

import contextlib
import signal
import threading
from typing import Callable, Optional

from absl import logging
import tensorflow as tf

# The exit status of a process stopped by SIGTERM (128 + 15): schedulers
# read it as "preempted", and restart the job. Ctrl-C gives 130 (128 + 2),
# as shells expect.
PREEMPTED_EXIT_CODE = 128 + signal.SIGTERM
INTERRUPTED_EXIT_CODE = 128 + signal.SIGINT

# The signal `SigtermWatcher` received last (TrainingPreempted names it).
_received = {"signum": signal.SIGTERM}

# The step counter PreemptionCheckpointHandler adds to the checkpoint
# (`failure_handling._ITERATION_VARIABLE` in TF 2.21).
_HANDLER_COUNTER = "checkpointed_runs"


class TrainingPreempted(Exception):
  """Raised by the runner after it saved a checkpoint on SIGTERM.

  Attributes:
    step: The step the checkpoint was saved at.
    checkpoint_path: The checkpoint written.
  """

  def __init__(self, step: int, checkpoint_path: Optional[str],
               signum: Optional[int] = None):
    self.signum = signal.Signals(signum or _received["signum"])
    what = ("Interrupted" if self.signum == signal.SIGINT else "Preempted")
    super().__init__(
        f"{what} ({self.signum.name}) at step {step}; saved "
        f"{checkpoint_path}. Rerun with the same --train_logdir to resume.")
    self.step = step
    self.checkpoint_path = checkpoint_path

  @property
  def exit_code(self) -> int:
    """128 + the signal: 143 for SIGTERM, 130 for SIGINT."""
    return 128 + int(self.signum)


class SigtermWatcher:
  """Context manager that records SIGTERM and SIGINT while training runs.

  Outside the main thread (where Python cannot install signal handlers) it
  does nothing, and the signals keep their default effect.
  """

  _SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.requested = False
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    if self.requested and signum == signal.SIGINT:
      raise KeyboardInterrupt  # A second Ctrl-C: stop now.
    logging.warning("Received %s: saving a checkpoint after this step, then "
                    "stopping.%s", signal.Signals(signum).name,
                    " (Ctrl-C again to stop at once.)"
                    if signum == signal.SIGINT else "")
    _received["signum"] = signum
    self.requested = True

  def __enter__(self) -> "SigtermWatcher":
    if threading.current_thread() is threading.main_thread():
      for signum in self._SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc):
    for signum, previous in self._previous.items():
      signal.signal(signum, previous)
    self._previous = {}
    return False


def num_workers(strategy: tf.distribute.Strategy) -> int:
  """The number of chief and worker tasks in the strategy's cluster (1 when
  it has no cluster)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None:
    return 1
  spec = resolver.cluster_spec()
  return max(1, sum(spec.num_tasks(job) for job in ("chief", "worker")
                    if job in spec.jobs))


def uses_cluster_handler(strategy: tf.distribute.Strategy) -> bool:
  """Whether training under `strategy` uses `ClusterPreemptionHandler`:
  MultiWorkerMirroredStrategy with more than one worker, in the main thread
  (the handler installs a signal handler)."""
  return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and
          num_workers(strategy) > 1 and
          threading.current_thread() is threading.main_thread())


class ClusterPreemptionHandler:
  """TF's `PreemptionCheckpointHandler`, wired to the runner's checkpoints.

  Creating it restores the latest checkpoint of `model_dir` on every worker
  (non-chief workers too: the handler reads through a read-only manager on
  the chief's folder) and starts watching for SIGTERM and for peers' notices.
  `run(train_step, ...)` runs one step; when a worker got SIGTERM, all of
  them reach the agreed step, call `save_fn` and then `exit_fn` (which
  raises, instead of TF's default `sys.exit(42)`).

  The handler counts `run` calls and stores the count in the checkpoint (as
  `checkpointed_runs`); the runner keeps that count equal to the global
  step: `note_saved_step` before each of its own saves, and
  `run_calls == global_step` after a restore (a checkpoint written without
  the handler, e.g. by a single-worker run, holds no count).

  Args:
    cluster_resolver: The MultiWorkerMirroredStrategy's cluster resolver.
    checkpoint: The runner's `tf.train.Checkpoint`.
    model_dir: The chief's checkpoint folder (`train_logdir`).
    save_fn: Saves a checkpoint at the current step (all workers call it).
    exit_fn: Called on every worker after that save; should raise.

  Attributes:
    active: False where TF's handler does nothing (it detects a Google Cloud
      CPU or TPU VM, which it does not support); the runner then uses its
      own mechanism. (On a Google Cloud GPU VM it watches the VM's
      maintenance events rather than SIGTERM.)
    restored_path: The checkpoint restored, or None.
  """

  def __init__(self, cluster_resolver, checkpoint: tf.train.Checkpoint,
               model_dir: str, save_fn: Callable[[], object],
               exit_fn: Callable[[], None]):
    previous_signal = signal.getsignal(signal.SIGTERM)
    # Read-only (never saves, so it deletes nothing): the runner's own
    # manager writes, and a non-chief's manager points at its temporary
    # folder, from which it could not restore.
    read_manager = tf.train.CheckpointManager(checkpoint, model_dir,
                                              max_to_keep=None)
    self.restored_path = read_manager.latest_checkpoint
    self._handler = tf.distribute.experimental.PreemptionCheckpointHandler(
        cluster_resolver, read_manager,
        termination_config=tf.distribute.experimental.TerminationConfig(
            exit_fn=exit_fn, grace_period=0, save_fn=save_fn))
    # Installed by the handler; active only inside `watching()`, so that
    # SIGTERM outside training (evaluation, export) keeps its usual effect.
    self._signal_fn = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, previous_signal)
    platform = getattr(self._handler, "_platform_device", None)
    self.active = getattr(platform, "name", "") not in ("GCE_CPU", "GCE_TPU")
    if not self.active:
      logging.warning("PreemptionCheckpointHandler is inactive on this "
                      "platform (%s); using the runner's own SIGTERM "
                      "handling.", platform)
      self.restored_path = None  # It restored nothing either.
      return
    self._counter = getattr(checkpoint, _HANDLER_COUNTER, None)
    if self._counter is None or not hasattr(self._handler, "_run_counter"):
      raise RuntimeError(
          "tf.distribute.experimental.PreemptionCheckpointHandler changed: "
          f"expected a {_HANDLER_COUNTER!r} variable in the checkpoint.")

  @property
  def run_calls(self) -> int:
    """The handler's step count (`run` calls, including restored ones)."""
    return int(self._handler._run_counter)  # pylint: disable=protected-access

  def align_step(self, global_step: int):
    """Makes the handler count from `global_step` (after a restore)."""
    if self.run_calls != global_step:
      logging.info("Checkpoint counted %d handler steps; aligning with the "
                   "global step %d.", self.run_calls, global_step)
      self._handler._run_counter = global_step  # pylint: disable=protected-access
    self._counter.assign(global_step)

  def note_saved_step(self, step: int):
    """Stores `step` as the handler's count in the next checkpoint."""
    self._counter.assign(step)

  @contextlib.contextmanager
  def watching(self):
    """Routes SIGTERM to the handler while the block runs."""
    previous = signal.signal(signal.SIGTERM, self._signal_fn)
    try:
      yield
    finally:
      signal.signal(signal.SIGTERM, previous)

  def run(self, train_step: Callable, *args):
    """Runs one distributed training step; saves and exits if preempted."""
    return self._handler.run(train_step, *args)
