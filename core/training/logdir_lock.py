"""One trainer per train_logdir: a lock file holding the owner's pid and host.

Two trainers writing one logdir interleave checkpoints and both "resume"
from each other's steps: a silently wrong model. `LogdirLock` creates
`train_logdir/train.lock` with `O_CREAT | O_EXCL` (atomic on local and
network filesystems alike) and removes it on exit. A second trainer is
refused with a message naming the holder. A lock left by a process that no
longer exists on this host (SIGKILL, a crash, a reboot) is stale: it is
taken over with a warning. A lock of another host cannot be checked, so it
is reported, and the user removes it once sure. Under multi-worker training
only the chief takes the lock (the others write no checkpoints there).
"""

import json
import os
import re
import shutil
import socket
import time
from typing import Optional

from absl import logging

from deeplab.core import io_utils

LOCK_NAME = "train.lock"
# tf.train.Checkpoint writes `ckpt-N_temp/` and then renames its files.
_CHECKPOINT_TEMP_RE = re.compile(r"^ckpt-\d+_temp$")


def _mtime(path: str) -> float:
  try:
    return os.path.getmtime(path)
  except OSError:
    return 0.0


def _read(path: str) -> Optional[dict]:
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None  # Vanished, or half-written by a killed creator.


class LogdirLock:
  """Context manager holding `train_logdir/train.lock`.

  Raises (on enter):
    FileExistsError: naming the holder's pid and host, when a live trainer
      holds the lock (or one on another host).
  """

  def __init__(self, logdir: str):
    self.path = os.path.join(logdir, LOCK_NAME)
    self._held = False

  def _create(self) -> bool:
    try:
      fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      return False
    with os.fdopen(fd, "w") as f:
      json.dump({"pid": os.getpid(), "host": socket.gethostname()}, f)
    return True

  def acquire(self) -> None:
    """Takes the lock, taking over a stale one (see the module docstring)."""
    os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
    for _ in range(12):  # A racing trainer may take over between our steps.
      if self._create():
        self._held = True
        self._remove_stale_checkpoint_temporaries()
        return
      holder = _read(self.path)
      if holder is None and time.time() - _mtime(self.path) < 5:
        time.sleep(0.5)  # Just created; its owner is writing it.
        continue
      host = socket.gethostname()
      if holder is None or (
          holder.get("host") == host and
          not io_utils.process_alive(int(holder.get("pid", 0)))):
        logging.warning(
            "Taking over the stale lock %s of %s (that process no longer "
            "exists; it was killed or crashed).", self.path,
            f"pid {holder['pid']} on {holder['host']}" if holder
            else "an unreadable holder")
        try:
          os.remove(self.path)
        except FileNotFoundError:
          pass
        continue
      where = ("" if holder["host"] == host else
               f" (another host: remove {self.path} once sure it has "
               "stopped)")
      raise FileExistsError(
          f"{os.path.dirname(self.path)} is in use by another trainer: pid "
          f"{holder['pid']} on {holder['host']}{where}. Stop it, or train "
          "into another --train_logdir.")
    raise FileExistsError(f"Could not take the lock {self.path}: other "
                          "trainers keep racing for it.")

  def _remove_stale_checkpoint_temporaries(self) -> None:
    """Removes `ckpt-N_temp/` folders of saves a killed trainer left (with
    the lock held, no other trainer writes here)."""
    folder = os.path.dirname(self.path)
    for name in sorted(os.listdir(folder)):
      path = os.path.join(folder, name)
      if _CHECKPOINT_TEMP_RE.match(name) and os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
        logging.warning("Removed %s, a partial checkpoint of a killed run.",
                        path)

  def release(self) -> None:
    if self._held:
      self._held = False
      holder = _read(self.path)
      if holder and holder.get("pid") == os.getpid():
        os.remove(self.path)

  def __enter__(self) -> "LogdirLock":
    self.acquire()
    return self

  def __exit__(self, *exc):
    self.release()
    return False


def is_chief_task() -> bool:
  """Whether this process is the chief of its TF_CONFIG cluster (True
  without a cluster): the chief, or worker 0 of a cluster without one."""
  try:
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
  except ValueError:
    return True
  cluster = config.get("cluster") or {}
  task = config.get("task") or {}
  if not cluster or not task:
    return True
  if task.get("type") == "chief":
    return True
  return (task.get("type") == "worker" and "chief" not in cluster and
          int(task.get("index", 0)) == 0)
