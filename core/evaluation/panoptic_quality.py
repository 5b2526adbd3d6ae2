"""Panoptic Quality (PQ = SQ x RQ) of panoptic segmentations.

Kirillov et al., "Panoptic Segmentation", CVPR 2019 (arXiv:1801.00868),
Sec. 4.1, with the conventions of official
`research/deeplab/evaluation/panoptic_quality.py` and the COCO panopticapi:

* A predicted and a ground-truth segment of the same category match when
  their IoU exceeds 0.5 (so matches are unique). The union leaves out the
  predicted pixels that fall on ground-truth void (the ignored category,
  instance 0).
* Per category: SQ = sum of matched IoUs / TP, RQ = TP / (TP + FN/2 + FP/2),
  PQ = SQ x RQ.
* An unmatched ground-truth segment is a false negative unless it is void or
  crowd (the ignored category). An unmatched prediction is a false positive
  unless more than half of it lies on ignored (void or crowd) pixels.
* The reported PQ is the mean over categories with TP + FN + FP > 0, the
  ignored category excluded.

Example:
  pq = PanopticQuality(num_categories=3, ignored_label=0,
                       max_instances_per_category=256, offset=256 * 256)
  pq.compare_and_accumulate(gt_class, gt_instance, pred_class, pred_instance)
  pq.result(), pq.detailed_results(is_thing=[False, True, True])
"""

from typing import Dict

import numpy as np

from deeplab.core.evaluation import segment_metric


class PanopticQuality(segment_metric.SegmentMetric):
  """Accumulates TP, FN, FP and matched IoU per category over images."""

  def reset(self) -> None:
    self.iou_per_class = np.zeros(self.num_categories, np.float64)
    self.tp_per_class = np.zeros(self.num_categories, np.float64)
    self.fn_per_class = np.zeros(self.num_categories, np.float64)
    self.fp_per_class = np.zeros(self.num_categories, np.float64)

  def compare_and_accumulate(self, gt_category, gt_instance, pred_category,
                             pred_instance) -> float:
    """Matches one image's segments and adds them to the per-category sums."""
    gt_seg, pred_seg, inter = self._intersections(
        gt_category, gt_instance, pred_category, pred_instance)
    gt_cat, pred_cat = self._category(gt_seg), self._category(pred_seg)
    gt_ids, gt_index = np.unique(gt_seg, return_inverse=True)
    pred_ids, pred_index = np.unique(pred_seg, return_inverse=True)
    gt_area = np.bincount(gt_index, weights=inter)
    pred_area = np.bincount(pred_index, weights=inter)
    # Pixels of each prediction on ground-truth void (instance 0 of the
    # ignored category), and on anything ignored (void or crowd).
    void = self.ignored_label * self.max_instances_per_category
    on_void = np.bincount(pred_index, weights=inter * (gt_seg == void),
                          minlength=len(pred_ids))
    on_ignored = np.bincount(
        pred_index, weights=inter * (gt_cat == self.ignored_label),
        minlength=len(pred_ids))

    union = (gt_area[gt_index] + pred_area[pred_index] - inter -
             on_void[pred_index])
    iou = inter / union
    # As official, void/crowd pairs of the ignored category can match too
    # (their sums are kept but never averaged); an ignored label outside
    # [0, num_categories) has no slot and is left out.
    match = (gt_cat == pred_cat) & (gt_cat < self.num_categories) & (iou > 0.5)
    np.add.at(self.tp_per_class, gt_cat[match], 1)
    np.add.at(self.iou_per_class, gt_cat[match], iou[match])

    gt_matched = np.zeros(len(gt_ids), bool)
    gt_matched[gt_index[match]] = True
    pred_matched = np.zeros(len(pred_ids), bool)
    pred_matched[pred_index[match]] = True
    gt_ids_cat = self._category(gt_ids)
    missed = ~gt_matched & (gt_ids_cat != self.ignored_label)
    np.add.at(self.fn_per_class, gt_ids_cat[missed], 1)
    pred_ids_cat = self._category(pred_ids)
    false = (~pred_matched & (on_ignored / pred_area <= 0.5) &
             (pred_ids_cat < self.num_categories))
    np.add.at(self.fp_per_class, pred_ids_cat[false], 1)
    return self.result()

  def merge(self, other: "PanopticQuality") -> None:
    self.iou_per_class += other.iou_per_class
    self.tp_per_class += other.tp_per_class
    self.fn_per_class += other.fn_per_class
    self.fp_per_class += other.fp_per_class

  def sq_per_category(self) -> np.ndarray:
    return segment_metric.safe_divide(self.iou_per_class, self.tp_per_class)

  def rq_per_category(self) -> np.ndarray:
    return segment_metric.safe_divide(
        self.tp_per_class,
        self.tp_per_class + 0.5 * self.fn_per_class + 0.5 * self.fp_per_class)

  def result_per_category(self) -> np.ndarray:
    """PQ per category (0 for categories never seen)."""
    return self.sq_per_category() * self.rq_per_category()

  def _valid_categories(self) -> np.ndarray:
    valid = (self.tp_per_class + self.fn_per_class + self.fp_per_class) != 0
    if 0 <= self.ignored_label < self.num_categories:
      valid[self.ignored_label] = False
    return valid

  def _per_category_fields(self) -> Dict[str, np.ndarray]:
    return {"pq": self.result_per_category(), "sq": self.sq_per_category(),
            "rq": self.rq_per_category()}
