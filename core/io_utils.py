"""Small file-writing helpers: nothing is ever half-written.

Every writer here writes under a temporary name that holds its process id
(`.tmp-<pid>-...`) and renames when done. A run killed by SIGKILL leaves
its temporary behind; the next writer into the same folder removes those
whose process no longer exists (`remove_stale_temporaries`), naming them,
and leaves a live writer's alone. Files keep the permissions the umask
gives (0644 under umask 022), as a plain `open` would: `tempfile.mkstemp`
alone creates them 0600.
"""

import errno
import json
import os
import re
import shutil
import tempfile
import threading
from typing import Any, List, Optional, Pattern

from absl import logging

# `.tmp-<pid>-<anything>`: the io_utils and saved_model temporaries.
TEMP_PATTERN = re.compile(r"^\.tmp-(?P<pid>\d+)-")
_cleaned = set()
_cleaned_lock = threading.Lock()


def current_umask() -> int:
  """The process umask (read without changing it, where Linux allows)."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("Umask:"):
          return int(line.split()[1], 8)
  except OSError:
    pass
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


def apply_umask(path: str, directory: bool = False) -> None:
  """Gives `path` the mode a plain `open`/`mkdir` would (mkstemp and
  mkdtemp create 0600/0700)."""
  os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


def process_alive(pid: int) -> bool:
  """Whether a process with this id exists on this host."""
  if pid <= 0:
    return False
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def remove_stale_temporaries(folder: str,
                             pattern: Pattern = TEMP_PATTERN,
                             what: str = "temporary") -> List[str]:
  """Removes temporaries of killed writers from `folder`, naming them.

  Args:
    folder: Where to look (not recursive).
    pattern: Matches a temporary's name, with the writer's pid as group
      `pid`.
    what: Named in the log line (e.g. "partial SavedModel").

  Returns:
    The removed paths. Temporaries of live processes are kept.
  """
  removed = []
  try:
    names = os.listdir(folder)
  except OSError:
    return removed
  for name in names:
    match = pattern.search(name)
    if not match or process_alive(int(match.group("pid"))):
      continue
    path = os.path.join(folder, name)
    try:
      if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
      else:
        os.remove(path)
    except FileNotFoundError:
      continue  # Another writer cleaned it first.
    logging.warning("Removed stale %s %s, left by a killed run (pid %s).",
                    what, path, match.group("pid"))
    removed.append(path)
  return removed


def _clean_once(folder: str) -> None:
  """`remove_stale_temporaries` on the first write into `folder`."""
  with _cleaned_lock:
    if folder in _cleaned:
      return
    _cleaned.add(folder)
  remove_stale_temporaries(folder)


def describe_os_error(error: OSError, path: str, action: str) -> str:
  """One line naming the path and what was being written, for a write
  that failed (full disk, read-only filesystem, permissions). An export's
  temporary version folder is shown as the version it becomes."""
  path = _EXPORT_TEMP_RE.sub(r"/\1", str(path))
  reason = {errno.ENOSPC: "no space left on the device",
            errno.EROFS: "the filesystem is read-only",
            errno.EACCES: "permission denied",
            errno.EDQUOT: "disk quota exceeded"}.get(
                error.errno, error.strerror or str(error))
  return f"Cannot write {path} ({action}): {reason}."


_WRITE_FAILURES = {errno.ENOSPC: "No space left on device",
                   errno.EROFS: "Read-only file system",
                   errno.EACCES: "Permission denied",
                   errno.EDQUOT: "Disk quota exceeded"}
_TF_WRITE_FAILURE_RE = re.compile(
    r"(?:^|[\s}])(?P<path>/[^\s;'\"]+)[^\n]*?(?P<reason>"
    + "|".join(_WRITE_FAILURES.values()) + ")")
_TEMP_SUFFIX_RE = re.compile(
    r"(\.tmp-\d+-[0-9a-f]+|_temp/.*|\.tempstate\d+)$")


_EXPORT_TEMP_RE = re.compile(r"/\.tmp-\d+-v(\d+)(?=/|$)")


def _what_is(path: str) -> str:
  """What a path is, in words, for write-error messages."""
  if _EXPORT_TEMP_RE.search(path):
    return "the SavedModel"
  name = os.path.basename(path)
  for needle, what in ((".tfrecord", "a TFRecord shard"),
                       ("ckpt-", "a checkpoint"),
                       ("checkpoint", "the checkpoint index"),
                       ("tfevents", "TensorBoard summaries"),
                       ("saved_model", "the SavedModel"),
                       ("variables", "the SavedModel's variables"),
                       (".lock", "the train_logdir lock")):
    if needle in path:
      return what
  return f"writing {name}"


def explain_write_error(error: BaseException) -> Optional[str]:
  """One line for a write that failed on a full disk, a read-only
  filesystem or missing permissions (Python or TensorFlow error), naming
  the path and what was being written; None for any other error."""
  if isinstance(error, WriteError):
    return str(error)
  if isinstance(error, OSError) and error.errno in _WRITE_FAILURES:
    path = error.filename or "?"
    return describe_os_error(error, path, _what_is(str(path)))
  match = _TF_WRITE_FAILURE_RE.search(str(getattr(error, "message", "")))
  if match is None:
    return None
  path = _TEMP_SUFFIX_RE.sub("", match.group("path"))
  code = {v: k for k, v in _WRITE_FAILURES.items()}[match.group("reason")]
  return describe_os_error(OSError(code, match.group("reason")), path,
                           _what_is(path))


class WriteError(OSError):
  """A write failed; the message names the path and what was written."""

  def __init__(self, message: str, error_number: Optional[int] = None):
    super().__init__(message)
    self.errno = error_number


def atomic_write_bytes(path: str, data: bytes,
                       action: Optional[str] = None) -> None:
  """Writes `data` to `path` through a temporary file and a rename.

  Raises:
    WriteError: (an OSError) naming `path` and `action` when the folder is
      read-only or the disk is full; nothing is left behind.
  """
  folder = os.path.dirname(os.path.abspath(path))
  temporary = None
  try:
    os.makedirs(folder, exist_ok=True)
    _clean_once(folder)
    handle, temporary = tempfile.mkstemp(
        dir=folder, prefix=f".tmp-{os.getpid()}-",
        suffix="-" + os.path.basename(path))
    with os.fdopen(handle, "wb") as f:
      f.write(data)
    apply_umask(temporary)
    os.replace(temporary, path)
  except BaseException as error:
    if temporary and os.path.exists(temporary):
      os.remove(temporary)
    if isinstance(error, OSError) and not isinstance(error, WriteError):
      raise WriteError(describe_os_error(
          error, path, action or "writing " + os.path.basename(path)),
                       error.errno) from error
    raise


def atomic_write_json(path: str, value: Any) -> None:
  """Writes `value` as indented JSON to `path`, atomically."""
  atomic_write_bytes(path, (json.dumps(value, indent=2) + "\n").encode())
