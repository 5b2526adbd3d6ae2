"""Class weighting schemes against values computed by hand."""

import numpy as np
import pytest
import tensorflow as tf

from deeplab.core.training import class_weights


def _labels():
  # Image 1: 6 pixels of class 0, 2 of class 1 (and one ignored).
  # Image 2: 2 pixels of class 0, 2 of class 2.
  return [np.array([0, 0, 0, 0, 0, 0, 1, 1, 255]),
          np.array([[0, 0], [2, 2]])]


def test_pixel_statistics():
  counts, image_pixels = class_weights.class_pixel_statistics(
      _labels(), num_classes=4, ignore_label=255)
  np.testing.assert_array_equal(counts, [8, 2, 2, 0])
  # Class 0 is in both images (8 + 4 labelled pixels), 1 in the first only.
  np.testing.assert_array_equal(image_pixels, [12, 8, 4, 0])


def test_balanced_weights():
  weights = class_weights.balanced_weights(np.array([8, 2, 2, 0]))
  # N / (K * n_c): N = 12, K = 3 present classes.
  np.testing.assert_allclose(weights, [12 / 24, 12 / 6, 12 / 6, 0.0])


def test_median_frequency_weights():
  weights = class_weights.median_frequency_weights(
      np.array([8, 2, 2, 0]), np.array([12, 8, 4, 0]))
  frequencies = np.array([8 / 12, 2 / 8, 2 / 4])
  median = np.median(frequencies)  # 0.5
  np.testing.assert_allclose(weights, [*(median / frequencies), 0.0])


def test_label_outside_the_classes_is_an_error():
  with pytest.raises(ValueError, match="outside"):
    class_weights.class_pixel_statistics([np.array([0, 7])], 3, 255)


def test_adaptive_weights_follow_running_frequencies():
  adaptive = class_weights.AdaptiveClassWeights(2, ignore_label=255,
                                                momentum=0.5, max_weight=10.0)
  # Start: uniform frequencies -> weight 1 for both classes.
  np.testing.assert_allclose(adaptive.weights().numpy(), [1.0, 1.0])
  labels = tf.constant([[0, 0, 0, 1, 255]])
  weights = adaptive.update(labels).numpy()
  # Batch frequencies (0.75, 0.25); EMA: 0.5 * 0.5 + 0.5 * batch.
  expected_f = np.array([0.625, 0.375])
  np.testing.assert_allclose(adaptive.frequencies.numpy(), expected_f)
  np.testing.assert_allclose(weights, 1.0 / (2 * expected_f), rtol=1e-6)
  # An all-ignored batch changes nothing.
  adaptive.update(tf.constant([[255, 255]]))
  np.testing.assert_allclose(adaptive.frequencies.numpy(), expected_f)
