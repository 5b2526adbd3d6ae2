"""Parsing Covering against the values official DeepLab's tests expect.

Each test cites its source: official
`research/deeplab/evaluation/parsing_covering_test.py::<test name>`, with the
same expected values, to their precision (`assertAlmostEqual`: within 5e-8).
"""

import numpy as np
import pytest

import panoptic_test_utils
from deeplab.core.evaluation import parsing_covering


def _split(labels, max_instances):
  """Official "naive" labels -> (category, instance) maps.

  The official tests pass category 0 with instance ids at or above
  max_instances_per_category, relying on `category * max + instance` to carry
  them into other categories; our input check rejects such instance ids, so
  the same segments are passed already split.
  """
  return labels // max_instances, labels % max_instances


def test_perfect_match():
  """Official test_perfect_match."""
  labels = np.array(
      [[2, 2, 2, 2, 2, 2], [2, 4, 4, 4, 4, 2], [2, 4, 4, 4, 4, 2],
       [2, 4, 4, 4, 4, 2], [2, 4, 4, 2, 2, 2], [2, 4, 2, 2, 2, 2]], np.uint16)
  pc = parsing_covering.ParsingCovering(3, 2, 2, 16,
                                        normalize_by_image_size=False)
  maps = _split(labels, 2)
  pc.compare_and_accumulate(*maps, *maps)
  np.testing.assert_array_equal(pc.weighted_iou_per_class, [0.0, 21.0, 0.0])
  np.testing.assert_array_equal(pc.gt_area_per_class, [0.0, 21.0, 0.0])
  np.testing.assert_array_equal(pc.result_per_category(), [0.0, 1.0, 0.0])
  assert pc.result() == 1.0


def test_totally_wrong():
  """Official test_totally_wrong."""
  gt = np.zeros([6, 6], np.uint16)
  gt[1, [1, 4]] = 1
  gt[2:4, 1:5] = 1
  pc = parsing_covering.ParsingCovering(2, 0, 1, 16,
                                        normalize_by_image_size=False)
  pc.compare_and_accumulate(*_split(gt, 1), *_split(1 - gt, 1))
  np.testing.assert_array_equal(pc.weighted_iou_per_class, [0.0, 0.0])
  np.testing.assert_array_equal(pc.gt_area_per_class, [0.0, 10.0])
  np.testing.assert_array_equal(pc.result_per_category(), [0.0, 0.0])
  assert pc.result() == 0.0


def test_matches_expected():
  """Official test_matches_expected, on testdata/team_*.png."""
  pc = parsing_covering.ParsingCovering(3, 0, 256, 256 * 256,
                                        normalize_by_image_size=False)
  pc.compare_and_accumulate(*panoptic_test_utils.read_team_example())
  np.testing.assert_array_almost_equal(
      pc.weighted_iou_per_class, [0.0, 39864.14634, 3136], decimal=4)
  np.testing.assert_array_equal(pc.gt_area_per_class, [0.0, 56870, 5800])
  np.testing.assert_array_almost_equal(pc.result_per_category(),
                                       [0.0, 0.70097, 0.54069], decimal=4)
  assert pc.result() == pytest.approx(0.6208296732, abs=5e-8)


def test_matches_expected_normalize_by_size():
  """Official test_matches_expected_normalize_by_size."""
  pc = parsing_covering.ParsingCovering(3, 0, 256, 256 * 256,
                                        normalize_by_image_size=True)
  pc.compare_and_accumulate(*panoptic_test_utils.read_team_example())
  np.testing.assert_array_almost_equal(
      pc.weighted_iou_per_class, [0.0, 0.5002088756, 0.03935002196],
      decimal=4)
  np.testing.assert_array_almost_equal(
      pc.gt_area_per_class, [0.0, 0.7135955832, 0.07277746408], decimal=4)
  np.testing.assert_array_almost_equal(pc.result_per_category(),
                                       [0.0, 0.70097, 0.54069], decimal=4)
  assert pc.result() == pytest.approx(0.6208296732, abs=5e-8)


def test_merge_equals_one_pass():
  """Our own check: merging two accumulators equals accumulating both."""
  example = panoptic_test_utils.read_team_example()
  flipped = [np.fliplr(a[:, :100]) for a in example]
  one = parsing_covering.ParsingCovering(3, 0, 256, 256 * 256)
  one.compare_and_accumulate(*example)
  one.compare_and_accumulate(*flipped)
  a = parsing_covering.ParsingCovering(3, 0, 256, 256 * 256)
  b = parsing_covering.ParsingCovering(3, 0, 256, 256 * 256)
  a.compare_and_accumulate(*example)
  b.compare_and_accumulate(*flipped)
  a.merge(b)
  np.testing.assert_allclose(a.weighted_iou_per_class,
                             one.weighted_iou_per_class)
  assert a.result() == pytest.approx(one.result())
  assert one.result() != pytest.approx(b.result())
