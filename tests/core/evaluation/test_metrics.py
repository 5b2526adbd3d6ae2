"""Metrics from the confusion matrix against a direct NumPy computation."""

import numpy as np
import pytest

from deeplab.core.evaluation import metrics


def _reference(labels, predictions, num_classes, ignore_label):
  """Per-class IoU etc. computed pixel by pixel, without a confusion matrix."""
  keep = labels != ignore_label
  labels, predictions = labels[keep], predictions[keep]
  ious, accuracies, frequencies = [], [], []
  for c in range(num_classes):
    gt, pred = labels == c, predictions == c
    union = np.sum(gt | pred)
    ious.append(np.sum(gt & pred) / union if union else np.nan)
    accuracies.append(np.sum(gt & pred) / np.sum(gt) if gt.any() else np.nan)
    frequencies.append(np.mean(gt))
  ious, frequencies = np.array(ious), np.array(frequencies)
  valid = ~np.isnan(ious)
  return {
      "miou": np.nanmean(ious),
      "fwiou": np.sum(frequencies[valid] * ious[valid]),
      "pixel_accuracy": np.mean(labels == predictions),
      "mean_pixel_accuracy": np.nanmean(accuracies),
      "per_class_iou": ious,
  }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_numpy_reference(seed):
  rng = np.random.default_rng(seed)
  num_classes, ignore = 5, 255
  labels = rng.integers(0, num_classes, (3, 17, 19))
  labels[rng.random(labels.shape) < 0.2] = ignore
  # Predictions agree with the labels on most pixels, never predict class 4.
  predictions = np.where(rng.random(labels.shape) < 0.6, labels,
                         rng.integers(0, num_classes - 1, labels.shape))
  predictions[predictions == ignore] = 0
  confusion = metrics.confusion_matrix_update(labels, predictions,
                                              num_classes, ignore).numpy()
  assert confusion.sum() == np.sum(labels != ignore)
  got = metrics.metrics_from_confusion_matrix(confusion)
  want = _reference(labels, predictions, num_classes, ignore)
  for key in ("miou", "fwiou", "pixel_accuracy", "mean_pixel_accuracy"):
    assert got[key] == pytest.approx(want[key], abs=1e-12), key
  np.testing.assert_allclose(
      np.array(got["per_class_iou"], dtype=float), want["per_class_iou"])


def test_absent_class_is_none_and_left_out_of_the_mean():
  confusion = np.array([[5, 1, 0], [0, 4, 0], [0, 0, 0]])
  got = metrics.metrics_from_confusion_matrix(confusion)
  assert got["per_class_iou"][2] is None
  assert got["miou"] == pytest.approx((5 / 6 + 4 / 5) / 2)
  assert got["num_pixels"] == 10


def test_perfect_prediction():
  labels = np.array([[0, 1], [2, 255]])
  confusion = metrics.confusion_matrix_update(labels, labels % 255, 3,
                                              255).numpy()
  got = metrics.metrics_from_confusion_matrix(confusion)
  assert got["miou"] == 1.0 and got["pixel_accuracy"] == 1.0
  assert got["fwiou"] == pytest.approx(1.0)


def test_joint_histogram_with_tables_equals_device_confusion_matrix():
  rng = np.random.default_rng(3)
  labels = rng.integers(0, 6, (2, 33, 31)).astype(np.uint8)
  labels[labels == 5] = 255
  predictions = rng.integers(0, 5, labels.shape).astype(np.uint8)
  joint = sum(metrics.joint_histogram(l, p)
              for l, p in zip(labels, predictions))
  assert joint.shape == (256, 256) and joint.sum() == labels.size
  label_classes = np.where(np.arange(256) < 5, np.arange(256), -1)
  confusion = metrics.confusion_from_joint(joint, label_classes,
                                           label_classes, 5)
  want = metrics.confusion_matrix_update(labels, predictions, 5, 255).numpy()
  assert want.dtype == np.int64
  np.testing.assert_array_equal(confusion[:, :5], want)
  assert not confusion[:, 5].any()


def test_unscored_prediction_column_is_a_miss_and_no_false_positive():
  # Class 0: 4 right, 2 predicted as an unscored class; class 1: 3 right.
  confusion = np.array([[4, 0, 2], [0, 3, 0]])
  got = metrics.metrics_from_confusion_matrix(confusion)
  assert got["per_class_iou"] == [4 / 6, 1.0]
  assert got["pixel_accuracy"] == pytest.approx(7 / 9)
  assert got["num_pixels"] == 9
  with pytest.raises(ValueError, match="expected"):
    metrics.metrics_from_confusion_matrix(np.zeros((3, 2)))
