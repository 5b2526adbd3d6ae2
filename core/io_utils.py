"""Small file-writing helpers: nothing is ever half-written."""

import json
import os
import tempfile
from typing import Any


def atomic_write_bytes(path: str, data: bytes) -> None:
  """Writes `data` to `path` through a temporary file and a rename."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  handle, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-",
                                       suffix=os.path.basename(path))
  try:
    with os.fdopen(handle, "wb") as f:
      f.write(data)
    os.replace(temporary, path)
  except BaseException:
    if os.path.exists(temporary):
      os.remove(temporary)
    raise


def atomic_write_json(path: str, value: Any) -> None:
  """Writes `value` as indented JSON to `path`, atomically."""
  atomic_write_bytes(path, (json.dumps(value, indent=2) + "\n").encode())
