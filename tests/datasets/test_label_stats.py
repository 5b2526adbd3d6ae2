"""Label statistics and the class-weight formulas, against values by hand."""

import numpy as np
import pytest

from deeplab.datasets import label_stats


def _labels():
  # Image 1: 6 pixels of class 0, 2 of class 1 (and one ignored).
  # Image 2: 2 pixels of class 0, 2 of class 2.
  return [np.array([0, 0, 0, 0, 0, 0, 1, 1, 255]),
          np.array([[0, 0], [2, 2]])]


def test_pixel_statistics():
  counts, image_pixels = label_stats.class_pixel_statistics(
      _labels(), num_classes=4, ignore_label=255)
  np.testing.assert_array_equal(counts, [8, 2, 2, 0])
  # Class 0 is in both images (8 + 4 labelled pixels), 1 in the first only.
  np.testing.assert_array_equal(image_pixels, [12, 8, 4, 0])


def test_balanced_weights():
  weights = label_stats.balanced_weights(np.array([8, 2, 2, 0]))
  # N / (K * n_c): N = 12, K = 3 present classes.
  np.testing.assert_allclose(weights, [12 / 24, 12 / 6, 12 / 6, 0.0])


def test_median_frequency_weights():
  weights = label_stats.median_frequency_weights(
      np.array([8, 2, 2, 0]), np.array([12, 8, 4, 0]))
  frequencies = np.array([8 / 12, 2 / 8, 2 / 4])
  median = np.median(frequencies)  # 0.5
  np.testing.assert_allclose(weights, [*(median / frequencies), 0.0])


def test_label_outside_the_classes_is_an_error():
  with pytest.raises(ValueError, match="outside"):
    label_stats.class_pixel_statistics([np.array([0, 7])], 3, 255)


def test_median_frequency_weights_by_hand():
  # Class 0 fills 2 images of 100 px (150 px); class 1 appears in one of
  # them (50 px); class 2 never appears.
  median = label_stats.median_frequency_weights([150, 50, 0], [200, 100, 0])
  # freq = [0.75, 0.5]; median 0.625.
  np.testing.assert_allclose(median, [0.625 / 0.75, 0.625 / 0.5, 0.])
  np.testing.assert_allclose(label_stats.balanced_weights([150, 50, 0]),
                             [200 / (2 * 150), 200 / (2 * 50), 0.])
