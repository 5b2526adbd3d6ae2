"""Segmentation metrics from one confusion matrix.

The confusion matrix is accumulated on device, batch by batch, with
`confusion_matrix_update`; every reported figure is then derived from it on
the host with `metrics_from_confusion_matrix`, so they can never disagree.
Rows are ground truth, columns are predictions.
"""

from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf


def confusion_matrix_update(labels: tf.Tensor, predictions: tf.Tensor,
                            num_classes: int, ignore_label: int) -> tf.Tensor:
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
    # which scatters.
    index = tf.where(valid, labels * num_classes + predictions,
                     num_classes * num_classes)
    counts = tf.math.bincount(index, minlength=num_classes * num_classes + 1,
                              dtype=tf.int64)
  return tf.reshape(counts[:num_classes * num_classes],
                    [num_classes, num_classes])


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
    confusion: [C, C] matrix, rows ground truth, columns predictions.

  Returns:
    A dict with `miou`, `fwiou` (frequency-weighted IoU), `pixel_accuracy`,
    `mean_pixel_accuracy`, `per_class_iou` (list, None where undefined),
    `per_class_accuracy` and `num_pixels`.
  """
  confusion = np.asarray(confusion, dtype=np.float64)
  true_positive = np.diag(confusion)
  ground_truth = confusion.sum(axis=1)
  predicted = confusion.sum(axis=0)
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
