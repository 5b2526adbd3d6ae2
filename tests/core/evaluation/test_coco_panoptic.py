"""COCO-format panoptic evaluation against official DeepLab's expected values.

Source of each expected value: official
`research/deeplab/evaluation/eval_coco_format_test.py::<test name>`, on its
testdata (coco_gt.json, coco_pred.json and their PNG folders). That test
compares PQ with the COCO panopticapi's `pq_compute`; the panopticapi
figures below (also per category) were computed once with
`panopticapi.evaluation.pq_compute`
(panopticapi-lite 0.2.0) on the same files, and are also recomputed here
when panopticapi is installed.
"""

import numpy as np
import pytest

import panoptic_test_utils
from deeplab.core.evaluation import coco_panoptic

# panopticapi pq_compute(coco_gt.json, coco_pred.json, coco_gt, coco_pred).
_PANOPTICAPI = {
    "All": {"pq": 0.6740486628641355, "sq": 0.6834387673557568,
            "rq": 0.8205128205128206, "n": 6},
    "Things": {"pq": 0.5769675073143916, "sq": 0.5910526640518237,
               "rq": 0.7307692307692308, "n": 4},
    "Stuff": {"pq": 0.868210973963623, "sq": 0.868210973963623, "rq": 1.0,
              "n": 2},
}


def _evaluate(metric, **options):
  data = panoptic_test_utils.testdata_dir()
  config = coco_panoptic.PanopticEvalConfig(
      metric=metric, num_categories=7, ignored_label=0,
      max_instances_per_category=256, intersection_offset=256 * 256,
      **options)
  return coco_panoptic.evaluate_coco_panoptic(
      str(data / "coco_gt.json"), str(data / "coco_pred.json"),
      str(data / "coco_gt"), str(data / "coco_pred"), config)


def _assert_results_equal(ours, reference):
  assert set(ours) == {"All", "Things", "Stuff"}
  for group, expected in reference.items():
    assert set(ours[group]) == set(expected)
    for key, value in expected.items():
      assert ours[group][key] == pytest.approx(value, abs=5e-8), (group, key)


def test_compare_pq_with_reference_eval():
  """Official test_compare_pq_with_reference_eval (panopticapi values)."""
  _assert_results_equal(_evaluate("pq").results, _PANOPTICAPI)


# Its per_class figures (category id: pq, sq, rq).
_PANOPTICAPI_PER_CLASS = {
    1: (0.676087523396742, 0.7324281503464706, 0.9230769230769231),
    2: (0.0, 0.0, 0.0),
    3: (0.7453531598513011, 0.7453531598513011, 1.0),
    4: (0.8576779026217228, 0.8576779026217228, 1.0),
    5: (0.9910687880759449, 0.9910687880759449, 1.0),
    6: (0.7741046032391015, 0.7741046032391015, 1.0),
}


def test_pq_per_category_matches_panopticapi():
  """Per category PQ, SQ, RQ equal panopticapi's per_class."""
  per_category = _evaluate("pq").metric.per_category_results()
  assert set(per_category) == set(_PANOPTICAPI_PER_CLASS)
  for category, (pq, sq, rq) in _PANOPTICAPI_PER_CLASS.items():
    assert per_category[category] == pytest.approx(
        {"pq": pq, "sq": sq, "rq": rq}, abs=5e-8), category


def test_pq_matches_panopticapi_when_installed():
  """The same comparison, with panopticapi run here when it is installed."""
  evaluation = pytest.importorskip("panopticapi.evaluation")
  data = panoptic_test_utils.testdata_dir()
  reference = evaluation.pq_compute(
      str(data / "coco_gt.json"), str(data / "coco_pred.json"),
      str(data / "coco_gt"), str(data / "coco_pred"))
  reference.pop("per_class", None)
  _assert_results_equal(_evaluate("pq").results, reference)


def test_compare_pc_with_golden_value():
  """Official test_compare_pc_with_golden_value."""
  results = _evaluate("pc", normalize_by_image_size=False).results
  assert set(results) == {"All", "Things", "Stuff"}
  assert all(set(r) == {"pc", "n"} for r in results.values())
  assert results["All"]["pc"] == pytest.approx(0.68210561, abs=5e-8)
  assert results["All"]["n"] == 6
  assert results["Things"]["pc"] == pytest.approx(0.5890529, abs=5e-8)
  assert results["Things"]["n"] == 4
  assert results["Stuff"]["pc"] == pytest.approx(0.86821097, abs=5e-8)
  assert results["Stuff"]["n"] == 2


def test_compare_pc_with_golden_value_normalize_by_size():
  """Official test_compare_pc_with_golden_value_normalize_by_size."""
  results = _evaluate("pc", normalize_by_image_size=True).results
  assert results["All"]["pc"] == pytest.approx(0.68214908840, abs=5e-8)


def test_pc_with_multiple_workers():
  """Official test_pc_with_multiple_workers (3 worker processes)."""
  evaluation = _evaluate("pc", normalize_by_image_size=False, num_workers=3)
  assert evaluation.results["All"]["pc"] == pytest.approx(0.68210561668,
                                                          abs=5e-8)


def test_split_panoptic_crowd_and_void():
  """Unclaimed pixels are void; gt crowd becomes the ignored category."""
  ids = np.array([[0, 7, 7], [9, 9, 11]])
  annotation = {"segments_info": [
      {"id": 7, "category_id": 3, "iscrowd": 0},
      {"id": 9, "category_id": 3, "iscrowd": 1},
      {"id": 11, "category_id": 3, "iscrowd": 0}]}
  category, instance = coco_panoptic.split_panoptic(annotation, ids, 0, True)
  np.testing.assert_array_equal(category, [[0, 3, 3], [0, 0, 3]])
  np.testing.assert_array_equal(instance, [[0, 0, 0], [1, 1, 1]])
  category, instance = coco_panoptic.split_panoptic(annotation, ids, 0, False)
  np.testing.assert_array_equal(category, [[0, 3, 3], [3, 3, 3]])
  np.testing.assert_array_equal(instance, [[0, 0, 0], [1, 1, 2]])


def test_missing_prediction_is_a_clear_error():
  with pytest.raises(ValueError, match="no annotation for image_id 2"):
    coco_panoptic.matched_annotations(
        {"annotations": [{"image_id": 2, "file_name": "b.png"}]},
        {"annotations": []})
