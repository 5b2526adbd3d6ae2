"""Panoptic Quality against the values official DeepLab's tests expect.

Each test cites its source: official
`research/deeplab/evaluation/panoptic_quality_test.py::<test name>`, with the
same inputs and expected values, to their precision (`assertAlmostEqual`:
7 decimals, i.e. within 5e-8).
"""

import numpy as np
import pytest

import panoptic_test_utils
from deeplab.core.evaluation import panoptic_quality

# gt / good / bad instance maps of test_matches_by_iou and test_merge_...
_GT = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [1, 1, 2, 2, 2, 1],
                [1, 2, 2, 2, 2, 1], [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]],
               np.uint16)
_GOOD = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [1, 2, 2, 2, 2, 1],
                  [1, 2, 2, 2, 1, 1], [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]],
                 np.uint16)
_BAD = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [1, 1, 1, 2, 2, 1],
                 [1, 1, 1, 2, 2, 1], [1, 1, 1, 2, 2, 1], [1, 1, 1, 1, 1, 1]],
                np.uint16)
_CATEGORIES = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1],
                        [1, 2, 2, 1, 2, 2], [1, 2, 2, 1, 2, 2],
                        [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], np.uint16)
_PRED_INSTANCES = np.zeros([6, 6], np.uint16)
_PRED_INSTANCES[2:4, 4:6] = 1


def _pq(num_categories, ignored_label, max_instances, offset):
  return panoptic_quality.PanopticQuality(num_categories, ignored_label,
                                          max_instances, offset)


def test_perfect_match():
  """Official test_perfect_match."""
  categories = np.zeros([6, 6], np.uint16)
  instances = np.array(
      [[1, 1, 1, 1, 1, 1], [1, 2, 2, 2, 2, 1], [1, 2, 2, 2, 2, 1],
       [1, 2, 2, 2, 2, 1], [1, 2, 2, 1, 1, 1], [1, 2, 1, 1, 1, 1]], np.uint16)
  pq = _pq(1, 2, 16, 16)
  pq.compare_and_accumulate(categories, instances, categories, instances)
  np.testing.assert_array_equal(pq.iou_per_class, [2.0])
  np.testing.assert_array_equal(pq.tp_per_class, [2])
  np.testing.assert_array_equal(pq.fn_per_class, [0])
  np.testing.assert_array_equal(pq.fp_per_class, [0])
  np.testing.assert_array_equal(pq.result_per_category(), [1.0])
  assert pq.result() == 1.0


def test_totally_wrong():
  """Official test_totally_wrong."""
  det = np.zeros([6, 6], np.uint16)
  det[1, [1, 4]] = 1
  det[2:4, 1:5] = 1
  instances = np.zeros([6, 6], np.uint16)
  pq = _pq(2, 2, 1, 16)
  pq.compare_and_accumulate(1 - det, instances, det, instances)
  np.testing.assert_array_equal(pq.iou_per_class, [0.0, 0.0])
  np.testing.assert_array_equal(pq.tp_per_class, [0, 0])
  np.testing.assert_array_equal(pq.fn_per_class, [1, 1])
  np.testing.assert_array_equal(pq.fp_per_class, [1, 1])
  assert pq.result() == 0.0


def test_matches_by_iou():
  """Official test_matches_by_iou (good, then after reset() bad detections)."""
  zeros = np.zeros([6, 6], np.uint16)
  pq = _pq(1, 2, 16, 16)
  pq.compare_and_accumulate(zeros, _GT, zeros, _GOOD)
  np.testing.assert_array_almost_equal(pq.iou_per_class, [28 / 30 + 6 / 8])
  np.testing.assert_array_equal(pq.tp_per_class, [2])
  np.testing.assert_array_equal(pq.fn_per_class, [0])
  np.testing.assert_array_equal(pq.fp_per_class, [0])
  assert pq.result() == pytest.approx((28 / 30 + 6 / 8) / 2, abs=5e-8)
  pq.reset()
  pq.compare_and_accumulate(zeros, _GT, zeros, _BAD)
  np.testing.assert_array_almost_equal(pq.iou_per_class, [27 / 32])
  np.testing.assert_array_equal(pq.tp_per_class, [1])
  np.testing.assert_array_equal(pq.fn_per_class, [1])
  np.testing.assert_array_equal(pq.fp_per_class, [1])
  assert pq.result() == pytest.approx((27 / 32) * (1 / 2), abs=5e-8)


def test_wrong_instances():
  """Official test_wrong_instances."""
  pq = _pq(3, 0, 10, 100)
  pq.compare_and_accumulate(_CATEGORIES, np.zeros([6, 6], np.uint16),
                            _CATEGORIES, _PRED_INSTANCES)
  np.testing.assert_array_equal(pq.iou_per_class, [0.0, 1.0, 0.0])
  np.testing.assert_array_equal(pq.tp_per_class, [0, 1, 0])
  np.testing.assert_array_equal(pq.fn_per_class, [0, 0, 1])
  np.testing.assert_array_equal(pq.fp_per_class, [0, 0, 2])
  np.testing.assert_array_equal(pq.result_per_category(), [0, 1, 0])
  assert pq.result() == pytest.approx(0.5, abs=5e-8)


def test_instance_order_is_arbitrary():
  """Official test_instance_order_is_arbitrary."""
  gt_instances = np.zeros([6, 6], np.uint16)
  gt_instances[2:4, 1:3] = 1
  pq = _pq(3, 0, 10, 100)
  pq.compare_and_accumulate(_CATEGORIES, gt_instances, _CATEGORIES,
                            _PRED_INSTANCES)
  np.testing.assert_array_equal(pq.iou_per_class, [0.0, 1.0, 2.0])
  np.testing.assert_array_equal(pq.tp_per_class, [0, 1, 2])
  np.testing.assert_array_equal(pq.fn_per_class, [0, 0, 0])
  np.testing.assert_array_equal(pq.fp_per_class, [0, 0, 0])
  np.testing.assert_array_equal(pq.result_per_category(), [0, 1, 1])
  assert pq.result() == pytest.approx(1.0, abs=5e-8)


def test_matches_expected():
  """Official test_matches_expected, on testdata/team_*.png."""
  pq = _pq(3, 0, 256, 256 * 256)
  pq.compare_and_accumulate(*panoptic_test_utils.read_team_example())
  np.testing.assert_array_almost_equal(pq.iou_per_class,
                                       [2.06104, 5.26827, 0.54069], decimal=4)
  np.testing.assert_array_equal(pq.tp_per_class, [1, 7, 1])
  np.testing.assert_array_equal(pq.fn_per_class, [0, 1, 0])
  np.testing.assert_array_equal(pq.fp_per_class, [0, 0, 0])
  np.testing.assert_array_almost_equal(pq.result_per_category(),
                                       [2.061038, 0.702436, 0.54069])
  assert pq.result() == pytest.approx(0.62156287, abs=5e-8)


def test_merge_accumulates_all_across_instances():
  """Official test_merge_accumulates_all_across_instances."""
  zeros = np.zeros([6, 6], np.uint16)
  good, bad = _pq(1, 2, 16, 16), _pq(1, 2, 16, 16)
  for _ in range(2):
    good.compare_and_accumulate(zeros, _GT, zeros, _GOOD)
    bad.compare_and_accumulate(zeros, _GT, zeros, _BAD)
  good.merge(bad)
  np.testing.assert_array_almost_equal(
      good.iou_per_class, [2 * (28 / 30 + 6 / 8) + 2 * (27 / 32)])
  np.testing.assert_array_equal(good.tp_per_class, [2 * 2 + 2])
  np.testing.assert_array_equal(good.fn_per_class, [2])
  np.testing.assert_array_equal(good.fp_per_class, [2])
  assert good.result() == pytest.approx(0.63177083, abs=5e-8)


def test_detailed_results_split_things_and_stuff():
  """Our own check: "Things"/"Stuff" average only their valid categories."""
  pq = _pq(3, 0, 10, 100)
  pq.compare_and_accumulate(_CATEGORIES, np.zeros([6, 6], np.uint16),
                            _CATEGORIES, _PRED_INSTANCES)
  results = pq.detailed_results(is_thing=[False, False, True])
  assert results["All"] == {"pq": 0.5, "sq": 0.5, "rq": 0.5, "n": 2}
  assert results["Stuff"] == {"pq": 1.0, "sq": 1.0, "rq": 1.0, "n": 1}
  assert results["Things"] == {"pq": 0.0, "sq": 0.0, "rq": 0.0, "n": 1}


def test_bad_input_is_a_clear_error():
  pq = _pq(3, 0, 10, 100)
  with pytest.raises(ValueError, match="outside \\[0, 3\\)"):
    pq.compare_and_accumulate(_CATEGORIES + 5, _PRED_INSTANCES, _CATEGORIES,
                              _PRED_INSTANCES)
  with pytest.raises(ValueError, match="max_instances_per_category"):
    pq.compare_and_accumulate(_CATEGORIES, _PRED_INSTANCES * 20, _CATEGORIES,
                              _PRED_INSTANCES)
