"""Label values checked where they are read: inside the tf.data pipeline.

TFRecords built elsewhere, or a `--num_classes` smaller than the data, give
labels outside [0, num_classes) that are not the ignore label. The loss
would then index past the logits (or, one-hot encoded, train on zeros), and
the confusion matrix would drop them: a silently wrong model. Each example's
label is compared once (one vectorised compare and sum, cheap next to the
decode), and:

  mode "error"   (default) the pipeline fails with a message naming the
                 split, the pixel count, the image and an example value;
                 the apps print it as one line (`user_message`).
  mode "ignore"  the values become the ignore label, and a warning gives
                 the running count (`OutOfRangeCounter`).
"""

import re
import threading
from typing import Optional

from absl import logging
import numpy as np
import tensorflow as tf

MODES = ("error", "ignore")
_ERROR_PREFIX = "Out-of-range labels"
_ERROR_RE = re.compile(_ERROR_PREFIX + r"[^\n]*?--out_of_range_labels=ignore"
                       r"[^\n\]]*")


class OutOfRangeCounter:
  """Counts the labels mapped to ignore (Python side, thread-safe).

  The pipeline calls `add` (through `tf.numpy_function`) only for examples
  that have such labels, so clean data costs nothing here. A warning is
  logged at the first example and each time the example count doubles.
  """

  def __init__(self):
    self._lock = threading.Lock()
    self.reset()

  def reset(self):
    self.examples = 0
    self.pixels = 0
    self.example_value = None
    self.split = None

  def add(self, split, pixels, value, filename):
    """Records one example's count (returns nothing useful: a dummy 0)."""
    with self._lock:
      self.examples += 1
      self.pixels += int(pixels)
      self.split = _text(split)
      if self.example_value is None:
        self.example_value = int(value)
      if self.examples & (self.examples - 1) == 0:  # 1, 2, 4, 8, ...
        logging.warning(
            "--out_of_range_labels=ignore: mapped %d label pixels outside "
            "the class range to the ignore label so far, in %d examples of "
            "split %r (e.g. value %d in %s).", self.pixels, self.examples,
            self.split, int(value), _text(filename))
    return np.int32(0)

  def summary(self) -> Optional[str]:
    """One line of totals, or None when nothing was mapped."""
    if not self.examples:
      return None
    return (f"--out_of_range_labels=ignore: {self.pixels} label pixels in "
            f"{self.examples} examples of split {self.split!r} were outside "
            f"the class range (e.g. value {self.example_value}) and were "
            "ignored.")


COUNTER = OutOfRangeCounter()


def _text(value) -> str:
  return value.decode("utf-8", "replace") if isinstance(value, bytes) else (
      str(value))


def check_label(label: tf.Tensor, filename: tf.Tensor, num_classes: int,
                ignore_label: int, split: str, mode: str) -> tf.Tensor:
  """Checks one decoded label; returns it (mapped, in "ignore" mode).

  Args:
    label: uint8 or int [H, W, 1] class ids.
    filename: The example's key (named in messages).
    num_classes: Valid labels are [0, num_classes).
    ignore_label: Also valid: pixels the loss and metrics leave out.
    split: The split's name, for messages.
    mode: "error" or "ignore" (see the module docstring).

  Raises:
    ValueError: for an unknown mode.
  """
  if mode not in MODES:
    raise ValueError(f"--out_of_range_labels={mode!r}: expected one of "
                     f"{', '.join(MODES)}.")
  values = tf.cast(label, tf.int32)
  bad = tf.logical_and(values >= num_classes, values != ignore_label)
  count = tf.reduce_sum(tf.cast(bad, tf.int32))
  # Only read when count > 0, so the max over an empty set never matters.
  example_value = tf.reduce_max(tf.where(bad, values, -1))
  if mode == "error":
    message = tf.strings.format(
        _ERROR_PREFIX + " in split '" + split + "': {} pixels of image {} "
        f"are outside [0, {num_classes}) and not the ignore label "
        f"{ignore_label}, e.g. value {{}}. Check --num_classes, or pass "
        "--out_of_range_labels=ignore to ignore them.",
        (count, filename, example_value))
    check = tf.debugging.Assert(tf.equal(count, 0), [message], summarize=1)
    with tf.control_dependencies([check]):
      return tf.identity(label)

  def _count():
    return tf.numpy_function(COUNTER.add,
                             [split, count, example_value, filename],
                             tf.int32, stateful=True)

  noted = tf.cond(count > 0, _count, lambda: tf.constant(0, tf.int32))
  with tf.control_dependencies([noted]):
    return tf.where(bad, tf.cast(ignore_label, label.dtype), label)


def user_message(error: BaseException) -> Optional[str]:
  """The one-line message of an out-of-range label failure, or None."""
  match = _ERROR_RE.search(str(error))
  if not match:
    return None
  # TF's message escapes quotes, and tf.strings.format quotes strings.
  return match.group(0).replace("\\'", "'").replace('\\"', "").replace(
      '"', "")
