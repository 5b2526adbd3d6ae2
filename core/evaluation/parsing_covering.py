"""Parsing Covering (PC) of panoptic segmentations.

Yang et al., "DeeperLab: Single-Shot Image Parser" (arXiv:1902.05093),
Sec. 4: segmentation covering (Arbelaez et al. 2010, Eq. 8) per category,

  SC(c) = sum_R |R| max_R' IoU(R, R') / sum_R |R|,

over the ground-truth segments R of category c and the predicted segments R'
of the same category, and PC = mean of SC(c) over categories with
ground-truth area, the ignored category excluded. Conventions of official
`research/deeplab/evaluation/parsing_covering.py`: a predicted segment's
area counts only its pixels on non-ignored ground truth, and with
`normalize_by_image_size` every area is divided by its image's pixel count
(so large images do not dominate a dataset).

Example:
  pc = ParsingCovering(num_categories=3, ignored_label=0,
                       max_instances_per_category=256, offset=256 * 256)
  pc.compare_and_accumulate(gt_class, gt_instance, pred_class, pred_instance)
  pc.result()
"""

from typing import Dict

import numpy as np

from deeplab.core.evaluation import segment_metric


class ParsingCovering(segment_metric.SegmentMetric):
  """Accumulates IoU-weighted and total ground-truth area per category.

  Args:
    normalize_by_image_size: Divide each image's areas by its size before
      accumulating (official default True).
    Others: see `segment_metric.SegmentMetric`.
  """

  def __init__(self, num_categories: int, ignored_label: int,
               max_instances_per_category: int, offset: int,
               normalize_by_image_size: bool = True):
    self.normalize_by_image_size = normalize_by_image_size
    super().__init__(num_categories, ignored_label, max_instances_per_category,
                     offset)

  def reset(self) -> None:
    self.weighted_iou_per_class = np.zeros(self.num_categories, np.float64)
    self.gt_area_per_class = np.zeros(self.num_categories, np.float64)

  def compare_and_accumulate(self, gt_category, gt_instance, pred_category,
                             pred_instance) -> float:
    """Finds each ground-truth segment's best IoU and adds it, area-weighted."""
    gt_seg, pred_seg, inter = self._intersections(
        gt_category, gt_instance, pred_category, pred_instance)
    gt_cat, pred_cat = self._category(gt_seg), self._category(pred_seg)
    # Pixels on ignored ground truth count for nothing, not even the areas
    # of the predictions that cover them.
    keep = gt_cat != self.ignored_label
    gt_seg, pred_seg, inter = gt_seg[keep], pred_seg[keep], inter[keep]
    gt_cat, pred_cat = gt_cat[keep], pred_cat[keep]
    gt_ids, gt_index = np.unique(gt_seg, return_inverse=True)
    _, pred_index = np.unique(pred_seg, return_inverse=True)
    gt_area = np.bincount(gt_index, weights=inter, minlength=len(gt_ids))
    pred_area = np.bincount(pred_index, weights=inter)

    iou = inter / (gt_area[gt_index] + pred_area[pred_index] - inter)
    iou = np.where(gt_cat == pred_cat, iou, 0.0)
    best_iou = np.zeros(len(gt_ids))
    np.maximum.at(best_iou, gt_index, iou)

    if self.normalize_by_image_size:
      gt_area = gt_area / np.asarray(gt_category).size
    gt_ids_cat = self._category(gt_ids)
    np.add.at(self.weighted_iou_per_class, gt_ids_cat, best_iou * gt_area)
    np.add.at(self.gt_area_per_class, gt_ids_cat, gt_area)
    return self.result()

  def merge(self, other: "ParsingCovering") -> None:
    self.weighted_iou_per_class += other.weighted_iou_per_class
    self.gt_area_per_class += other.gt_area_per_class

  def result_per_category(self) -> np.ndarray:
    """Segmentation covering per category (0 where there is no ground truth)."""
    return segment_metric.safe_divide(self.weighted_iou_per_class,
                                      self.gt_area_per_class)

  def _valid_categories(self) -> np.ndarray:
    valid = self.gt_area_per_class != 0
    if 0 <= self.ignored_label < self.num_categories:
      valid[self.ignored_label] = False
    return valid

  def _per_category_fields(self) -> Dict[str, np.ndarray]:
    return {"pc": self.result_per_category()}
