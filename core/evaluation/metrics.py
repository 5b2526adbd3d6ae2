"""Segmentation metrics from one confusion matrix.

The confusion matrix is accumulated batch by batch, on device with
`confusion_matrix_update` (model evaluation) or on the host from label PNGs
with `joint_histogram` + `confusion_from_joint` (scoring a folder of
predictions); every reported figure is then derived from it with
`metrics_from_confusion_matrix`, so they can never disagree. Rows are
ground truth, columns are predictions.
"""

from typing import Dict, List, Optional

import numpy as np


def confusion_matrix_update(labels: "tf.Tensor", predictions: "tf.Tensor",
                            num_classes: int, ignore_label: int
                            ) -> "tf.Tensor":
  """Confusion matrix of one batch, leaving out ignored pixels.

  Args:
    labels: Integer ground truth of any shape.
    predictions: Integer predictions of the same shape.
    num_classes: Number of classes.
    ignore_label: Ground-truth value that is not scored.

  Returns:
    An int64 [num_classes, num_classes] matrix; entry (i, j) counts pixels of
    class i predicted as class j.
  """
  # Imported here: scoring PNG folders (`score_folder`) never needs
  # TensorFlow, and `evaluate.py --predictions_dir` starts without it.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
  predictions = tf.reshape(tf.cast(predictions, tf.int32), [-1])
  valid = tf.logical_and(tf.not_equal(labels, ignore_label),
                         tf.logical_and(labels >= 0, labels < num_classes))
  check = tf.debugging.assert_less(
      tf.reduce_max(tf.where(valid, predictions, 0)), num_classes,
      message=f"Predicted class ids must be below num_classes={num_classes}")
  with tf.control_dependencies([check]):
    # One bincount over label * C + prediction (ignored pixels go to the
    # extra last bin): about 10x faster on CPU than tf.math.confusion_matrix,
    # which scatters. Counted in bincount's default int32 (about 3x faster
    # than dtype=tf.int64 on a 1024x2048 map; one batch never holds 2^31
    # pixels), widened to int64 for accumulation.
    index = tf.where(valid, labels * num_classes + predictions,
                     num_classes * num_classes)
    counts = tf.math.bincount(index, minlength=num_classes * num_classes + 1)
  return tf.reshape(tf.cast(counts[:num_classes * num_classes], tf.int64),
                    [num_classes, num_classes])


def joint_histogram(labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
  """Counts of every (label value, prediction value) pair of two uint8 maps.

  The per-pixel work of scoring label PNGs: one uint16 code per pixel and
  one `np.bincount`. Mapping raw values (e.g. Cityscapes labelIds) to
  classes is left to `confusion_from_joint`, which applies the lookup
  tables to these 65536 counts instead of to every pixel.

  Args:
    labels: uint8 ground truth [H, W].
    predictions: uint8 predictions of the same shape.

  Returns:
    int64 [256, 256]; entry (g, p) counts pixels with label g, prediction p.
  """
  code = labels.astype(np.uint16)
  code <<= 8
  code |= predictions
  return np.bincount(code.ravel(), minlength=65536).reshape(256, 256)


def confusion_from_joint(joint: np.ndarray, label_classes: np.ndarray,
                         prediction_classes: np.ndarray,
                         num_classes: int) -> np.ndarray:
  """Confusion matrix of classes from a `joint_histogram` of raw values.

  Args:
    joint: int64 [256, 256] counts of (label value, prediction value).
    label_classes: int [256]: the class of each label value, or a negative
      value for one that is not scored (the ignore label, Cityscapes' void
      ids) or must not occur (the caller checks first).
    prediction_classes: int [256]: the class of each prediction value, or
      `num_classes` for a prediction outside the scored classes (a
      Cityscapes labelId that is not evaluated), or a negative value for one
      that must not occur (the caller checks first).
    num_classes: C.

  Returns:
    int64 [C, C + 1]: rows ground truth, columns predictions; the last
    column counts unscored predictions, which miss their row's class and
    are false positives of none, as cityscapesscripts counts them.
  """
  rows = _one_hot(label_classes, num_classes)
  columns = _one_hot(prediction_classes, num_classes + 1)
  return rows.T @ np.asarray(joint, np.int64) @ columns


def _one_hot(classes: np.ndarray, depth: int) -> np.ndarray:
  """int64 [len(classes), depth]; rows of values outside [0, depth) are 0."""
  classes = np.asarray(classes, np.int64)
  return (classes[:, None] == np.arange(depth)[None, :]).astype(np.int64)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
  """Elementwise division that gives NaN where the denominator is 0."""
  out = np.full(numerator.shape, np.nan, dtype=np.float64)
  np.divide(numerator, denominator, out=out, where=denominator > 0)
  return out


def _nan_to_none(values: np.ndarray) -> List[Optional[float]]:
  return [None if np.isnan(v) else float(v) for v in values]


def metrics_from_confusion_matrix(confusion: np.ndarray) -> Dict[str, object]:
  """Standard segmentation metrics, as official DeepLab and Cityscapes report.

  A class that appears neither in the ground truth nor in the predictions has
  an undefined IoU: it is reported as None and left out of the means, as
  `tf.compat.v1.metrics.mean_iou` does.

  Args:
    confusion: [C, C] matrix, rows ground truth, columns predictions. Extra
      columns ([C, C + k]) count predictions outside the scored classes:
      they miss their row's class and are false positives of none (see
      `confusion_from_joint`).

  Returns:
    A dict with `miou`, `fwiou` (frequency-weighted IoU), `pixel_accuracy`,
    `mean_pixel_accuracy`, `per_class_iou` (list, None where undefined),
    `per_class_accuracy` and `num_pixels`.
  """
  confusion = np.asarray(confusion, dtype=np.float64)
  num_classes = confusion.shape[0]
  if confusion.ndim != 2 or confusion.shape[1] < num_classes:
    raise ValueError(f"Confusion matrix of shape {confusion.shape}; expected "
                     "[C, C] or [C, C + k].")
  true_positive = np.diag(confusion[:, :num_classes])
  ground_truth = confusion.sum(axis=1)
  predicted = confusion[:, :num_classes].sum(axis=0)
  total = confusion.sum()

  iou = _safe_divide(true_positive, ground_truth + predicted - true_positive)
  class_accuracy = _safe_divide(true_positive, ground_truth)
  frequency = ground_truth / total if total > 0 else np.zeros_like(ground_truth)
  valid_iou = ~np.isnan(iou)
  return {
      "miou": float(np.mean(iou[valid_iou])) if valid_iou.any() else 0.0,
      "fwiou": float(np.sum(frequency[valid_iou] * iou[valid_iou])),
      "pixel_accuracy": float(true_positive.sum() / total) if total else 0.0,
      "mean_pixel_accuracy": (float(np.nanmean(class_accuracy))
                              if (~np.isnan(class_accuracy)).any() else 0.0),
      "per_class_iou": _nan_to_none(iou),
      "per_class_accuracy": _nan_to_none(class_accuracy),
      "num_pixels": int(total),
  }
